"""The usage journal: every ledger row on disk before its call's answer leaves, in one write.

The usage writer keeps rows in memory and stores them in batches, so a process killed outright
(SIGKILL, the OOM killer) would lose the rows of every call it answered since its last batch.
`record()` therefore also appends the row's JSON line to this per-process file with one
`os.write` (no fsync: the page cache outlives the process, not the machine). The next writer on
the same spill path adopts whatever a dead process left (`UsageWriter.start`), and replaying a
row that was already stored is harmless: the ledger ignores rows it has.

So that the file does not grow for ever, the writer *seals* it now and then — renames it to
`<journal>.sealed` and starts a fresh one — and deletes the sealed file once every row that was
waiting in memory when it was sealed is committed, spilled or set aside. At most two files
exist: the one being written and the one sealed.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.store.records import RequestRecord

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class Journal:
    """Appends rows to `path`, one `os.write` each; seals and discards whole files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sealed_path = path.with_name(path.name + ".sealed")
        self._fd: int | None = None
        #: Rows written to the current file since it was opened.
        self.unsealed = 0

    def leftovers(self) -> list[Path]:
        """Journal files a process before this one left behind, oldest first (call before open)."""
        return [p for p in (self.sealed_path, self.path) if p.exists()]

    def open(self) -> None:
        """Start a fresh file (after `leftovers` were adopted: an existing one is appended to)."""
        self._fd = os.open(self.path, _FLAGS, 0o600)
        self.unsealed = 0

    def write(self, record: RequestRecord) -> None:
        """Append `record` as one JSON line. Raises OSError (e.g. a full disk)."""
        if self._fd is None:
            return
        data = record.to_line()
        written = os.write(self._fd, data)
        while written < len(data):  # a short write: rare, but then the rest follows it
            written += os.write(self._fd, data[written:])
        self.unsealed += 1

    def seal(self) -> bool:
        """Rename the current file aside and start a fresh one; False when nothing was sealed.

        Call only when no sealed file is waiting (`discard_sealed` first).
        """
        if self._fd is None or self.unsealed == 0:
            return False
        os.replace(self.path, self.sealed_path)
        old, self._fd = self._fd, None
        try:
            self.open()
        finally:
            os.close(old)
        return True

    def discard_sealed(self) -> None:
        """Delete the sealed file: each of its rows is stored (or spilled) elsewhere."""
        self.sealed_path.unlink(missing_ok=True)

    def close(self, *, discard: bool) -> None:
        """Stop journaling; with `discard`, delete both files (every row is safe elsewhere).

        Files this journal never opened (an earlier process's, not adopted) are left alone.
        """
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        if discard:
            self.discard_sealed()
            self.path.unlink(missing_ok=True)
