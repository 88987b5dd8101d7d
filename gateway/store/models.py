"""The store's tables (SQLAlchemy 2 Core metadata; migrations in `gateway/store/migrations`).

`requests` holds one row per call that got past validation, keyed by a gateway-made call id (a
caller's `x-request-id` may repeat, so it is a plain column); `provider_attempts` one row per
try, unique per (call, attempt number). Both are written with "insert, ignore if present", so a
batch sent twice (the database committed but the connection broke before we heard) is stored
once. Money is a `Numeric` of USD with 10 decimals.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

USD = Numeric(18, 10)

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("monthly_budget_usd", USD, nullable=True),
    Column("requests_per_minute", Integer, nullable=True),
    Column("tokens_per_minute", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False, default=""),
    #: The first characters of the key, to recognise it in listings (never the whole key).
    Column("prefix", String(16), nullable=False),
    #: SHA-256 hex of the whole key: the key itself is shown once and never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("monthly_budget_usd", USD, nullable=True),
    Column("requests_per_minute", Integer, nullable=True),
    Column("tokens_per_minute", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

requests = Table(
    "requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("request_id", String(128), nullable=False, index=True),
    Column("tenant_id", String(64), nullable=False),
    Column("api_key_id", String(40), nullable=True),
    Column("transport", String(8), nullable=False),
    Column("rpc", String(32), nullable=False),
    Column("model", String(256), nullable=False),
    Column("provider", String(64), nullable=True),
    Column("provider_model", String(256), nullable=True),
    Column("status", String(32), nullable=False),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("total_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    #: Completion tokens spent on reasoning (a part of `completion_tokens`).
    Column("reasoning_tokens", Integer, nullable=False, default=0, server_default="0"),
    Column("cost_usd", USD, nullable=False, default=0),
    Column("cached", Boolean, nullable=False, default=False),
    Column("latency_ms", Integer, nullable=False, default=0),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Index("ix_requests_tenant_started", "tenant_id", "started_at"),
)

provider_attempts = Table(
    "provider_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_row_id", String(40), ForeignKey("requests.id"), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(256), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("error_code", String(32), nullable=False, default=""),
    Column("latency_ms", Integer, nullable=False, default=0),
    UniqueConstraint("request_row_id", "attempt", name="uq_provider_attempts_request_attempt"),
)
