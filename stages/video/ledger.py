"""The run's job ledger: every paid job id is on disk before we start waiting for it.

One JSON file per run (``<state_dir>/video_jobs.json``), rewritten atomically (temp file, fsync,
rename) after every change, so a killed worker leaves either the old or the new file, never half of
one; every change is a read-modify-write under a file lock, so processes sharing it lose nothing.
Entries are keyed by ``ClipSpec.key`` (the image's hash, prompt, provider, model, duration, size);
states:

``submitting`` (budget reserved, request in flight) -> ``submitted`` (job id known) -> ``succeeded`` |
``failed`` | ``rejected``; or ``skipped-budget``. ``committed_usd`` is what the entry counts against
the spending cap: the estimate while the job runs, the provider's final charge when it reports one,
0 when the provider never accepted the job.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from packshot.errors import PackshotError
from packshot.storage import atomic_file
from stages.video.spec import ClipSpec

LEDGER_NAME = "video_jobs.json"


class LedgerError(PackshotError):
    """The ledger file is unreadable; it is never overwritten, since it holds paid job ids."""


class JobLedger:
    """The ledger of one state folder, shared safely by every thread and process that uses it: each
    read or change happens under an OS file lock (``video_jobs.lock``) on the file's current content
    on disk, so two processes rendering into one run see each other's jobs and share one spending
    cap, and neither overwrites the other's entries."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / LEDGER_NAME
        self._lock = threading.RLock()
        self._depth = 0  # nesting of _locked() in the thread holding _lock
        self._lock_fd: int | None = None
        self._entries: dict[str, dict[str, Any]] = {}
        self._seen: tuple | None = None  # the file's signature when last read or written
        with self._locked():
            pass  # reads the file now: a damaged ledger stops the run before anything is paid

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the thread and file locks, with ``_entries`` freshly read from disk."""
        with self._lock:
            self._depth += 1
            try:
                if self._depth == 1:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                    fcntl.flock(fd, fcntl.LOCK_EX)  # held for a file read or write: milliseconds
                    self._lock_fd = fd
                    self._refresh()
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._lock_fd is not None:
                    fd, self._lock_fd = self._lock_fd, None
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)

    def _signature(self) -> tuple | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino  # a rename by another process changes the inode

    def _refresh(self) -> None:
        """Read the file again when another process changed it since we last read or wrote it."""
        signature = self._signature()
        if signature is None or signature != self._seen:
            self._entries = self._read()
            self._seen = signature

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text())["clips"]
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(
                f"the video job ledger {self.path} is damaged ({exc}); it lists jobs already paid for. "
                "Fix or move it away by hand before running again"
            ) from None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._locked():
            entry = self._entries.get(key)
            return dict(entry) if entry else None

    def entries(self) -> dict[str, dict[str, Any]]:
        with self._locked():
            return {k: dict(v) for k, v in self._entries.items()}

    def committed_usd(self) -> float:
        with self._locked():
            return round(sum(e.get("committed_usd", 0.0) for e in self._entries.values()), 6)

    def reserve(self, spec: ClipSpec, cap_usd: float) -> bool:
        """Record ``spec`` as ``submitting`` if its cost fits under the cap with what is already committed."""
        return self.claim(spec, cap_usd)[0] == "reserved"

    def claim(self, spec: ClipSpec, cap_usd: float) -> tuple[str, dict[str, Any] | None]:
        """Atomically (across processes) take ``spec`` for submission: ``("reserved", None)`` when its
        cost fits under the cap and nobody has it; ``("taken", entry)`` when another process submitted
        or is submitting it (or it already has its final answer), so it must not be paid again;
        ``("over-cap", None)`` when it does not fit."""
        with self._locked():
            previous = self._entries.get(spec.key, {})
            if holds_job(previous):
                return "taken", dict(previous)
            others = self.committed_usd() - previous.get("committed_usd", 0.0)
            cost = spec.cost_usd or 0.0
            if spec.cost_usd is None or others + cost > cap_usd + 1e-9:
                return "over-cap", None
            self.update(
                spec.key,
                sku=spec.sku,
                name=spec.name,
                provider=spec.provider,
                model=spec.model,
                duration_s=spec.duration_s,
                size=spec.size_label,
                estimated_cost_usd=cost,
                committed_usd=cost,
                status="submitting",
                owner=OWNER,
                job_id=None,
                error=None,
                error_code=None,
                output_uri=None,
            )
            return "reserved", None

    def update(self, key: str, **fields: Any) -> None:
        """Merge ``fields`` into the entry and write the whole ledger atomically."""
        with self._locked():
            entry = self._entries.setdefault(key, {})
            entry.update(fields, updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": 1, "clips": self._entries}, indent=1, sort_keys=True)
        with atomic_file(self.path, "w") as fh:
            fh.write(payload)
        self._seen = self._signature()


STICKY_FAILURES = ("AMBIGUOUS_SUBMISSION", "INTERRUPTED_SUBMISSION")
OWNER = f"{socket.gethostname()}:{os.getpid()}"  # who reserved an entry ("submitting")


def submitter_alive(entry: dict[str, Any]) -> bool:
    """True when a ``submitting`` entry was reserved by another process on this machine that is still
    running (it is sending the request now); False for one of a run that stopped, or of this process."""
    host, _, pid = str(entry.get("owner") or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def holds_job(entry: dict[str, Any]) -> bool:
    """True when an entry stands for a job that was (or may have been) paid for, or a final answer
    (a rejection, a failure that must not be retried blindly): submitting it again could pay twice."""
    status = entry.get("status")
    return (status in ("submitting", "submitted", "rejected")
            or (status == "succeeded" and bool(entry.get("output_uri")))
            or (status == "failed" and entry.get("error_code") in STICKY_FAILURES))
