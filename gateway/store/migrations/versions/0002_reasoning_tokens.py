"""The requests table counts reasoning tokens (a part of the completion tokens).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add `requests.reasoning_tokens`; rows written before it count none."""
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0")
        )


def downgrade() -> None:
    """Drop `requests.reasoning_tokens`."""
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("reasoning_tokens")
