"""Alembic environment: runs the migrations on the connection `gateway.store.migrate` hands over.

No `alembic.ini` is shipped and logging is left alone: the gateway configures its own logs, and
the database URL (which may hold a password) is never written into alembic's config.
"""

from __future__ import annotations

from alembic import context

from gateway.store.models import metadata


def run_migrations() -> None:
    """Apply the pending migrations inside the caller's transaction."""
    connection = context.config.attributes.get("connection")
    if connection is None or context.is_offline_mode():
        raise RuntimeError("run the store's migrations with gateway.store.migrate")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
