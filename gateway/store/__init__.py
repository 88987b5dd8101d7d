"""The usage store: tenants, API keys and the request ledger, in SQL (SQLite or PostgreSQL).

- `engine`: database URLs and tuned async engines; `migrate`: Alembic migrations to `HEAD`.
- `models`: the tables; `values`: times and money as both databases store them.
- `records`: what a call leaves in the ledger; `ledger`: idempotent inserts of records.
- `writer`: `UsageWriter`, batching records off the hot path; `spill`: its overflow file.
- `repository`: tenants and API keys (and, from `usage`, the usage reports).
"""
