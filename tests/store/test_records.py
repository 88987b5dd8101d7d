"""Records round-trip through one line of JSON each, with times in UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from gateway.store.records import RequestRecord
from tests.store.rows import make_record


def test_a_record_survives_a_round_trip_through_json() -> None:
    record = make_record(7, api_key_id="key_1", cost_usd=0.0123)
    assert RequestRecord.from_json(record.to_json()) == record


def test_reasoning_and_an_estimated_usage_survive_the_round_trip() -> None:
    record = make_record(8, reasoning_tokens=12, usage_estimated=True)
    assert RequestRecord.from_json(record.to_json()) == record


def test_a_line_written_before_usage_estimated_reads_as_the_providers_counts() -> None:
    fields = orjson.loads(make_record(9).to_json())
    del fields["usage_estimated"]  # a spill file left by the previous release
    assert not RequestRecord.from_json(orjson.dumps(fields)).usage_estimated


def test_json_is_one_line_with_utc_iso_times() -> None:
    paris = timezone(timedelta(hours=1))
    record = make_record(1, started_at=datetime(2025, 3, 1, 13, 0, tzinfo=paris))
    line = record.to_json()
    assert "\n" not in line
    assert orjson.loads(line)["started_at"] == "2025-03-01T12:00:00+00:00"


def test_naive_times_are_taken_as_utc() -> None:
    record = make_record(1, started_at=datetime(2025, 3, 1, 12, 0))
    assert orjson.loads(record.to_json())["started_at"] == "2025-03-01T12:00:00+00:00"


@pytest.mark.parametrize("line", ["", "{", "[]", '{"id": "x"}', '{"started_at": 1}'])
def test_anything_else_is_refused_with_value_error(line: str) -> None:
    with pytest.raises(ValueError, match="RequestRecord"):
        RequestRecord.from_json(line)
