"""What an OpenAI (or OpenAI-compatible) model can do, told from its name.

Chat Completions has no endpoint that says what a model takes, so the adapter goes by the
model's name (its last "/" segment, lower-cased, so "openai/gpt-5" on a router counts as
"gpt-5"). The rule, family by family (first match wins):

    name starts with        tools   images  https URLs  JSON obj/schema  efforts        limit field
    o1-mini, o1-preview     no      no      -           no / no          -              completion
    o3-mini                 yes*    no      -           yes / yes        low..high      completion
    o<digit> (o1, o3, o4-)  yes*    yes     yes         yes / yes        low..high      completion
    gpt-5-chat              yes     yes     yes         yes / yes        -              max_tokens
    gpt-5.<n> (5.1, 5.2..)  yes     yes     yes         yes / yes        none,low..high completion
    gpt-5 (-mini, -nano..)  yes     yes     yes         yes / yes        minimal..high  completion
    gpt-oss                 yes     no      -           yes / yes        low..high      max_tokens
    gpt-4-turbo             yes     yes     yes         yes / no         -              max_tokens
    gpt-3.5, gpt-4(-0613..) yes     no      -           yes / no         -              max_tokens
    other gpt-, chatgpt-    yes     yes     yes         yes / yes        -              max_tokens
    anything else           yes     yes     no          yes / yes        -              max_tokens

("low..high" is low, medium, high; "completion" means `max_completion_tokens`, which reasoning
models need instead of `max_tokens`; "*" the parallel switch is refused, below.) Anything else
is a model on an OpenAI-compatible server (vLLM, llama.cpp, a router...): it is assumed to do
what the OpenAI API defines, with images as data (the gateway fetches https URLs and inlines
them, since not every server fetches), and no reasoning effort; what its model cannot do it
refuses with its own 400, which reaches the caller as INVALID_ARGUMENT.

Every model that takes tools honours every tool choice (auto, none, required, named) and a seed;
the o-series (*) refuse `parallel_tool_calls` altogether (OpenAI answers "Unsupported parameter:
'parallel_tool_calls' is not supported with this model", evalstate/fast-agent#279,
langchain-ai/langchain#29704), so turning parallel calls off is refused there, and asking for
them on (the default) sends nothing. Images in a tool result are never sent: OpenAI's tool
message takes text parts only. "none" on a model that takes no effort is met by sending
nothing. Azure deployments follow the same rule by deployment name (`providers.azure_openai`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

from providers.base import Capabilities
from providers.types import ToolChoiceMode

_ALL_CHOICES: Final = frozenset(ToolChoiceMode)


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What one model family takes, and how its request is worded."""

    capabilities: Capabilities
    #: Whether the token limit goes in `max_completion_tokens` (reasoning models refuse
    #: `max_tokens`) rather than `max_tokens`.
    completion_tokens_limit: bool = False
    #: Whether the model takes `parallel_tool_calls` at all.
    parallel_switch: bool = True


def _profile(
    *,
    tools: bool = True,
    images: bool = True,
    image_urls: bool = True,
    json_object: bool = True,
    json_schema: bool = True,
    efforts: tuple[str, ...] = (),
    completion_tokens_limit: bool = False,
    parallel_switch: bool = True,
) -> ModelProfile:
    capabilities = Capabilities(
        tools=tools,
        tool_choices=_ALL_CHOICES if tools else Capabilities().tool_choices,
        parallel_tool_calls_off=tools and parallel_switch,
        images=images,
        image_urls=images and image_urls,
        json_object=json_object,
        json_schema=json_schema,
        reasoning_efforts=frozenset(efforts),
        seed=True,
    )
    return ModelProfile(capabilities, completion_tokens_limit, parallel_switch)


_O_SERIES_EFFORTS: Final = ("low", "medium", "high")
#: Families by name pattern, first match wins; the pattern matches the start of the name.
_FAMILIES: Final[tuple[tuple[re.Pattern[str], ModelProfile], ...]] = (
    (
        re.compile(r"o1-(mini|preview)"),
        _profile(
            tools=False,
            images=False,
            json_object=False,
            json_schema=False,
            completion_tokens_limit=True,
            parallel_switch=False,
        ),
    ),
    (
        re.compile(r"o3-mini"),
        _profile(
            images=False,
            efforts=_O_SERIES_EFFORTS,
            completion_tokens_limit=True,
            parallel_switch=False,
        ),
    ),
    (
        re.compile(r"o\d"),
        _profile(efforts=_O_SERIES_EFFORTS, completion_tokens_limit=True, parallel_switch=False),
    ),
    (re.compile(r"gpt-5-chat"), _profile()),
    (
        re.compile(r"gpt-5\.\d"),
        _profile(efforts=("none", "low", "medium", "high"), completion_tokens_limit=True),
    ),
    (
        re.compile(r"gpt-5"),
        _profile(efforts=("minimal", "low", "medium", "high"), completion_tokens_limit=True),
    ),
    (re.compile(r"gpt-oss"), _profile(images=False, efforts=_O_SERIES_EFFORTS)),
    (re.compile(r"gpt-4-turbo"), _profile(json_schema=False)),
    (re.compile(r"gpt-(3\.5|4(?![o.]))"), _profile(images=False, json_schema=False)),
    (re.compile(r"(chat)?gpt-"), _profile()),
)
#: A model on an OpenAI-compatible server: what the API defines, images as data only.
COMPATIBLE: Final = _profile(image_urls=False)
#: An OpenAI chat model that does not reason (gpt-4o, gpt-4.1...).
CHAT_MODEL: Final = _FAMILIES[-1][1]


@functools.lru_cache(maxsize=512)  # every request asks; a deployment serves a few models
def profile_of(model: str, unknown: ModelProfile = COMPATIBLE) -> ModelProfile:
    """The profile of `model` (the provider's own model name); `unknown` when no family's."""
    name = model.rsplit("/", 1)[-1].lower()
    for pattern, profile in _FAMILIES:
        if pattern.match(name):
            return profile
    return unknown
