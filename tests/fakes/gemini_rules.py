"""What the Gemini API (`generativelanguage.googleapis.com`, v1beta) refuses, in its wording.

Each check raises `Rejected(message)`, which the fake sends as Google's `{"error": {"code":
400, "message", "status": "INVALID_ARGUMENT"}}`. Field names are the REST (proto JSON) names
of `google-genai` `types.py` / `models.py` `_*_to_mldev` (v3.6); both lowerCamelCase and
snake_case spellings are accepted, as proto JSON parsers do. Texts are Google's as quoted in
the client bug reports named, unless marked "wording approximate".

- Unknown fields anywhere in the request, tool or generation config, or in a `parameters` /
  `responseSchema` (an OpenAPI-subset `Schema` proto, where `additionalProperties`, `$ref`,
  `$defs` and `$schema` do not exist: google-genai `_transformers.py` refuses
  additionalProperties for the Developer API): 'Invalid JSON payload received. Unknown name
  "<name>" at \\'<path>\\': Cannot find field.' (ax-llm, pi-agent-go reports).
- Roles are "user"/"model" ("Please use a valid role: user, model.", Portkey-AI/gateway#1761);
  a part carries exactly one kind of data, and empty text is no data ("* GenerateContentRequest
  .contents[i].parts[j].data: required oneof field 'data' must have one initialized field").
- Function calling: "Please ensure that function call turn comes immediately after a user turn
  or after a function response turn."; "Please ensure that function response turn comes
  immediately after a function call turn."; "Please ensure that the number of function response
  parts is equal to the number of function call parts of the function call turn."; "*
  GenerateContentRequest.contents[i].parts[j].function_response.name: Name cannot be empty."
  (pydantic/pydantic-ai#1879); a response naming no call of its turn (archestra-ai/archestra
  PR #7583; wording approximate); `response` and `args` must be objects (proto `Struct`).
- Gemini 3 models: in the current turn (after the last user text), the first `functionCall`
  part of each model step must carry the `thoughtSignature` it was issued with ("Function call
  is missing a thought_signature in functionCall parts. ...", ai.google.dev/gemini-api/docs/
  thought-signatures); an unknown signature is refused (wording approximate); the documented
  dummy "skip_thought_signature_validator" is accepted.
- `inlineData.data` must be base64 ('Invalid value at \\'contents[0].parts[1].inline_data.data\\'
  (TYPE_BYTES), Base64 decoding failed for "..."', danny-avila/LibreChat#6593); `fileData.fileUri`
  must be a Files API or `gs://` URI unless the fake is told the model fetches URLs (vercel/ai
  #10349: "Unsupported file uri"; unconfirmed for the direct API, so strict here).
- Before Gemini 3, tools and a JSON answer exclude each other: "Tool use with a response mime
  type: 'application/json' is unsupported" (snailyp/gemini-balance#264, tbphp/gpt-load#188);
  Gemini 3 combines structured output with tools (ai.google.dev/gemini-api/docs/gemini-3).
- `responseSchema` / `responseJsonSchema` need `responseMimeType` application/json (or
  text/x.enum) and exclude each other; `thinkingBudget` and `thinkingLevel` exclude each other
  (Gemini 3 docs: "using both ... will return a 400 error"); `allowedFunctionNames` only with
  mode ANY/VALIDATED and naming declared functions (python-genai `FunctionCallingConfig`); a
  function is declared once, its `parameters` an OBJECT schema, not also `parametersJsonSchema`
  (wording approximate for these three).
- Embeddings: `batchEmbedContents` takes at most 100 requests ("* BatchEmbedContentsRequest
  .requests: at most 100 requests can be in one batch", many client reports); each request's
  `model` is the URL's; `taskType` is a TaskType name.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from typing import Final

from tests.fakes.rules import Rejected, b64decode
from tests.fakes.script import Minter

REQUEST: Final = frozenset(
    {"contents", "tools", "toolConfig", "safetySettings", "systemInstruction",
     "generationConfig", "cachedContent", "model", "labels", "serviceTier", "store"}
)  # fmt: skip
CONTENT: Final = frozenset({"parts", "role"})
DATA: Final = (
    "text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
    "codeExecutionResult", "toolCall", "toolResponse",
)  # fmt: skip
PART: Final = frozenset(
    {*DATA, "thought", "thoughtSignature", "videoMetadata", "mediaResolution", "partMetadata"}
)
FUNCTION_CALL: Final = frozenset({"id", "name", "args", "partialArgs", "willContinue"})
FUNCTION_RESPONSE: Final = frozenset(
    {"id", "name", "response", "parts", "willContinue", "scheduling"}
)
BLOB: Final = frozenset({"mimeType", "data", "displayName"})
FILE_DATA: Final = frozenset({"mimeType", "fileUri", "displayName"})
GENERATION_CONFIG: Final = frozenset(
    {"candidateCount", "stopSequences", "maxOutputTokens", "temperature", "topP", "topK", "seed",
     "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs", "responseMimeType",
     "responseSchema", "responseJsonSchema", "responseModalities", "thinkingConfig",
     "mediaResolution", "speechConfig", "enableEnhancedCivicAnswers", "imageConfig"}
)  # fmt: skip
THINKING_CONFIG: Final = frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"})
TOOL: Final = frozenset(
    {"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution",
     "urlContext", "fileSearch", "googleMaps", "computerUse", "mcpServers"}
)  # fmt: skip
FUNCTION_DECLARATION: Final = frozenset(
    {"name", "description", "parameters", "parametersJsonSchema", "response",
     "responseJsonSchema", "behavior"}
)  # fmt: skip
TOOL_CONFIG: Final = frozenset(
    {"functionCallingConfig", "retrievalConfig", "includeServerSideToolInvocations"}
)
FUNCTION_CALLING_CONFIG: Final = frozenset({"mode", "allowedFunctionNames"})
SCHEMA: Final = frozenset(
    {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
     "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
     "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"}
)  # fmt: skip
SCHEMA_TYPES: Final = frozenset(
    {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
)
THINKING_LEVELS: Final = frozenset({"MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH"})
MODES: Final = frozenset({"AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"})
MIME_TYPES: Final = frozenset(
    {"text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum"}
)
TASK_TYPES: Final = frozenset(
    {"TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
     "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION",
     "CODE_RETRIEVAL_QUERY"}
)  # fmt: skip
EMBED_REQUEST: Final = frozenset(
    {"model", "content", "taskType", "title", "outputDimensionality", "autoTruncate"}
)
MAX_BATCH: Final = 100
SKIP_SIGNATURE: Final = "skip_thought_signature_validator"
_FUNCTION_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}")
_FILE_URI = re.compile(
    r"(gs://|https://generativelanguage\.googleapis\.com/|https://www\.youtube\.com/)"
)


def invalid(message: str) -> Rejected:
    """A Google 400 INVALID_ARGUMENT."""
    return Rejected(message)


def camel(name: str) -> str:
    """The lowerCamelCase spelling of a proto field name."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def snake(name: str) -> str:
    """The proto (snake_case) spelling of a JSON field name, as Google's error paths use."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def fields(obj: Mapping[str, object], known: frozenset[str], path: str) -> dict[str, object]:
    """`obj` with its keys in lowerCamelCase; an unknown key is Google's 400."""
    result: dict[str, object] = {}
    for key, value in obj.items():
        name = camel(key)
        if name not in known:
            where = f" at '{path}'" if path else ""
            raise invalid(
                f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.'
            )
        result[name] = value
    return result


def _objects(
    raw: object, known: frozenset[str], path: str
) -> Iterator[tuple[str, dict[str, object]]]:
    """Each object of a repeated field, normalised, with its path."""
    if raw is None:
        return
    if not isinstance(raw, list):
        raise invalid(
            f'Invalid JSON payload received. Unknown name "{path.rsplit(".", 1)[-1]}": '
            "Proto field is not repeating, cannot start list."
        )
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            raise invalid(f"Invalid value at '{where}', expected an object.")
        yield where, fields(item, known, where)


def check_generate(body: object, *, model: str, minter: Minter, fetches_urls: bool = False) -> None:
    """Raise `Rejected` for a generateContent body the Gemini API refuses."""
    if not isinstance(body, dict):
        raise invalid("* contents: contents is not specified")
    request = fields(body, REQUEST, "")
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("* contents: contents is not specified")
    if any(not isinstance(c, dict) or c.get("role") not in ("user", "model") for c in contents):
        raise invalid("Please use a valid role: user, model.")
    turns = [(where, content) for where, content in _objects(contents, CONTENT, "contents")]
    parts = [_parts(where, content, fetches_urls=fetches_urls) for where, content in turns]
    system = request.get("systemInstruction")
    if isinstance(system, dict):
        _parts(
            "system_instruction",
            fields(system, CONTENT, "system_instruction"),
            fetches_urls=fetches_urls,
        )
    declared = _check_tools(request.get("tools"))
    _check_tool_config(request.get("toolConfig"), declared)
    _check_generation_config(request.get("generationConfig"))
    _check_tools_with_json(request, model)
    roles = [str(content["role"]) for _where, content in turns]
    _check_function_turns(roles, parts)
    if model.startswith("gemini-3"):
        _check_signatures(roles, parts, minter)


Part = tuple[str, dict[str, object]]


def _parts(where: str, content: Mapping[str, object], *, fetches_urls: bool) -> list[Part]:
    parts = list(_objects(content.get("parts"), PART, f"{where}.parts"))
    for path, part in parts:
        data = [key for key in DATA if key in part and part[key] not in ("", None)]
        if len(data) != 1:
            raise invalid(
                f"* GenerateContentRequest.{path}.data: required oneof field 'data' must have "
                "one initialized field"
            )
        if "inlineData" in part:
            _check_blob(part["inlineData"], f"{path}.inline_data")
        if "fileData" in part:
            _check_file(part["fileData"], f"{path}.file_data", fetches_urls=fetches_urls)
        if "functionCall" in part:
            call = _object(part["functionCall"], FUNCTION_CALL, f"{path}.function_call")
            if "args" in call and not isinstance(call["args"], dict):
                raise _not_struct(f"{path}.function_call.args", call["args"])
        if "functionResponse" in part:
            response = _object(
                part["functionResponse"], FUNCTION_RESPONSE, f"{path}.function_response"
            )
            if not response.get("name"):
                raise invalid(
                    f"* GenerateContentRequest.{path}.function_response.name: Name cannot be "
                    "empty.\n"
                )
            if "response" in response and not isinstance(response["response"], dict):
                raise _not_struct(f"{path}.function_response.response", response["response"])
    return parts


def _object(raw: object, known: frozenset[str], path: str) -> dict[str, object]:
    if not isinstance(raw, dict):
        raise invalid(f"Invalid value at '{path}', expected an object.")
    return fields(raw, known, path)


def _not_struct(path: str, value: object) -> Rejected:
    return invalid(
        f"Invalid value at '{path}' (type.googleapis.com/google.protobuf.Struct), {value!r}"
    )


def _check_blob(raw: object, path: str) -> None:
    blob = _object(raw, BLOB, path)
    if not blob.get("mimeType"):
        raise invalid(f"* GenerateContentRequest.{path}.mime_type: mime_type is required")
    data = blob.get("data")
    if b64decode(data) is None:
        shown = str(data)[:64]
        raise invalid(
            f"Invalid value at '{path}.data' (TYPE_BYTES), Base64 decoding failed for \"{shown}\""
        )


def _check_file(raw: object, path: str, *, fetches_urls: bool) -> None:
    file = _object(raw, FILE_DATA, path)
    uri = file.get("fileUri")
    if not isinstance(uri, str) or not uri:
        raise invalid(f"* GenerateContentRequest.{path}.file_uri: file_uri is required")
    if not fetches_urls and not _FILE_URI.match(uri):
        raise invalid(f"Unsupported file uri: {uri}")


def _calls(parts: list[Part]) -> list[dict[str, object]]:
    return [call for _w, p in parts if isinstance(call := p.get("functionCall"), dict)]


def _responses(parts: list[Part]) -> list[tuple[str, dict[str, object]]]:
    return [
        (where, response)
        for where, p in parts
        if isinstance(response := p.get("functionResponse"), dict)
    ]


def _check_function_turns(roles: list[str], parts: list[list[Part]]) -> None:
    for index, role in enumerate(roles):
        calls = _calls(parts[index])
        responses = _responses(parts[index])
        if calls:
            if role != "model":
                raise invalid("Please use a valid role: user, model.")
            if index == 0 or roles[index - 1] != "user":
                raise invalid(
                    "Please ensure that function call turn comes immediately after a user turn "
                    "or after a function response turn."
                )
            following = parts[index + 1] if index + 1 < len(parts) else None
            if following is not None and len(_responses(following)) != len(calls):
                raise invalid(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
        if responses:
            previous = _calls(parts[index - 1]) if index > 0 and roles[index - 1] == "model" else []
            if not previous:
                raise invalid(
                    "Please ensure that function response turn comes immediately after a "
                    "function call turn."
                )
            if len(responses) != len(previous):
                raise invalid(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
            names = {call.get("name") for call in previous}
            for where, response in responses:
                if response.get("name") not in names:
                    raise invalid(
                        f"* GenerateContentRequest.{where}.function_response.name: Function "
                        f"response name '{response.get('name')}' does not match any function "
                        "call of the function call turn.\n"
                    )


def _check_signatures(roles: list[str], parts: list[list[Part]], minter: Minter) -> None:
    """Gemini 3: every model step of the current turn echoes its first call's signature."""
    start = 0
    for index, role in enumerate(roles):
        if role == "user" and any(not p.get("functionResponse") for _w, p in parts[index]):
            start = index + 1
    for index in range(start, len(roles)):
        calls = [p for _w, p in parts[index] if isinstance(p.get("functionCall"), dict)]
        if roles[index] != "model" or not calls:
            continue
        first = calls[0]
        signature = first.get("thoughtSignature")
        name = _get(first.get("functionCall"), "name")
        if not isinstance(signature, str) or not signature:
            raise invalid(
                "Function call is missing a thought_signature in functionCall parts. This is "
                "required for tools to work correctly, and missing thought_signature may lead "
                "to degraded model performance. Additional data, function call "
                f"`default_api:{name}` , position {index + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
        if signature != SKIP_SIGNATURE and not minter.signed(_canonical(signature)):
            raise invalid(f"Corrupted thought signature in function call `default_api:{name}`.")


def _canonical(signature: str) -> str:
    """A signature as standard base64: it is proto `bytes`, which clients may re-encode
    URL-safe (google-genai does), and the API compares the bytes, not their spelling."""
    data = b64decode(signature)
    return base64.b64encode(data).decode() if data is not None else signature


def _check_tools(raw: object) -> list[str]:
    declared: list[str] = []
    for where, tool in _objects(raw, TOOL, "tools"):
        for path, declaration in _objects(
            tool.get("functionDeclarations"), FUNCTION_DECLARATION, f"{where}.function_declarations"
        ):
            name = declaration.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
                raise invalid(
                    f"* GenerateContentRequest.{path}.name: Invalid function name. Must start "
                    "with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
                    "underscores (_), dots (.), colons (:), or dashes (-), with a maximum length "
                    "of 128.\n"
                )
            if name in declared:
                raise invalid(
                    "* GenerateContentRequest.tools: Duplicate function declaration found: "
                    f"{name}\n"
                )
            declared.append(name)
            parameters = declaration.get("parameters")
            if parameters is not None and declaration.get("parametersJsonSchema") is not None:
                raise invalid(
                    f"* GenerateContentRequest.{path}: parameters and parameters_json_schema "
                    "cannot both be set.\n"
                )
            if parameters is not None:
                _check_schema(parameters, f"{path}.parameters")
                if str(_get(parameters, "type")).upper() != "OBJECT":
                    raise invalid(
                        f"* GenerateContentRequest.{path}.parameters.type: must be OBJECT for "
                        "function parameters.\n"
                    )
            json_schema = declaration.get("parametersJsonSchema")
            if json_schema is not None and not isinstance(json_schema, dict):
                raise _not_struct(f"{path}.parameters_json_schema", json_schema)
    return declared


def _get(obj: object, key: str) -> object:
    return obj.get(key) if isinstance(obj, dict) else None


def _check_schema(raw: object, path: str) -> None:
    """A `Schema` proto: known fields only, a known type, string enum values."""
    schema = _object(raw, SCHEMA, path)
    kind = schema.get("type")
    if kind is not None and str(kind).upper() not in SCHEMA_TYPES:
        raise invalid(
            f"Invalid value at '{path}.type' (type.googleapis.com/google.ai.generativelanguage"
            f'.v1beta.Type), "{kind}"'
        )
    enum = schema.get("enum")
    if isinstance(enum, list):
        for index, value in enumerate(enum):
            if not isinstance(value, str):
                raise invalid(f"Invalid value at '{path}.enum[{index}]' (TYPE_STRING), {value}")
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for index, sub in enumerate(properties.values()):
            _check_schema(sub, f"{path}.properties[{index}].value")
    if schema.get("items") is not None:
        _check_schema(schema["items"], f"{path}.items")
    options = schema.get("anyOf")
    if isinstance(options, list):
        for index, sub in enumerate(options):
            _check_schema(sub, f"{path}.any_of[{index}]")


def _check_tool_config(raw: object, declared: list[str]) -> None:
    if raw is None:
        return
    config = _object(raw, TOOL_CONFIG, "tool_config")
    if config.get("functionCallingConfig") is None:
        return
    where = "tool_config.function_calling_config"
    calling = _object(config["functionCallingConfig"], FUNCTION_CALLING_CONFIG, where)
    mode = str(calling.get("mode", "MODE_UNSPECIFIED")).upper()
    if mode not in MODES:
        raise invalid(
            f"Invalid value at '{where}.mode' (type.googleapis.com/google.ai.generativelanguage"
            f'.v1beta.FunctionCallingConfig.Mode), "{calling.get("mode")}"'
        )
    allowed = calling.get("allowedFunctionNames")
    if allowed:
        if mode not in ("ANY", "VALIDATED"):
            raise invalid(
                f"* GenerateContentRequest.{where}.allowed_function_names: "
                "allowed_function_names can only be set when mode is ANY or VALIDATED.\n"
            )
        for name in allowed if isinstance(allowed, list) else []:
            if name not in declared:
                raise invalid(
                    f"* GenerateContentRequest.{where}.allowed_function_names: Function "
                    f"'{name}' is not declared in tools.\n"
                )


def _check_generation_config(raw: object) -> None:
    if raw is None:
        return
    config = _object(raw, GENERATION_CONFIG, "generation_config")
    mime = config.get("responseMimeType")
    if mime is not None and mime not in MIME_TYPES:
        raise invalid(
            "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes "
            "are `text/plain`, `application/json`, `application/xml`, `application/yaml` and "
            "`text/x.enum`.\n"
        )
    schema, json_schema = config.get("responseSchema"), config.get("responseJsonSchema")
    if schema is not None and json_schema is not None:
        raise invalid(
            "* GenerateContentRequest.generation_config: response_schema and "
            "response_json_schema cannot both be set.\n"
        )
    if (schema is not None or json_schema is not None) and mime not in (
        "application/json",
        "text/x.enum",
    ):
        raise invalid(
            "* GenerateContentRequest.generation_config.response_mime_type: "
            "response_mime_type must be application/json or text/x.enum when a response schema "
            "is set.\n"
        )
    if schema is not None:
        _check_schema(schema, "generation_config.response_schema")
    if json_schema is not None and not isinstance(json_schema, dict):
        raise _not_struct("generation_config.response_json_schema", json_schema)
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        thinking = _object(thinking, THINKING_CONFIG, "generation_config.thinking_config")
        level = thinking.get("thinkingLevel")
        if level is not None and str(level).upper() not in THINKING_LEVELS:
            raise invalid(
                "Invalid value at 'generation_config.thinking_config.thinking_level' "
                "(type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig."
                f'ThinkingLevel), "{level}"'
            )
        if level is not None and thinking.get("thinkingBudget") is not None:
            raise invalid(
                "You can only set one of thinking budget and thinking level. Please remove one "
                "of them."
            )


def _check_tools_with_json(request: Mapping[str, object], model: str) -> None:
    config = request.get("generationConfig")
    mime = config.get("responseMimeType") if isinstance(config, dict) else None
    if request.get("tools") and mime == "application/json" and not model.startswith("gemini-3"):
        raise invalid("Tool use with a response mime type: 'application/json' is unsupported")


def check_embed(body: object, *, model: str, batch: bool) -> list[dict[str, object]]:
    """Raise `Rejected` for an embed body the API refuses; else its (normalised) requests."""
    if not isinstance(body, dict):
        raise invalid("* content: content is not specified")
    if batch:
        top = fields(body, frozenset({"requests"}), "")
        requests = list(_objects(top.get("requests"), EMBED_REQUEST, "requests"))
        if not requests:
            raise invalid("* BatchEmbedContentsRequest.requests: requests is not specified\n")
        if len(requests) > MAX_BATCH:
            raise invalid(
                "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n"
            )
    else:
        requests = [("", fields(body, EMBED_REQUEST, ""))]
    for where, request in requests:
        _check_embed_request(where, request, model)
    return [request for _where, request in requests]


def _check_embed_request(where: str, request: Mapping[str, object], model: str) -> None:
    prefix = f"{where}." if where else ""
    named = request.get("model")
    if named is not None and named != f"models/{model}":
        raise invalid(
            f"* BatchEmbedContentsRequest.{prefix}model: Model names must match the model of "
            f"the batch request: models/{model}\n"
        )
    content = request.get("content")
    if not isinstance(content, dict):
        raise invalid(f"* {prefix}content: content is not specified")
    parts = list(
        _objects(
            fields(content, CONTENT, f"{prefix}content").get("parts"),
            PART,
            f"{prefix}content.parts",
        )
    )
    if not parts or not all(isinstance(p.get("text"), str) and p.get("text") for _w, p in parts):
        raise invalid(f"* {prefix}content.parts: content must have text parts")
    task = request.get("taskType")
    if task is not None and task not in TASK_TYPES:
        raise invalid(
            f"Invalid value at '{prefix}task_type' (type.googleapis.com/google.ai."
            f'generativelanguage.v1beta.TaskType), "{task}"'
        )
    size = request.get("outputDimensionality")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise invalid(f"* {prefix}output_dimensionality: must be a positive integer")
