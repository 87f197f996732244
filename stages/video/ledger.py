"""The run's job ledger: every paid job id is on disk before we start waiting for it.

One JSON file per run (``<state_dir>/video_jobs.json``), rewritten atomically (temp file, fsync,
rename) after every change, so a killed worker leaves either the old or the new file, never half of
one. Entries are keyed by ``ClipSpec.key``; states:

``submitting`` (budget reserved, request in flight) -> ``submitted`` (job id known) -> ``succeeded`` |
``failed`` | ``rejected``; or ``skipped-budget``. ``committed_usd`` is what the entry counts against
the spending cap: the estimate while the job runs, the provider's final charge when it reports one,
0 when the provider never accepted the job.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from packshot.errors import PackshotError
from packshot.storage import atomic_file
from stages.video.spec import ClipSpec

LEDGER_NAME = "video_jobs.json"


class LedgerError(PackshotError):
    """The ledger file is unreadable; it is never overwritten, since it holds paid job ids."""


class JobLedger:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / LEDGER_NAME
        self._lock = threading.RLock()
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                self._entries = json.loads(self.path.read_text())["clips"]
            except (ValueError, KeyError, TypeError) as exc:
                raise LedgerError(
                    f"the video job ledger {self.path} is damaged ({exc}); it lists jobs already paid for. "
                    "Fix or move it away by hand before running again"
                ) from None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            return dict(entry) if entry else None

    def entries(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._entries.items()}

    def committed_usd(self) -> float:
        with self._lock:
            return round(sum(e.get("committed_usd", 0.0) for e in self._entries.values()), 6)

    def reserve(self, spec: ClipSpec, cap_usd: float) -> bool:
        """Record ``spec`` as ``submitting`` if its cost fits under the cap with what is already committed."""
        with self._lock:
            previous = self._entries.get(spec.key, {})
            others = self.committed_usd() - previous.get("committed_usd", 0.0)
            cost = spec.cost_usd or 0.0
            if spec.cost_usd is None or others + cost > cap_usd + 1e-9:
                return False
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
                job_id=None,
                error=None,
                error_code=None,
                output_uri=None,
            )
            return True

    def update(self, key: str, **fields: Any) -> None:
        """Merge ``fields`` into the entry and write the whole ledger atomically."""
        with self._lock:
            entry = self._entries.setdefault(key, {})
            entry.update(fields, updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": 1, "clips": self._entries}, indent=1, sort_keys=True)
        with atomic_file(self.path, "w") as fh:
            fh.write(payload)
