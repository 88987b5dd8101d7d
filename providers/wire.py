"""What every adapter reads from and writes to its vendor's wire: pure functions, no I/O.

The JSON readers raise `MalformedReplyError` where a reply is not what the adapter expects;
a request converter raises `RefusedRequestError` for what the vendor would refuse;
error bodies are read leniently (`error_body`, `error_field`, `error_text`), since a body the
adapter cannot read is still an error. `bearer_auth` and `key_header` make a key's credential
header. `VendorError` is what an adapter's error-body parser makes of a failure, and
`error_for_status` turns it into our `UpstreamError`, quoting the vendor only where its message
is meant for the caller and never with a key in it. `providers.http` does the I/O around these.
"""

from __future__ import annotations

import base64
import email.utils
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import orjson

from providers.errors import (
    ContentFilteredError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.types import ImagePart, Message, TextPart

_QUOTE_LIMIT: Final = 300
_BAD_REQUEST_STATUSES: Final = frozenset({400, 413, 422})
_QUOTED_STATUSES: Final = frozenset({400, 404, 422})
#: Error class and wording by vendor HTTP status, past the bad-request family.
_STATUS_ERRORS: Final[Mapping[int, tuple[type[UpstreamError], str]]] = {
    401: (UpstreamAuthError, "rejected the gateway's credentials"),
    403: (UpstreamAuthError, "rejected the gateway's credentials"),
    404: (UpstreamNotFoundError, "does not know the model"),
    429: (UpstreamRateLimitedError, "is rate limiting the gateway"),
}


class MalformedReplyError(ValueError):
    """The vendor's body does not follow its API's schema."""


class UnsupportedContentError(ValueError):
    """A message holds content the adapter cannot send (an image to a text-only adapter)."""


class RefusedRequestError(ValueError):
    """A request the vendor would refuse or could not be sent faithfully, found before sending:
    `field` (the API's name for it) and why, worded to follow "provider 'x' ..."
    (`refused_request` makes it our error)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VendorError:
    """What a vendor said about a failure, as its adapter's error-body parser read it.

    The strings are empty where the vendor did not say. `content_filtered` is the adapter's
    verdict that the vendor refused on content-policy grounds (each vendor says so its own way).
    """

    message: str = ""
    type: str = ""
    code: str = ""
    content_filtered: bool = False
    #: The vendor said our key is invalid, whatever the status (Gemini: 400 API_KEY_INVALID).
    credential_rejected: bool = False
    #: Seconds to wait that the body gave (Gemini's RetryInfo), used when no header does.
    retry_after: float | None = None


class VendorStreamError(Exception):
    """A failure the vendor reported inside a 200 stream: the HTTP status it stands for, what
    the vendor said, and how it arrived ("error event"); the adapter maps it (`error_for_status`).
    """

    def __init__(self, status: int, error: VendorError, *, where: str) -> None:
        super().__init__(status, where)
        self.status = status
        self.error = error
        self.where = where


# -- our messages as text -----------------------------------------------------------------------


def text_of(message: Message) -> str:
    """The message's text; `UnsupportedContentError` for anything that is not text."""
    parts = message.parts
    if not message.tool_calls and (not parts or (len(parts) == 1 and type(parts[0]) is TextPart)):
        first = parts[0] if parts else None
        return first.text if isinstance(first, TextPart) else ""  # nearly every message
    if message.tool_calls:
        raise UnsupportedContentError("tool calls")
    for part in parts:
        if not isinstance(part, TextPart):
            raise UnsupportedContentError(f"a message's {type(part).__name__}")
    return message.text


def image_url(image: ImagePart) -> str:
    """The image as a URL, for vendors that take images as URLs: its own (https: or data:), or
    its bytes as a data: URL."""
    return image.url or f"data:{image.media_type};base64,{base64.b64encode(image.data).decode()}"


# -- tool calls and schemas --------------------------------------------------------------------


def mint_call_id() -> str:
    """A unique tool-call id, "call_" and 24 random hex digits, for a call the vendor sent
    without one (so same-name calls stay apart)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def json_arguments(value: Mapping[str, object] | None) -> str:
    """A call's arguments object as JSON text; "{}" for none or an empty one."""
    return orjson.dumps(value).decode() if value else "{}"


def arguments_text(function: Mapping[str, object]) -> str:
    """A call's `function.arguments` as JSON text, "" for none: a string as it is, an object
    encoded (Cohere, and some OpenAI-compatible servers, send one)."""
    value = function.get("arguments")
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    raise MalformedReplyError("arguments is not a string")


def arguments_object(text: str) -> dict[str, object] | None:
    """A call's arguments JSON text as the object it holds ({} for ""); None when the text is
    not a JSON object (validation refuses such calls before an adapter is asked)."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def integral(value: object) -> object:
    """A JSON value copied with every integral float an int (`minItems: 1`, not `1.0`):
    `google.protobuf.Struct` holds only doubles, and vendors reject `1.0` where a schema wants
    an integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(key): integral(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [integral(item) for item in value]
    return value


# -- reading vendor JSON ------------------------------------------------------------------------


def decode_object(raw: bytes) -> Mapping[str, object]:
    """Parse a JSON object; raise `MalformedReplyError` for anything else."""
    try:
        return as_object(orjson.loads(raw), "reply")
    except orjson.JSONDecodeError as exc:
        raise MalformedReplyError("reply is not JSON") from exc


def as_object(value: object, what: str) -> Mapping[str, object]:
    """Return `value` if it is a JSON object; raise `MalformedReplyError` naming `what` if not."""
    if not isinstance(value, dict):
        raise MalformedReplyError(f"{what} is not an object")
    return value


def str_field(obj: Mapping[str, object], key: str) -> str | None:
    """The string at `key` (None when absent or null); raise `MalformedReplyError` otherwise."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedReplyError(f"{key} is not a string")


def int_field(obj: Mapping[str, object], key: str) -> int:
    """The integer at `key` (0 when absent or null); raise `MalformedReplyError` otherwise."""
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise MalformedReplyError(f"{key} is not an integer")


def error_body(raw: bytes) -> object:
    """An error body parsed as JSON; None when it is not JSON (a proxy's HTML page, say)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def error_field(raw: bytes, key: str = "error") -> object:
    """The value at `key` of an error body; None when the body is not a JSON object with it."""
    body = error_body(raw)
    return body.get(key) if isinstance(body, dict) else None


def error_text(value: object) -> str:
    """A field of an error body as text; "" when it is not a string."""
    return value if isinstance(value, str) else ""


# -- credential headers -------------------------------------------------------------------------


def bearer_auth(key: str) -> Mapping[str, str]:
    """`Authorization: Bearer <key>` (no header for a server that needs no key)."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def key_header(name: str) -> Callable[[str], Mapping[str, str]]:
    """Auth that sends the key as it is in header `name` (none for a server that needs no key)."""

    def auth(key: str) -> Mapping[str, str]:
        return {name: key} if key else {}

    return auth


# -- vendor failures as our errors --------------------------------------------------------------


def error_for_status(
    status: int,
    error: VendorError,
    *,
    provider: str,
    secrets: Sequence[str] = (),
    where: str = "",
    retry_after: float | None = None,
) -> UpstreamError:
    """Map a vendor failure to our error; `where` says how it arrived (default "HTTP <status>").

    The vendor's message is quoted only for 400/404/422 (truncated, `secrets` redacted): the
    401 message echoes part of the key, and no other body is meant for the caller. Statuses
    this does not know (5xx, and vendor ones such as Anthropic's 529) mean it failed to answer.
    """
    kind: type[UpstreamError]
    if error.credential_rejected:
        kind, verb = UpstreamAuthError, "rejected the gateway's credentials"
    elif status in _BAD_REQUEST_STATUSES and error.content_filtered:
        kind, verb = ContentFilteredError, "refused on content-policy grounds"
    elif status in _BAD_REQUEST_STATUSES:
        kind, verb = UpstreamBadRequestError, "rejected the request"
    else:
        kind, verb = _STATUS_ERRORS.get(status, (UpstreamUnavailableError, "failed to answer"))
    parts = (where or f"HTTP {status}", _field("type", error.type), _field("code", error.code))
    quoted = status in _QUOTED_STATUSES and not error.credential_rejected
    said = _quote(error.message, secrets) if quoted else ""
    message = f"provider {provider!r} {verb} ({', '.join(p for p in parts if p)}){said}"
    return kind(message, provider=provider, retry_after=retry_after)


def unsupported_content(
    error: UnsupportedContentError, *, provider: str, kind: str
) -> UpstreamBadRequestError:
    """The error for content an adapter of `kind` cannot send; nothing was sent."""
    return UpstreamBadRequestError(
        f"provider {provider!r} cannot take {error}: the {kind} adapter sends text only",
        provider=provider,
    )


def refused_request(error: RefusedRequestError, *, provider: str) -> UpstreamBadRequestError:
    """The error for a request the adapter refused before sending."""
    return UpstreamBadRequestError(
        f"{error.field}: provider {provider!r} {error.reason}", provider=provider
    )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` (seconds or an HTTP date)."""
    millis = _finite(headers.get("retry-after-ms"))
    if millis is not None:
        return max(millis / 1000, 0.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def duration_seconds(duration: object) -> float | None:
    """A protobuf JSON Duration such as "43s" or "1.5s" in seconds; None if it is not one."""
    if not isinstance(duration, str) or not duration.endswith("s"):
        return None
    try:
        seconds = float(duration[:-1])
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds != float("inf") else None


def _field(name: str, value: str) -> str:
    return f"{name}={value[:64]}" if value else ""


def _quote(message: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    if len(message) > _QUOTE_LIMIT:
        message = message[: _QUOTE_LIMIT - 1] + "…"
    return f": {message}" if message else ""


def _finite(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) else None
