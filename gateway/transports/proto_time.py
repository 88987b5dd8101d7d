"""Times across the protobuf edge: our aware datetimes to and from `google.protobuf.Timestamp`."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.errors import InvalidArgumentError


def to_timestamp(moment: datetime | None) -> Timestamp | None:
    """`moment` as a Timestamp; None stays None (the field is left unset)."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def from_timestamp(stamp: Timestamp, field: str) -> datetime:
    """`stamp` as an aware UTC datetime; INVALID_ARGUMENT naming `field` when no datetime can
    hold it (before the year 1 or after 9999)."""
    try:
        return stamp.ToDatetime(UTC)
    except (ValueError, OverflowError):
        raise InvalidArgumentError(
            f"{field}: must be a time between the years 1 and 9999"
        ) from None
