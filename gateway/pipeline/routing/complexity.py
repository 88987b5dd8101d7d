"""Complexity routing: a score for a request, and the cheapest tier it fits.

The score adds points for what makes a request hard, clamped to [0, 1]:

| signal | points |
|---|---|
| prompt text length | 0 up to 150 tokens, rising with the logarithm to 0.3 at 6,000 |
| conversation depth | 0.03 a turn (message with text) past the third, up to 0.15 |
| tools offered | 0.1 for one, 0.05 each more, up to 0.25 |
| an agent loop under way | 0.05 a tool call or result, up to 0.15 |
| images | 0.15 for the first, 0.05 each more, up to 0.25 |
| code in the question | 0.2 |
| structured output asked | 0.1 |
| reasoning effort | minimal 0.05, low 0.1, medium 0.25, high 0.45 |
| requested output | 0.1 from 2,000 `max_tokens`, 0.2 from 8,000 |
| phrases in the question | each phrase's points (built in, and the group's `keywords`) |

Phrases together add at most 0.45 and take away at most 0.2; the phrases of simple requests
(negative points) count only in a short prompt (up to 150 tokens of text), where they describe
the whole request.

The chosen tier is the first (cheapest) whose `max_score` is at least the score; the last takes
every score. When an `ExampleMatcher` finds the question close enough to a tier's example
requests (similarity at least `EXAMPLE_THRESHOLD`), that tier is taken instead: examples are the
operator's own judgment. A pinned tier wins over both. Every choice comes with a reason a person
can read: the score, the signals that made it, and the tier.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.pipeline.routing.features import RequestFeatures
from gateway.pipeline.routing.groups import ModelGroup, Tier

#: Built-in phrases and their points; a group's `keywords` add phrases or change these (0 drops).
DEFAULT_KEYWORDS: Mapping[str, float] = {
    # asks for reasoning, proof, analysis or design
    "prove": 0.3,
    "proof": 0.3,
    "derive": 0.25,
    "theorem": 0.25,
    "step by step": 0.2,
    "rigorous": 0.2,
    "analyze": 0.15,
    "analyse": 0.15,
    "analysis": 0.15,
    "trade-offs": 0.2,
    "tradeoffs": 0.2,
    "architecture": 0.2,
    "design a": 0.2,
    "design an": 0.2,
    "optimize": 0.15,
    "optimise": 0.15,
    "debug": 0.15,
    "refactor": 0.15,
    "algorithm": 0.15,
    "time complexity": 0.15,
    "edge cases": 0.15,
    "race condition": 0.2,
    "concurrency": 0.15,
    "distributed": 0.15,
    "vulnerability": 0.15,
    "threat model": 0.2,
    "critique": 0.15,
    "evaluate": 0.1,
    "compare": 0.1,
    "explain why": 0.1,
    "in depth": 0.15,
    "thorough": 0.15,
    "strategy": 0.1,
    "migration plan": 0.2,
    # asks for something short and simple
    "translate": -0.1,
    "capital of": -0.1,
    "synonym": -0.1,
    "spell": -0.1,
    "one word": -0.1,
    "yes or no": -0.1,
    "tl;dr": -0.1,
    "fix the typo": -0.1,
}
KEYWORD_CAP_UP = 0.45
KEYWORD_CAP_DOWN = 0.2
#: Similarity (0 to 1) from which an example match decides the tier.
EXAMPLE_THRESHOLD = 0.8

_LENGTH_FROM, _LENGTH_TO, _LENGTH_POINTS = 150, 6000, 0.3
_DEPTH_FROM, _DEPTH_STEP, _DEPTH_CAP = 3, 0.03, 0.15
_TOOL_FIRST, _TOOL_MORE, _TOOLS_CAP = 0.1, 0.05, 0.25
_TOOL_TURN, _TOOL_TURNS_CAP = 0.05, 0.15
_IMAGE_FIRST, _IMAGE_MORE, _IMAGES_CAP = 0.15, 0.05, 0.25
_CODE = 0.2
_STRUCTURED = 0.1
_EFFORT = {"minimal": 0.05, "low": 0.1, "medium": 0.25, "high": 0.45}
_LONG_OUTPUT = ((8000, 0.2), (2000, 0.1))


@dataclass(frozen=True, slots=True)
class ExampleMatch:
    """The tier whose example requests a question is closest to, and how close (0 to 1)."""

    tier: str
    similarity: float


class ExampleMatcher(Protocol):
    """Finds the tier whose examples a question is most like (by embedding similarity).

    The hook for a group's `examples`; the gateway's own embedding path (issue 17) implements it.
    Routing awaits it before `ComplexityScorer.choose` and passes the match in.
    """

    async def match(self, group: str, text: str) -> ExampleMatch | None:
        """The closest tier for `text` among `group`'s examples, or None with no examples."""
        ...


@dataclass(frozen=True, slots=True)
class Complexity:
    """A complexity decision: the score, the tier, and why, in words."""

    score: float
    tier: Tier
    reason: str
    #: Each signal that added or took points, and how many.
    signals: tuple[tuple[str, float], ...] = ()


class ComplexityScorer:
    """Scores requests and picks the tier of one `complexity` group (built once, at start)."""

    def __init__(self, group: ModelGroup) -> None:
        if not group.tiers:
            raise ValueError(f"group {group.name!r} has no tiers")
        self.group = group
        keywords = {**DEFAULT_KEYWORDS, **group.keywords}
        self._keywords = {phrase.lower(): points for phrase, points in keywords.items() if points}
        phrases = sorted(self._keywords, key=len, reverse=True)  # longest first: "design a" wins
        self._pattern = re.compile(
            r"(?<!\w)(?:" + "|".join(re.escape(p) for p in phrases) + r")(?!\w)"
            if phrases
            else r"(?!)"
        )
        self._tiers = {tier.name: tier for tier in group.tiers}

    def signals(self, features: RequestFeatures) -> list[tuple[str, float]]:
        """Every signal of `features` that scores, with its points."""
        found: list[tuple[str, float]] = []

        def add(name: str, points: float) -> None:
            if points:
                found.append((name, points))

        tokens = features.text_tokens  # images score on their own
        if tokens > _LENGTH_FROM:
            share = math.log(tokens / _LENGTH_FROM) / math.log(_LENGTH_TO / _LENGTH_FROM)
            add(f"prompt ~{tokens} tokens", _LENGTH_POINTS * min(1.0, share))
        extra_turns = features.turns - _DEPTH_FROM
        add(f"{features.turns} turns", min(_DEPTH_CAP, _DEPTH_STEP * max(0, extra_turns)))
        if features.tools:
            tools = _TOOL_FIRST + _TOOL_MORE * (features.tools - 1)
            add(f"{features.tools} tools", min(_TOOLS_CAP, tools))
        add(
            f"{features.tool_turns} tool turns",
            min(_TOOL_TURNS_CAP, _TOOL_TURN * features.tool_turns),
        )
        if features.images:
            images = _IMAGE_FIRST + _IMAGE_MORE * (features.images - 1)
            add(f"{features.images} images", min(_IMAGES_CAP, images))
        add("code", _CODE if features.code else 0.0)
        add("structured output", _STRUCTURED if features.structured_output else 0.0)
        effort = features.reasoning_effort
        add(f"reasoning effort {effort}", _EFFORT.get(effort, 0.0))
        wanted = features.max_tokens or 0
        add(f"max_tokens {wanted}", next((p for n, p in _LONG_OUTPUT if wanted >= n), 0.0))
        found.extend(self._phrases(features.last_user_text, short=tokens <= _LENGTH_FROM))
        return found

    def score(self, features: RequestFeatures) -> tuple[float, list[tuple[str, float]]]:
        """The request's score in [0, 1] and the signals it is made of."""
        found = self.signals(features)
        return min(1.0, max(0.0, sum(points for _, points in found))), found

    def choose(
        self,
        features: RequestFeatures,
        *,
        example: ExampleMatch | None = None,
        pinned: str | None = None,
    ) -> Complexity:
        """The tier for `features` (see the module docstring for the order of precedence)."""
        score, found = self.score(features)
        signals = _describe(score, found)
        if pinned is not None and pinned in self._tiers:
            tier = self._tiers[pinned]
            return Complexity(score, tier, f"tier {tier.name} pinned by the caller", tuple(found))
        liked = self._tiers.get(example.tier) if example is not None else None
        if example is not None and liked is not None and example.similarity >= EXAMPLE_THRESHOLD:
            reason = (
                f"like the examples of tier {liked.name} (similarity {example.similarity:.2f})"
                f"; {signals}"
            )
            return Complexity(score, liked, reason, tuple(found))
        tier = self.tier_for(score)
        bound = "" if tier is self.group.tiers[-1] else f" (max_score {tier.max_score:g})"
        return Complexity(score, tier, f"{signals} -> tier {tier.name}{bound}", tuple(found))

    def tier_for(self, score: float) -> Tier:
        """The first tier whose `max_score` the score fits; the last takes any score."""
        for tier in self.group.tiers[:-1]:
            if score <= tier.max_score:
                return tier
        return self.group.tiers[-1]

    def _phrases(self, text: str, *, short: bool) -> list[tuple[str, float]]:
        """The phrases in `text` and their points (those of simple requests only if `short`)."""
        matched = dict.fromkeys(m.group(0) for m in self._pattern.finditer(text.lower()))
        up = [(f'"{p}"', self._keywords[p]) for p in matched if self._keywords[p] > 0]
        if not short:
            return _capped(up, KEYWORD_CAP_UP)
        down = [(f'"{p}"', self._keywords[p]) for p in matched if self._keywords[p] < 0]
        return _capped(up, KEYWORD_CAP_UP) + _capped(down, KEYWORD_CAP_DOWN)


def _capped(found: list[tuple[str, float]], cap: float) -> list[tuple[str, float]]:
    """`found` with its points scaled down so that their total is at most `cap` either way."""
    total = abs(sum(points for _, points in found))
    if total <= cap:
        return found
    return [(name, points * cap / total) for name, points in found]


def _describe(score: float, found: list[tuple[str, float]]) -> str:
    """ "score 0.45: code +0.20, 3 tools +0.20, ..." (the strongest signals first)."""
    if not found:
        return f"score {score:.2f}: no signal"
    strongest = sorted(found, key=lambda pair: -abs(pair[1]))
    return f"score {score:.2f}: " + ", ".join(f"{name} {points:+.2f}" for name, points in strongest)
