"""Alembic migrations of the usage store (run them with `gateway.store.migrate`)."""
