"""The usage store: tenants, API keys and the request ledger, in SQL (SQLite or PostgreSQL)."""
