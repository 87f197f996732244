"""The publish ledger: what went to which store, so a killed ``packshot publish`` never uploads twice.

One JSON file in the run's output (``publish_ledger.json``), rewritten whole through the run's
storage after every change (a temp file renamed on disk; an S3 object appears only complete), so a
kill leaves the old or the new ledger, never half of one. Modelled on the video stage's job ledger.

Entries are keyed by target URI + output key. States: ``uploading`` (written BEFORE the remote call:
the upload may or may not have reached the store) -> ``attached`` (the store's media id is known)
-> ``ready`` | ``failed`` (the store's processing result). On resume an ``uploading`` entry is looked
up in the store (by its file name, else by its alt text among media that were not there before the
call: ``media_before``) before anything is sent again.

No secret is ever written here: entries hold ids, file names, alt texts and checksums.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from packshot.errors import PackshotError
from packshot.storage import Storage

LEDGER_NAME = "publish_ledger.json"
DONE_STATES = ("attached", "ready")


class PublishLedgerError(PackshotError):
    """The ledger is unreadable; it is never overwritten, since it lists what the store already has."""


class PublishLedger:
    def __init__(self, storage: Storage):
        self.storage = storage
        self._lock = threading.RLock()
        self._images: dict[str, dict[str, Any]] = {}
        if storage.exists(LEDGER_NAME):
            try:
                payload = json.loads(storage.read_bytes(LEDGER_NAME))
                self._images = payload["images"]
            except (ValueError, KeyError, TypeError) as exc:
                raise PublishLedgerError(
                    f"the publish ledger {LEDGER_NAME} in the run folder is damaged ({exc}); it lists images "
                    "already sent to the store. Fix or move it away by hand before publishing again"
                ) from None

    @staticmethod
    def key(target: str, output_key: str) -> str:
        return f"{target}|{output_key}"

    def get(self, target: str, output_key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._images.get(self.key(target, output_key))
            return dict(entry) if entry else None

    def entries(self, target: str) -> dict[str, dict[str, Any]]:
        """Output key -> entry, for one target."""
        prefix = f"{target}|"
        with self._lock:
            return {k[len(prefix) :]: dict(v) for k, v in self._images.items() if k.startswith(prefix)}

    def media_ids(self, target: str, product_ref: str) -> set[str]:
        """Remote ids already recorded for one product (ours, never the merchant's)."""
        return {
            e["media_id"]
            for e in self.entries(target).values()
            if e.get("product_ref") == product_ref and e.get("media_id")
        }

    def update(self, target: str, output_key: str, **fields: Any) -> None:
        """Merge ``fields`` into the entry and write the whole ledger."""
        with self._lock:
            entry = self._images.setdefault(self.key(target, output_key), {})
            entry.update(fields, updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            self._write()

    def _write(self) -> None:
        payload = {"version": 1, "images": self._images}
        data = json.dumps(payload, indent=1, sort_keys=True).encode()
        self.storage.write_bytes(LEDGER_NAME, data, "application/json")
