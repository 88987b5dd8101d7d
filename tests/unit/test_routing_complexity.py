"""Complexity routing: the labelled set, the signals, keywords, examples and pinned tiers."""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.pipeline.pricing import DEFAULT_PRICES, PER_TOKENS
from gateway.pipeline.routing.complexity import (
    EXAMPLE_THRESHOLD,
    ComplexityScorer,
    ExampleMatch,
    ExampleMatcher,
)
from gateway.pipeline.routing.features import RequestFeatures, features_of
from gateway.pipeline.routing.groups import ModelGroup, Tier
from tests.routing_prompts import HEAVY, LIGHT, PROMPTS, STANDARD, Labelled

#: The tiers of the labelled set's group, cheapest first, as an operator would configure them.
TIERS = (
    Tier(LIGHT, "gpt-4o-mini", 0.12),
    Tier(STANDARD, "gpt-4.1", 0.35),
    Tier(HEAVY, "claude-opus-4-5"),
)
ASSISTANT = ModelGroup("assistant", "complexity", tiers=TIERS)
MIN_ACCURACY = 0.85


def features(prompt: Labelled) -> RequestFeatures:
    return features_of(
        prompt.request,
        tools=prompt.tools,
        structured_output=prompt.structured_output,
        reasoning_effort=prompt.reasoning_effort,
    )


def cost(prompt: Labelled, model: str) -> float:
    """USD of the prompt's estimated tokens and assumed answer at `model`'s list price."""
    price = DEFAULT_PRICES[model]
    tokens = features(prompt).prompt_tokens
    return (tokens * price.input + prompt.answer_tokens * price.output) / PER_TOKENS


def test_the_labelled_set_is_large_and_varied() -> None:
    assert len(PROMPTS) >= 60
    assert Counter(p.label for p in PROMPTS).keys() == {LIGHT, STANDARD, HEAVY}
    assert sum(1 for p in PROMPTS if p.tools or features(p).tool_turns) >= 4
    assert sum(1 for p in PROMPTS if features(p).images) >= 4


def test_the_chosen_tier_matches_the_label_for_85_percent_and_costs_less(
    capsys: pytest.CaptureFixture[str],
) -> None:
    scorer = ComplexityScorer(ASSISTANT)
    chosen = [scorer.choose(features(p)).tier for p in PROMPTS]
    wrong = [
        f"{p.label} -> {tier.name}: {p.request.messages[-1].parts[0]}"[:120]
        for p, tier in zip(PROMPTS, chosen, strict=True)
        if tier.name != p.label
    ]
    accuracy = 1 - len(wrong) / len(PROMPTS)
    routed = sum(cost(p, tier.model) for p, tier in zip(PROMPTS, chosen, strict=True))
    strongest = sum(cost(p, TIERS[-1].model) for p in PROMPTS)
    with capsys.disabled():
        print(
            f"\ncomplexity routing: {len(PROMPTS) - len(wrong)}/{len(PROMPTS)} tiers match "
            f"({accuracy:.1%}); the set costs ${routed:.4f} routed vs ${strongest:.4f} all on "
            f"{TIERS[-1].model} ({routed / strongest:.1%})"
        )

    assert accuracy >= MIN_ACCURACY, "\n".join(wrong)
    assert routed < strongest


def test_the_reason_names_the_score_the_signals_and_the_tier() -> None:
    request = RequestFeatures(text_tokens=10, code=True, tools=1, last_user_text="please debug")

    decision = ComplexityScorer(ASSISTANT).choose(request)

    assert decision.score == pytest.approx(0.45)
    assert decision.tier.name == HEAVY
    assert decision.reason == 'score 0.45: code +0.20, "debug" +0.15, 1 tools +0.10 -> tier heavy'


def test_a_score_equal_to_a_threshold_takes_that_tier() -> None:
    scorer = ComplexityScorer(ASSISTANT)

    assert scorer.tier_for(0.12).name == LIGHT
    assert scorer.tier_for(0.1201).name == STANDARD
    assert scorer.tier_for(1.0).name == HEAVY


@pytest.mark.parametrize(
    ("request_features", "signal"),
    [
        (RequestFeatures(text_tokens=6000), "prompt ~6000 tokens +0.30"),
        (RequestFeatures(turns=8), "8 turns +0.15"),
        (RequestFeatures(tools=9), "9 tools +0.25"),
        (RequestFeatures(tool_turns=2), "2 tool turns +0.10"),
        (RequestFeatures(images=2), "2 images +0.20"),
        (RequestFeatures(structured_output=True), "structured output +0.10"),
        (RequestFeatures(reasoning_effort="medium"), "reasoning effort medium +0.25"),
        (RequestFeatures(max_tokens=8000), "max_tokens 8000 +0.20"),
    ],
)
def test_each_signal_scores(request_features: RequestFeatures, signal: str) -> None:
    decision = ComplexityScorer(ASSISTANT).choose(request_features)

    assert signal in decision.reason


def test_a_group_keyword_adds_points_and_zero_drops_a_built_in_one() -> None:
    group = ModelGroup("g", "complexity", tiers=TIERS, keywords={"Root Cause": 0.3, "analyze": 0.0})
    scorer = ComplexityScorer(group)

    found = scorer.choose(RequestFeatures(last_user_text="Analyze the root cause, please"))

    assert found.signals == (('"root cause"', 0.3),)


def test_phrases_add_at_most_0_45_together() -> None:
    text = "prove and derive the theorem, step by step, rigorous"

    score, _ = ComplexityScorer(ASSISTANT).score(RequestFeatures(last_user_text=text))

    assert score == pytest.approx(0.45)


def test_a_phrase_of_simple_requests_counts_only_in_a_short_prompt() -> None:
    scorer = ComplexityScorer(ASSISTANT)

    short, _ = scorer.score(RequestFeatures(text_tokens=20, last_user_text="translate this"))
    long, _ = scorer.score(RequestFeatures(text_tokens=6000, last_user_text="translate this"))

    assert short == 0.0  # -0.1, clamped
    assert long == pytest.approx(0.3)


def test_a_pinned_tier_wins_over_the_score() -> None:
    decision = ComplexityScorer(ASSISTANT).choose(
        RequestFeatures(reasoning_effort="high"), pinned=LIGHT
    )

    assert decision.tier.name == LIGHT
    assert decision.reason == "tier light pinned by the caller"


class Examples:
    """An `ExampleMatcher` with fixed answers (what an embedding index would find)."""

    def __init__(self, answers: dict[str, ExampleMatch]) -> None:
        self._answers = answers

    async def match(self, group: str, text: str) -> ExampleMatch | None:
        return self._answers.get(text)


async def test_a_close_example_match_decides_the_tier() -> None:
    matcher: ExampleMatcher = Examples(
        {"is this mole cancerous?": ExampleMatch(HEAVY, 0.91), "hello": ExampleMatch(HEAVY, 0.5)}
    )
    scorer = ComplexityScorer(ASSISTANT)

    close = await matcher.match("assistant", "is this mole cancerous?")
    far = await matcher.match("assistant", "hello")
    decided = scorer.choose(RequestFeatures(), example=close)
    ignored = scorer.choose(RequestFeatures(), example=far)

    assert decided.tier.name == HEAVY
    assert decided.reason.startswith("like the examples of tier heavy (similarity 0.91)")
    assert ignored.tier.name == LIGHT
    assert far is not None
    assert far.similarity < EXAMPLE_THRESHOLD


def test_an_example_match_for_an_unknown_tier_is_ignored() -> None:
    decision = ComplexityScorer(ASSISTANT).choose(
        RequestFeatures(), example=ExampleMatch("gone", 0.99)
    )

    assert decision.tier.name == LIGHT
