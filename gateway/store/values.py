"""Values crossing into and out of the database, made to mean the same on SQLite and PostgreSQL.

Times are stored in UTC: PostgreSQL keeps the zone (`timestamptz`), SQLite keeps the UTC wall
clock as text and hands back naive datetimes, which are UTC by construction. Money is a
`Numeric` column: written as an exact `Decimal` of the float's shortest repr, read as a float.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal


def to_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_money(usd: float | None) -> Decimal | None:
    """A float of USD as the exact decimal a person would write for it."""
    return None if usd is None else Decimal(repr(float(usd)))


def from_money(value: Decimal | float | int | None) -> float | None:
    """A stored amount of USD as a float (None stays None)."""
    return None if value is None else float(value)
