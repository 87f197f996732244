"""Merchant uploads: an inbox folder or S3 prefix of catalog CSVs, each taken exactly once.

Built on :class:`packshot.storage.Storage`, so a local folder and an S3 prefix behave the same:

1. a file is claimed with a marker ``.claims/by-content/<content hash>`` created only if absent
   (``O_EXCL`` locally, a conditional ``If-None-Match: *`` put on S3), so two intake runs never both
   take it, and a re-upload of the same bytes is recognised, under any name;
2. when handled it moves to ``processed/`` or ``failed/`` with its reports beside it (reports first:
   a CSV in ``processed/`` always has them), and the marker records where it went.

Files still being uploaded are left alone until they have not changed for ``settle_s`` seconds.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

from packshot.storage import Storage, StoredFile, open_storage

Outcome = Literal["processed", "failed"]


def _stamped(name: str) -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{name}"


class Inbox:
    """A place merchants drop CSVs into, with ``processed/``, ``failed/`` and ``.claims/`` beside them."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.uri = storage.uri
        self._tmp = Path(tempfile.mkdtemp(prefix="packshot-inbox-"))

    @staticmethod
    def _marker(item: StoredFile) -> str:
        """One marker per content, whatever the file is called (S3: the ETag, quotes removed)."""
        return f".claims/by-content/{re.sub(r'[^0-9A-Za-z-]', '', item.digest)[:64]}"

    def new_files(self, settle_s: float) -> list[StoredFile]:
        """CSV files directly in the inbox that have not changed for ``settle_s`` seconds."""
        now = time.time()
        csvs = [f for f in self.storage.list_files() if f.key.lower().endswith(".csv") and f.key[0] != "."]
        return [f for f in csvs if now - f.modified >= settle_s]

    def claim(self, item: StoredFile) -> bool:
        """Atomically mark ``item`` as taken; False when someone already claimed these bytes."""
        note = f"claimed {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC by pid {os.getpid()} as {item.key}\n"
        return self.storage.create_exclusive(self._marker(item), note.encode())

    def reclaim(self, item: StoredFile) -> None:
        """Take ``item`` again although its content was seen: its earlier upload failed (the merchant may
        have fixed what was wrong around it, such as a brand style), so it gets a new run."""
        when = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
        note = f"{self.claim_note(item)}\nclaimed again {when} as {item.key}\n"
        self.storage.write_bytes(self._marker(item), note.encode())

    def claim_note(self, item: StoredFile) -> str:
        """What the existing claim marker says (who took the file, where it went)."""
        key = self._marker(item)
        return self.storage.read_bytes(key).decode().strip() if self.storage.exists(key) else ""

    def local_copy(self, item: StoredFile) -> Path:
        """A local path of the CSV, for the catalog reader."""
        return self.storage.fetch_copy(item.key, self._tmp / item.digest[:16])

    def settle(self, item: StoredFile, outcome: Outcome, reports: dict[str, bytes]) -> str:
        """Move the CSV to ``processed/`` or ``failed/`` with ``reports`` (suffix -> bytes) beside it;
        return the CSV's new location."""
        target = f"{outcome}/{_stamped(PurePosixPath(item.key).name)}"
        for suffix, data in reports.items():
            self.storage.write_bytes(f"{target}{suffix}", data)
        moved = self.storage.move(item.key, target)
        note = f"{self.claim_note(item)}\n{outcome}: {moved}\n"
        self.storage.write_bytes(self._marker(item), note.encode())
        return moved


def open_inbox(uri: str) -> Inbox:
    return Inbox(open_storage(uri))
