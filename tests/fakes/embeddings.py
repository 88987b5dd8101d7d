"""Deterministic embeddings for the vendor fakes: the same text always gets the same vector.

Every fake embeds with `vector(text, dimensions)`, so a test can compute the expected vector of
any input (and check that a batch split by the gateway came back joined in order). Vectors are
unit length; a shorter `dimensions` is a prefix of the longer vector re-normalised, the way
Matryoshka-trained models (OpenAI text-embedding-3, Gemini, Cohere v4) truncate.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct


def vector(text: str, dimensions: int) -> list[float]:
    """A unit vector of `dimensions` floats derived from `text` alone."""
    raw: list[float] = []
    block = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        # Eight 4-byte words per digest, each mapped to [-1, 1).
        raw += [word / 2**31 - 1.0 for word in struct.unpack(">8I", digest)]
        block += 1
    head = raw[:dimensions]
    norm = math.sqrt(sum(x * x for x in head)) or 1.0
    # Rounded through float32, as vendors compute and send them.
    return [struct.unpack("<f", struct.pack("<f", x / norm))[0] for x in head]


def float32_base64(values: list[float]) -> str:
    """`values` as little-endian float32 bytes in base64 (OpenAI's `encoding_format: base64`)."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def token_count(text: str) -> int:
    """A stand-in token count: one token per word, at least one per input."""
    return max(1, len(text.split()))
