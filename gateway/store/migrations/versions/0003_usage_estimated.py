"""The requests table marks usage the gateway estimated because the provider reported none.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add `requests.usage_estimated`; rows written before it hold the provider's own counts."""
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("usage_estimated", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    """Drop `requests.usage_estimated`."""
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("usage_estimated")
