"""A labelled set of requests for complexity routing, from simple to hard.

Each request is labelled with the cheapest tier that serves it well, by this rubric:

- light (a small model): short facts, rewrites, translations of a sentence, classification,
  extraction from a short text, one simple tool call, a simple question about one image;
- standard (a mid-size model): work on given code, an agent loop with several tools, long
  documents, several images to compare, structured extraction from long text, analysis and
  comparisons, long-form writing;
- heavy (the strongest model): proofs, system design and architecture, concurrency and
  security debugging, high-effort reasoning, large refactors, long expert analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.routing_support import Call, Image, Msg, Request, Sampling, Text, user

LIGHT, STANDARD, HEAVY = "light", "standard", "heavy"
#: Answer length assumed for the cost report, by label (when `max_tokens` is not set).
ANSWER_TOKENS = {LIGHT: 80, STANDARD: 400, HEAVY: 1200}

_PROSE = (
    "The regional office reported steady growth in the third quarter, with subscription revenue "
    "up four percent and churn down slightly after the onboarding changes. Support tickets rose "
    "during the migration week but returned to normal within ten days. The team recommends "
    "extending the pilot to two more regions while keeping the current pricing, and revisiting "
    "the enterprise tier once the usage data for the new dashboards is complete. "
)
_CODE = (
    "class OrderService:\n"
    "    def __init__(self, db, mailer):\n"
    "        self.db = db\n"
    "        self.mailer = mailer\n\n"
    "    def place(self, user_id, items):\n"
    "        order = self.db.insert('orders', user_id=user_id, items=items)\n"
    "        self.mailer.send(user_id, f'order {order.id} placed')\n"
    "        return order\n"
)


def prose(tokens: int) -> str:
    """About `tokens` tokens of business prose."""
    return (_PROSE * (tokens * 4 // len(_PROSE) + 1))[: tokens * 4]


def code(tokens: int) -> str:
    """About `tokens` tokens of Python."""
    return (_CODE * (tokens * 4 // len(_CODE) + 1))[: tokens * 4]


@dataclass(frozen=True)
class Labelled:
    """A request, its label, and the wave-2 fields it would set."""

    label: str
    request: Request
    tools: int = 0
    structured_output: bool = False
    reasoning_effort: str = ""

    @property
    def answer_tokens(self) -> int:
        """Output tokens assumed for the cost report."""
        wanted = self.request.sampling.max_tokens
        return wanted if wanted is not None else ANSWER_TOKENS[self.label]


def ask(
    label: str,
    text: str,
    *images: Image,
    history: tuple[Msg, ...] = (),
    max_tokens: int | None = None,
    tools: int = 0,
    structured_output: bool = False,
    reasoning_effort: str = "",
) -> Labelled:
    """A labelled request ending with a user message of `text` (and `images`)."""
    request = Request("assistant", (*history, user(text, *images)), Sampling(max_tokens))
    return Labelled(label, request, tools, structured_output, reasoning_effort)


def _chat(*turns: str) -> tuple[Msg, ...]:
    """Earlier turns, alternating user and assistant."""
    roles = ("user", "assistant")
    return tuple(Msg(roles[i % 2], (Text(t),)) for i, t in enumerate(turns))


def _tool_loop(calls: int) -> tuple[Msg, ...]:
    """An agent loop under way: a request, then `calls` tool calls and their results."""
    turns: list[Msg] = [user("Sort out my travel for the Berlin offsite next week.")]
    for index in range(calls):
        call = Call(f"call_{index}", "search_flights", '{"to": "BER", "day": "2026-03-02"}')
        turns.append(Msg("assistant", tool_calls=(call,)))
        turns.append(Msg("tool", (Text('{"flights": [{"id": "LH123", "price": 212}]}'),)))
    return tuple(turns)


PROMPTS: tuple[Labelled, ...] = (
    # light
    ask(LIGHT, "What is the capital of Australia?"),
    ask(LIGHT, "Translate 'good morning, see you tomorrow' into Spanish."),
    ask(LIGHT, "Give me a synonym for 'happy'."),
    ask(LIGHT, "How many days are in a leap year?"),
    ask(LIGHT, "Fix the typo: 'Teh meeting is at noon.'"),
    ask(LIGHT, "Is 17 a prime number? Answer yes or no."),
    ask(LIGHT, "Write a one-sentence birthday message for my coworker Sam."),
    ask(
        LIGHT,
        "Classify the sentiment of this review as positive or negative: "
        "'The battery died after two days.'",
    ),
    ask(LIGHT, "What does HTTP status 404 mean?"),
    ask(LIGHT, "Convert 5 kilometres to miles."),
    ask(
        LIGHT,
        "Summarize in one sentence: The city council voted on Tuesday to extend library opening "
        "hours on weekends, citing strong demand from students during exam season.",
    ),
    ask(LIGHT, "Suggest three names for a golden retriever puppy."),
    ask(LIGHT, "What year did the Berlin Wall fall?"),
    ask(LIGHT, "Spell 'necessary' backwards."),
    ask(
        LIGHT,
        "Thanks, that's all I needed!",
        history=_chat("When does the store open?", "It opens at 9 am on weekdays."),
    ),
    ask(LIGHT, "Rewrite this more politely: 'Send me the report now.'"),
    ask(LIGHT, "What's the plural of 'cactus'?"),
    ask(LIGHT, "tl;dr: Our Q3 revenue rose 4% while costs stayed flat, so margin improved."),
    ask(LIGHT, "What time zone is Tokyo in?"),
    ask(LIGHT, "What's the weather in Paris right now?", tools=1),
    ask(LIGHT, "What colour is the car in this photo?", Image(detail="low")),
    ask(LIGHT, "List the days of the week in French."),
    ask(
        LIGHT,
        "Extract the email address from: 'Contact jane.doe@example.com for details.'",
        structured_output=True,
    ),
    ask(LIGHT, "In one word: what is the opposite of 'ancient'?"),
    ask(LIGHT, "Write a haiku about autumn."),
    ask(LIGHT, "What's 15% of 80?"),
    ask(LIGHT, "Explain the difference between TCP and UDP in two sentences."),
    # standard
    ask(
        STANDARD,
        "Review this function and point out bugs:\n```python\ndef avg(xs):\n"
        "    return sum(xs) / len(xs)\n```",
    ),
    ask(
        STANDARD,
        "Why does this raise a KeyError?\n```python\nconfig = {'host': 'db'}\n"
        "port = config['port']\n```\nTraceback (most recent call last):\n  KeyError: 'port'",
    ),
    ask(
        STANDARD,
        "Given tables orders(id, customer_id, total, created_at) and customers(id, name), "
        "write a SQL query for the top 5 customers by total spend in 2024.",
    ),
    ask(STANDARD, "Summarize this report as 6 bullet points:\n" + prose(3000)),
    ask(
        STANDARD,
        "Book the cheapest of those and add it to my calendar.",
        history=_tool_loop(2),
        tools=3,
    ),
    ask(STANDARD, "Compare these two charts and describe how the trends differ.", Image(), Image()),
    ask(
        STANDARD,
        "Extract every line item of this invoice as JSON:\n" + prose(1500),
        structured_output=True,
    ),
    ask(STANDARD, "Write pytest unit tests for this class:\n" + code(300)),
    ask(
        STANDARD,
        "Draft my reply to the last message, keeping the agreed dates.",
        history=_chat(
            "Can we move the launch to May?",
            "May works if QA signs off by April 20.",
            "QA says April 25 at the earliest.",
            "Then the launch would slip to the second week of May.",
            "Marketing needs at least three weeks for the campaign.",
            "Understood, I will check with marketing.",
        ),
    ),
    ask(
        STANDARD,
        "Explain why this regex does not match 'a.b':\n```\n^[a-z]+\\.[a-z]$\n```",
    ),
    ask(
        STANDARD,
        "Convert this callback code to async/await:\n```js\nfs.readFile(p, (err, data) => {\n"
        "  if (err) return cb(err);\n  cb(null, JSON.parse(data));\n});\n```",
    ),
    ask(
        STANDARD,
        "Read the table in this screenshot and return it as JSON rows.",
        Image(),
        structured_output=True,
    ),
    ask(
        STANDARD,
        "Find my next meeting and email the attendees that I'll be 10 minutes late.",
        tools=2,
    ),
    ask(
        STANDARD,
        "Analyze the themes in these customer reviews and group them:\n" + prose(1200),
    ),
    ask(STANDARD, "Plan a 3-day itinerary for Lisbon on a modest budget.", reasoning_effort="low"),
    ask(
        STANDARD,
        "Write a cover letter for a data analyst role based on this resume:\n" + prose(800),
    ),
    ask(
        STANDARD,
        "Debug this: my React component re-renders forever.\n```jsx\nuseEffect(() => {\n"
        "  setItems([...items, next]);\n});\n```",
    ),
    ask(
        STANDARD,
        "Translate this technical document into German, keeping the Markdown:\n" + prose(1400),
    ),
    ask(STANDARD, "Write a 1500-word blog post about remote work productivity.", max_tokens=3000),
    ask(STANDARD, "Refactor this class to use dependency injection:\n" + code(250)),
    ask(
        STANDARD, "Compare PostgreSQL and MySQL for a small analytics workload, with pros and cons."
    ),
    # heavy
    ask(HEAVY, "Prove that there are infinitely many primes of the form 4k+3. Be rigorous."),
    ask(
        HEAVY,
        "Design a distributed rate limiter for 50 data centres sharing one global quota; discuss "
        "the consistency trade-offs and the failure modes.",
    ),
    ask(
        HEAVY,
        "Three boxes are labelled apples, oranges and mixed, and every label is wrong. You may "
        "take one fruit from one box. How do you relabel them all? Justify each step.",
        reasoning_effort="high",
    ),
    ask(
        HEAVY,
        "Find the race condition in this Go code and explain a fix:\n```go\nfunc (c *Cache) Get("
        "k string) V {\n  if v, ok := c.m[k]; ok { return v }\n  c.mu.Lock()\n  c.m[k] = load(k)\n"
        "  c.mu.Unlock()\n  return c.m[k]\n}\n```",
    ),
    ask(
        HEAVY,
        "Derive the expected number of comparisons of randomized quicksort, step by step.",
    ),
    ask(
        HEAVY,
        "Write a threat model for our OAuth login flow and rank the risks:\n" + prose(2500),
    ),
    ask(
        HEAVY,
        "Refactor this module into smaller services without changing behaviour, and write the "
        "migration plan:\n" + code(6000),
    ),
    ask(
        HEAVY,
        "Now rebook everyone on the earliest train instead and tell me what it changes.",
        history=_tool_loop(5),
        tools=8,
        reasoning_effort="medium",
    ),
    ask(
        HEAVY,
        "Analyze this contract and list every clause that conflicts with the GDPR, citing "
        "sections:\n" + prose(8000),
    ),
    ask(
        HEAVY,
        "These are three MRI slices. Evaluate whether the lesion grew between them and explain "
        "your reasoning in depth.",
        Image(),
        Image(),
        Image(),
    ),
    ask(
        HEAVY,
        "Optimize this CUDA kernel for memory coalescing and explain the expected speedup:\n"
        "```cuda\n__global__ void t(float* a, float* b, int n) {\n  int i = blockIdx.x;\n"
        "  for (int j = 0; j < n; j++) b[j * n + i] = a[i * n + j];\n}\n```",
    ),
    ask(
        HEAVY,
        "Schedule a round robin for 12 teams over 11 weeks so that no team plays at home more "
        "than twice in a row.",
        structured_output=True,
        reasoning_effort="high",
    ),
    ask(
        HEAVY,
        "Critique the methodology of this study and propose a better experimental design:\n"
        + prose(2000),
    ),
    ask(
        HEAVY,
        "What is the time complexity of this algorithm, and can you prove a matching lower "
        "bound?\n```python\ndef f(xs):\n    return sorted(set(xs))[:10]\n```",
    ),
    ask(
        HEAVY,
        "Design an architecture for a multi-tenant event-sourcing platform on Kubernetes with "
        "exactly-once processing.",
    ),
    ask(
        HEAVY,
        "Write the full technical specification for the billing service rewrite.",
        max_tokens=16000,
        reasoning_effort="medium",
    ),
    ask(
        HEAVY,
        "Debug the deadlock in our distributed lock service from these logs and code:\n"
        + code(800)
        + prose(2000),
    ),
    ask(
        HEAVY,
        "Investigate why yesterday's revenue dropped: query the warehouse, compare with last "
        "week, and explain the root cause.",
        tools=4,
        reasoning_effort="medium",
    ),
)
