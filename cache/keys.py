"""Cache keys: SHA-256 over a canonical form of everything that changes the answer.

The key covers the tenant (one tenant never reads another's answers), the deployment and the
provider's model name the request resolved to, the messages, and the sampling parameters. It
is built from our own `ChatRequest`, after JSON parsing, so field order, `lowerCamelCase` vs
`snake_case` and omitted-vs-default values that mean the same do not change it: `top_p` 1.0 is
the same as no `top_p`, and stop sequences are a set.
"""

from __future__ import annotations

import hashlib

import orjson

from providers.types import ChatRequest

KEY_VERSION = "v1"


def cache_key(tenant: str, deployment: str, request: ChatRequest) -> str:
    """The cache key of `request` for `tenant` on `deployment`: "v1:<tenant>:<request>"."""
    sampling = request.sampling
    canonical = orjson.dumps(
        [
            deployment,
            request.model,
            [[m.role, m.text] for m in request.messages],
            sampling.temperature,
            sampling.max_tokens,
            None if sampling.top_p == 1.0 else sampling.top_p,
            sorted(set(sampling.stop)),
        ]
    )
    tenant_part = hashlib.sha256(tenant.encode()).hexdigest()[:16]
    return f"{KEY_VERSION}:{tenant_part}:{hashlib.sha256(canonical).hexdigest()}"
