"""The spill file: usage rows that could not wait in memory, as JSON lines, until they are stored.

New rows are appended to `path`. To replay, the file is first *claimed* — renamed to
`<path>.replaying` — so rows spilled during the replay land in a fresh `path` and are never cut
off when the claimed file is deleted; the claimed file is deleted only once all of its rows are
committed. A claimed file left behind by a crash is replayed first on the next start; replaying
rows that were already stored is harmless, as the ledger ignores rows it has.

One `UsageWriter` owns a spill path; two processes must not share one, so each worker process
has its own (`worker_spill_path`), and the files of workers that no longer exist are merged
into worker 0's before any starts (`merge_orphan_spills`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.store.records import RequestRecord


@dataclass(frozen=True, slots=True)
class SpillChunk:
    """Rows read from a claimed spill file, and where to continue."""

    records: list[RequestRecord]
    next_offset: int
    #: Lines that were not a record (a line torn by a crash mid-write).
    skipped: int
    at_end: bool


class SpillFile:
    """Appends rows to a JSON-lines file and hands it back for replay."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.claimed_path = path.with_name(path.name + ".replaying")
        self._tail_checked = False

    def has_rows(self) -> bool:
        """Whether anything waits to be replayed (a stat call: not for the hot path)."""
        return self.claimed_path.exists() or _size(self.path) > 0

    def append(self, records: Iterable[RequestRecord]) -> int:
        """Append `records`, one line each; returns how many. Raises OSError on failure."""
        lines = [record.to_line() for record in records]
        if not lines:
            return 0
        with self.path.open("ab") as file:
            if not self._tail_checked:
                # A crash may have left a torn last line: never glue a good line onto it.
                if _ends_without_newline(self.path):
                    file.write(b"\n")
                self._tail_checked = True
            file.write(b"".join(lines))
        return len(lines)

    def adopt(self, path: Path) -> None:
        """Append the JSON lines of file `path` (a dead process's journal), then delete it.

        Raises OSError. Interrupted between the two, the lines are appended again next time:
        harmless, as replayed rows the ledger has are ignored.
        """
        data = path.read_bytes()
        if data.strip():
            if not data.endswith(b"\n"):
                data += b"\n"  # a torn last line stays one bad line, never glued to the next
            with self.path.open("ab") as file:
                if _ends_without_newline(self.path):
                    file.write(b"\n")
                file.write(data)
        path.unlink()

    def claim(self) -> Path | None:
        """The file to replay next (renaming `path` aside), or None when nothing waits."""
        if self.claimed_path.exists():
            return self.claimed_path
        if _size(self.path) == 0:
            return None
        os.replace(self.path, self.claimed_path)
        self._tail_checked = False
        return self.claimed_path

    def release(self) -> None:
        """Delete the claimed file: all of its rows are stored."""
        self.claimed_path.unlink(missing_ok=True)


def worker_spill_path(base: Path, index: int) -> Path:
    """Worker `index`'s spill path: worker 0 keeps `base`, so WORKERS=1 finds its rows."""
    if index == 0:
        return base
    return base.with_name(f"{base.stem}.w{index}{base.suffix}")


def merge_orphan_spills(base: Path, workers: int) -> list[str]:
    """Append the files of workers numbered `workers` and up (spilled, claimed, journal) to
    worker 0's spill file `base`; returns the names of the files merged (and deleted).

    Run it before any worker starts, so nothing else touches the files. Rows the database
    refused (`.rejected`) stay where they are. Raises OSError.
    """
    merged = []
    spill = SpillFile(base)
    for path in sorted(base.parent.glob(f"{base.stem}.w*{base.suffix}*")):
        index = path.name[len(base.stem) + 2 :].split(".", 1)[0]
        if not index.isdecimal() or int(index) < workers or path.name.endswith(".rejected"):
            continue
        spill.adopt(path)
        merged.append(path.name)
    return merged


def read_chunk(path: Path, offset: int, limit: int) -> SpillChunk:
    """Up to `limit` records from `path` starting at byte `offset` (blocking: run in a thread)."""
    records: list[RequestRecord] = []
    skipped = 0
    with path.open("rb") as file:
        file.seek(offset)
        while len(records) < limit:
            line = file.readline()
            if not line:
                return SpillChunk(records, file.tell(), skipped, at_end=True)
            if not line.strip():
                continue
            try:
                records.append(RequestRecord.from_json(line))
            except ValueError:
                skipped += 1
        return SpillChunk(records, file.tell(), skipped, at_end=False)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _ends_without_newline(path: Path) -> bool:
    size = _size(path)
    if size == 0:
        return False
    with path.open("rb") as file:
        file.seek(size - 1)
        return file.read(1) != b"\n"
