"""A loopback fake of Azure OpenAI's Chat Completions endpoint.

Azure serves `POST /openai/deployments/{deployment}/chat/completions?api-version=...` with an
`api-key` header, and answers in OpenAI's format with Azure's additions: `prompt_filter_results`
on a completion and as a stream's first chunk (`choices: []`, no usage), `content_filter_results`
on each choice. Errors raised by Azure's own front door (credential, deployment, rate limit,
missing `api-version`) are `{"error": {"code", "message"}}`; a prompt the content filter refuses
is HTTP 400 with code "content_filter" and an `innererror`; model errors are OpenAI's.

Embeddings are served at `POST /openai/deployments/{deployment}/embeddings?api-version=...` in
OpenAI's shape (`openai-python` `lib/azure.py` lists `/embeddings` among the deployment
endpoints), with OpenAI's checks; scripted answers, tool calls and the rest are OpenAI's.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from tests.fakes.base import Answer, FakeUsage, Fault, Rejected, StreamPlan, ToolCall, sse
from tests.fakes.openai_server import FakeOpenAI

__all__ = ["Answer", "FakeAzureOpenAI", "FakeUsage", "Fault", "ToolCall"]

_SAFE: Final = {"filtered": False, "severity": "safe"}
_FILTER_RESULTS: Final = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
_PROMPT_FILTER_RESULTS: Final = [{"prompt_index": 0, "content_filter_results": _FILTER_RESULTS}]
#: Azure's front-door error codes by status, when the fault names none.
_FRONT_DOOR_CODES: Final = {401: "401", 403: "403", 404: "DeploymentNotFound", 429: "429"}


class FakeAzureOpenAI(FakeOpenAI):
    """A fake Azure OpenAI resource: every deployment name is served; `model` None echoes it."""

    vendor = "azure_openai"
    path = "/openai/deployments/{deployment}/chat/completions"
    embeddings_path = "/openai/deployments/{deployment}/embeddings"

    def __init__(
        self,
        *,
        reply: str | None = "Hello from fake Azure OpenAI",
        model: str | None = None,
        usage: FakeUsage | None = None,
        finish_reason: str | None = None,
        stream_usage: bool = True,
    ) -> None:
        super().__init__(
            reply=reply,
            model=model,
            usage=usage,
            finish_reason=finish_reason,
            stream_usage=stream_usage,
        )

    @property
    def base_url(self) -> str:
        """The resource endpoint, `http://127.0.0.1:{port}`."""
        return f"http://127.0.0.1:{self.port}"

    def credential(self, request: web.Request) -> str:
        """The `api-key` header."""
        return request.headers.get("api-key", "")

    def check(self, request: web.Request, body: object) -> None:
        """Azure answers a call without `api-version` with its bare 404, then OpenAI's checks."""
        if not request.query.get("api-version"):
            # What Azure really sends (MicrosoftDocs/azure-docs#114602), not a 400.
            raise Rejected("Resource not found", code="404", status=404)
        super().check(request, body)

    def rejection_body(self, rejection: Rejected) -> object:
        """Azure's front-door shape for its 404, else OpenAI's error object."""
        if rejection.status == 404:
            return {"error": {"code": rejection.code, "message": rejection.message}}
        return super().rejection_body(rejection)

    def sizable(self, request: web.Request, body: object) -> bool:
        """Any deployment takes `dimensions` here (its model is not in the request)."""
        return True

    def echoed_model(self, request: web.Request, body: object) -> object:
        """The deployment named in the path."""
        return request.match_info["deployment"]

    def render_completion(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> object:
        """A `chat.completion` with Azure's content-filter annotations."""
        reply = super().render_completion(request, body, answer)
        assert isinstance(reply, dict)
        choices = [
            {**choice, "content_filter_results": _FILTER_RESULTS} for choice in reply["choices"]
        ]
        return {**reply, "choices": choices, "prompt_filter_results": _PROMPT_FILTER_RESULTS}

    def render_stream(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> StreamPlan:
        """OpenAI's stream, led by Azure's prompt-filter chunk."""
        plan = super().render_stream(request, body, answer)
        lead = sse(
            {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": _PROMPT_FILTER_RESULTS,
            }
        )
        return StreamPlan(
            [lead, *plan.frames],
            first_content=plan.first_content + 1,
            content=plan.content,
            content_type=plan.content_type,
        )

    def error_body(self, status: int, fault: Fault) -> object:
        """Azure's front-door shape, its content-filter 400, or OpenAI's error object."""
        if status == 400 and fault.error_code == "content_filter":
            error: dict[str, object] = {
                "message": fault.error_message,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        **_FILTER_RESULTS,
                        "violence": {"filtered": True, "severity": "high"},
                    },
                },
            }
            return {"error": error}
        if status in _FRONT_DOOR_CODES:
            code = fault.error_code or _FRONT_DOOR_CODES[status]
            return {"error": {"code": code, "message": fault.error_message}}
        return super().error_body(status, fault)
