"""The publish ledger: what went to which store, so a killed ``packshot publish`` never uploads twice.

One JSON file in the run's output (``publish_ledger.json``), rewritten whole through the run's
storage after every change (a temp file renamed on disk; an S3 object appears only complete), so a
kill leaves the old or the new ledger, never half of one. Modelled on the video stage's job ledger.

Entries are keyed by the store (its normalised address, :func:`packshot.sources.base.store_uri`), the
SKU and the image's content (sha256): a rerun that makes new images for the same outputs sends the new
ones, and the same store typed another way (``LOCALHOST``, a trailing slash, ``:443``) is the same
store. States: ``uploading`` (written BEFORE the remote call: the upload may or may not have reached
the store) -> ``attached`` (the store's media id is known) -> ``ready`` | ``failed`` (the store's
processing result); ``replaced`` when a newer image of the same output took its place.

The ledger is a record, not the truth: before sending, every image it does not list as done is looked
up in the store by its file name (which holds the content hash), and an ``uploading`` one also by its
alt text among media that were not there before its call (``media_before``). So a damaged ledger is
set aside (kept beside it for a person to read) and publishing goes on as if there were none: nothing
is sent twice, and nothing needs fixing by hand.

No secret is ever written here: entries hold ids, file names, alt texts and checksums.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from packshot.errors import PackshotError
from packshot.schemas.results import OutputRecord
from packshot.sources.base import SourceError, store_uri
from packshot.storage import Storage

LEDGER_NAME = "publish_ledger.json"
DONE_STATES = ("attached", "ready")
VERSION = 2


class PublishLedgerError(PackshotError):
    """The ledger cannot be written."""


class LedgerEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["uploading", "attached", "ready", "failed", "replaced"]
    sku: str | None = None
    sha256: str | None = None
    output_key: str | None = None
    product_ref: str | None = None
    filename: str | None = None
    alt: str | None = None
    media_id: str | None = None
    media_before: list[str] | None = None


class LedgerFile(BaseModel):
    version: int = 1
    images: dict[str, LedgerEntry]


def entry_key(target: str, sku: str, sha256: str) -> str:
    return f"{store_uri(target)}|{sku}|{sha256}"


class PublishLedger:
    def __init__(self, storage: Storage, *, dry_run: bool = False):
        """``dry_run``: read only; a damaged ledger is reported, not set aside."""
        self.storage, self.dry_run = storage, dry_run
        self._lock = threading.RLock()
        self._images: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []  # what a person should know (a damaged ledger set aside)
        if storage.exists(LEDGER_NAME):
            data = storage.read_bytes(LEDGER_NAME)
            try:
                payload = LedgerFile.model_validate_json(data)
            except ValidationError as exc:
                self._set_aside(_reason(exc))
            else:
                self._images = _current_keys(payload)

    def _set_aside(self, reason: str) -> None:
        aside = f"publish_ledger.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        if self.dry_run:
            aside = f"{aside} when publishing for real"
        else:
            self.storage.move(LEDGER_NAME, aside)
        self.notes.append(
            f"the publish ledger {LEDGER_NAME} was damaged ({reason}); kept as {aside}. Every image is "
            "looked up in the store by its file name before sending, so nothing already there is sent again"
        )

    def get(self, target: str, sku: str, sha256: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._images.get(entry_key(target, sku, sha256))
            return dict(entry) if entry else None

    def entries(self, target: str) -> dict[str, dict[str, Any]]:
        """Entry key -> entry, for one target."""
        prefix = f"{store_uri(target)}|"
        with self._lock:
            return {k: dict(v) for k, v in self._images.items() if k.startswith(prefix)}

    def media_ids(self, target: str, product_ref: str) -> set[str]:
        """Remote ids recorded for one product (ours, never the merchant's)."""
        return {
            e["media_id"]
            for e in self.entries(target).values()
            if e.get("product_ref") == product_ref and e.get("media_id")
        }

    def superseded(self, target: str, product_ref: str, outputs: list[OutputRecord], present: set[str]
                   ) -> dict[str, dict]:
        """Entry key -> entry of our earlier images of these outputs (other content) that are still among
        the product's ``present`` media: a rerun's new images take their place."""
        newest = {o.key: o.sha256 for o in outputs}
        return {
            k: e
            for k, e in self.entries(target).items()
            if e.get("product_ref") == product_ref and e.get("output_key") in newest
            and e.get("sha256") != newest[e["output_key"]] and e.get("status") in DONE_STATES
            and e.get("media_id") in present
        }

    def found(self, target: str, output: OutputRecord, product_ref: str, filename: str, media_id: str,
              status: str) -> None:
        """Record an image found in the store before sending (a killed publish, a lost ledger)."""
        if not self.dry_run:
            self.update(target, output.sku, output.sha256, status=status, media_id=media_id,
                        product_ref=product_ref, output_key=output.key, filename=filename,
                        note="found in the store before sending: not uploaded again")

    def update(self, target: str, sku: str, sha256: str, **fields: Any) -> None:
        """Merge ``fields`` into the entry and write the whole ledger."""
        self.update_key(entry_key(target, sku, sha256), sku=sku, sha256=sha256, **fields)

    def update_key(self, key: str, **fields: Any) -> None:
        with self._lock:
            entry = self._images.setdefault(key, {})
            entry.update(fields, updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            self._write()

    def _write(self) -> None:
        if self.dry_run:
            return
        payload = {"version": VERSION, "images": self._images}
        data = json.dumps(payload, indent=1, sort_keys=True).encode()
        try:
            self.storage.write_bytes(LEDGER_NAME, data, "application/json")
        except OSError as exc:
            where = self.storage.uri
            raise PublishLedgerError(f"cannot write the publish ledger in {where} ({exc})") from None


def _current_keys(payload: LedgerFile) -> dict[str, dict[str, Any]]:
    """Entries under today's keys: a version-1 ledger was keyed by the target as typed and the output
    key; its entries carry the SKU and checksum they are keyed by now."""
    images: dict[str, dict[str, Any]] = {}
    for key, entry in payload.images.items():
        data = entry.model_dump(exclude_none=True)
        target = key.split("|", 1)[0]
        if payload.version < 2 and "output_key" not in data:
            data["output_key"] = key.split("|", 1)[1] if "|" in key else None
        if not (entry.sku and entry.sha256):
            continue  # an old entry that cannot be keyed by content: the store lookup covers it
        try:
            images[entry_key(target, entry.sku, entry.sha256)] = data
        except SourceError:
            continue
    return images


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
