"""A merchant's review of a run: ``review.json`` in the run folder, and the approved-only manifest.

``review.json`` holds one :class:`Decision` per output key (``SKU/cutout.png``) and optionally one
per SKU (for all of its outputs at once). An output's own decision wins over its SKU's. A decision is
about what the reviewer saw: its ``basis`` is the output's checksum (the product's content key for a
SKU decision), so once a rerun replaces the file the old decision no longer applies to it.

A rejected output may carry a :class:`Correction`: a box ``x0,y0,x1,y1`` in source-photo pixels,
include/exclude points (SAM), or a request for a new seed. Corrections are also kept per SKU in
``corrections`` (:class:`ProductCorrection`), where approving the redone image does not erase them:
every later run into the folder keeps the corrected box and seed.

The file is written atomically through :class:`packshot.storage.Storage`; a damaged file is read as
no decisions with a note (never a crash) and kept aside as ``review.damaged-<time>.json`` before the
next save overwrites it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from orchestrator.manifest import manifest_csv
from packshot.schemas.results import OutputRecord, ProductResult, RunManifest
from packshot.storage import Storage

REVIEW_KEY = "review.json"
APPROVED_JSON, APPROVED_CSV = "approved.json", "approved.csv"
DecisionStatus = Literal["approved", "rejected"]
# Output keys as the pipeline writes them: relative POSIX paths of safe names, no "..", no leading "/".
_KEY = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._-]{0,119}/){0,3}[A-Za-z0-9][A-Za-z0-9._-]{0,119}")


def valid_key(key: str) -> bool:
    """True for a relative output key of safe path parts (what the pipeline writes, nothing else)."""
    return bool(_KEY.fullmatch(key)) and ".." not in key.split("/")


class Point(BaseModel):
    """A click on the source photo, in source pixels: ``include`` (product) or exclude (background)."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    include: bool = True


class Correction(BaseModel):
    """What to do differently for a rejected output; exactly one of the three."""

    box: tuple[int, int, int, int] | None = Field(
        None, description="x0,y0,x1,y1 (exclusive) in source-photo pixels"
    )
    points: list[Point] | None = Field(None, max_length=64)
    new_seed: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Correction:
        given = [self.box is not None, bool(self.points), self.new_seed]
        if sum(given) != 1:
            raise ValueError("a correction is one of: a box, include/exclude points, or a new seed")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if min(self.box) < 0 or x1 <= x0 or y1 <= y0:
                raise ValueError(f"box {self.box} must be x0,y0,x1,y1 with 0 <= x0 < x1 and 0 <= y0 < y1")
        return self

    def fits(self, width: int, height: int) -> str | None:
        """None when the box or points lie inside a ``width x height`` photo, else what is wrong."""
        if self.box is not None and (self.box[2] > width or self.box[3] > height):
            return f"box {list(self.box)} reaches outside the {width}x{height} photo"
        for p in self.points or []:
            if p.x >= width or p.y >= height:
                return f"point ({p.x}, {p.y}) is outside the {width}x{height} photo"
        return None


class Decision(BaseModel):
    sku: str
    key: str | None = Field(None, description="output key; None for a decision about the whole SKU")
    status: DecisionStatus
    reason: str = Field("", max_length=2000)
    reviewer: str | None = Field(None, max_length=200)
    decided_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correction: Correction | None = None
    basis: str | None = Field(None, description="the output's sha256 (the product's content key for a "
                              "SKU decision) when decided; the decision lapses when that changes")

    @model_validator(mode="after")
    def _check(self) -> Decision:
        if self.key is not None and not valid_key(self.key):
            raise ValueError(f"{self.key!r} is not an output key of this run")
        if self.correction is not None and self.status != "rejected":
            raise ValueError("only a rejected output carries a correction")
        return self


class ProductCorrection(BaseModel):
    """What the runs into this folder change for one SKU, gathered from its rejections."""

    bbox: tuple[int, int, int, int] | None = Field(None, description="replaces the catalog's box")
    points: list[Point] | None = None
    seed_offset: int = Field(0, ge=0, description="added to the brand seed of generated images")
    recolor_modes: dict[str, Literal["relative", "exact-swatch"]] = Field(
        default_factory=dict, description="color variant slug -> the recolor mode replacing a rejected one")
    updated: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def merged(self, c: Correction) -> ProductCorrection:
        update: dict = {"updated": datetime.now(UTC)}
        if c.box is not None:
            update |= {"bbox": c.box, "points": None}
        if c.points:
            update |= {"points": c.points, "bbox": None}
        if c.new_seed:
            update["seed_offset"] = self.seed_offset + 1
        return self.model_copy(update=update)


_OTHER_MODE = {"relative": "exact-swatch", "exact-swatch": "relative"}


def recolor_redo(record: OutputRecord, correction: ProductCorrection | None) -> tuple[str | None, str]:
    """How a rejected color variant ``record`` is redone: (the recolor mode its redo uses, what the
    review page says), or (None, why it cannot be). A variant is redone once, in the other mode."""
    info = record.recolor
    if record.variant is None or info is None:
        return None, ""
    chosen = correction.recolor_modes.get(record.variant) if correction is not None else None
    fix = "give the product a recolor_mask (its main material drawn on the photo) or photo_color in the " \
        "catalog"
    if chosen is not None and chosen == info.mode:
        return None, (f"cannot be redone automatically: it is already the redo in {info.mode} mode of a "
                      f"rejected {_OTHER_MODE[info.mode]} variant; {fix}")
    if info.own_color is None:
        return None, ("cannot be redone automatically: the product's own color is not known, so both recolor "
                      f"modes give this color; {fix}")
    other = _OTHER_MODE[info.mode]
    return other, f"redone in {other} mode by the next run with --from-review"


class ReviewFile(BaseModel):
    """The contents of ``review.json``."""

    version: Literal[1] = 1
    updated: datetime | None = None
    outputs: dict[str, Decision] = Field(default_factory=dict, description="by output key")
    products: dict[str, Decision] = Field(default_factory=dict, description="by SKU, for all its outputs")
    corrections: dict[str, ProductCorrection] = Field(default_factory=dict, description="by SKU")

    def decision_for(self, p: ProductResult, o: OutputRecord) -> Decision | None:
        """The decision that holds for output ``o`` of ``p`` as it is now, if any."""
        d = self.outputs.get(o.key)
        if d is not None and d.basis in (None, o.sha256):
            return d
        d = self.products.get(p.sku) if p.sku is not None else None
        return d if d is not None and d.basis in (None, p.key) else None

    def product_decision(self, p: ProductResult) -> Decision | None:
        d = self.products.get(p.sku) if p.sku is not None else None
        return d if d is not None and d.basis in (None, p.key) else None

    def verdict(self, p: ProductResult) -> str:
        """rejected when any output is, approved when every output is, else undecided."""
        states = [d.status if (d := self.decision_for(p, o)) else None for o in p.outputs]
        if not states:
            d = self.product_decision(p)
            return d.status if d else "undecided"
        if "rejected" in states:
            return "rejected"
        return "approved" if all(s == "approved" for s in states) else "undecided"

    def to_redo(self, manifest: RunManifest) -> list[str]:
        """SKUs, in catalog order, with a rejection that holds for their current outputs and that a
        rerun can act on (see :meth:`cannot_redo`)."""
        return [p.sku for p in manifest.products if p.sku is not None and (
            any((d := self.decision_for(p, o)) and d.status == "rejected" and not self.cannot_redo(p, o)
                for o in p.outputs)
            or ((d := self.product_decision(p)) is not None and d.status == "rejected"))]

    def cannot_redo(self, p: ProductResult, o: OutputRecord) -> str | None:
        """Why rerunning would give the rejected color variant ``o`` back unchanged, or None."""
        mode, why = recolor_redo(o, self.corrections.get(p.sku or ""))
        return why if mode is None and why else None


def load_review(storage: Storage) -> tuple[ReviewFile, str | None]:
    """The run's review and None, or what could be read of it and a note: a missing file is no
    decisions; a damaged entry is left out (the others hold); an unreadable file is no decisions."""
    try:
        data = storage.read_bytes(REVIEW_KEY) if storage.exists(REVIEW_KEY) else None
    except OSError as exc:
        return ReviewFile(), f"{REVIEW_KEY} could not be read ({exc}); starting with no decisions"
    if data is None:
        return ReviewFile(), None
    try:
        return ReviewFile.model_validate_json(data), None
    except (ValidationError, ValueError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0][:200]
    kept = _readable_entries(data)
    if kept is not None:
        review, dropped = kept
        what = f"{dropped} damaged entr{'y' if dropped == 1 else 'ies'}" if dropped else "its damaged header"
        return review, (f"{REVIEW_KEY}: {what} left out ({first}); the other decisions hold. The file as "
                        "it was is kept as review.damaged-<time>.json at the next save.")
    return ReviewFile(), (f"{REVIEW_KEY} could not be read ({first}); starting with no decisions. "
                          "The damaged file is kept as review.damaged-<time>.json at the next save.")


def _readable_entries(data: bytes) -> tuple[ReviewFile, int] | None:
    """The entries of a review file that are valid one by one, and how many were not; None when the
    file is not a JSON object of the review's tables at all."""
    import json

    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(raw, dict):
        return None
    review, dropped = ReviewFile(), 0
    tables = {"outputs": (review.outputs, Decision), "products": (review.products, Decision),
              "corrections": (review.corrections, ProductCorrection)}
    for name, (table, model) in tables.items():
        entries = raw.get(name, {})
        if not isinstance(entries, dict):
            dropped += 1
            continue
        for key, value in entries.items():
            try:
                table[key] = model.model_validate(value)
            except (ValidationError, ValueError, TypeError):
                dropped += 1
    return review, dropped


def save_review(storage: Storage, review: ReviewFile) -> str:
    """Write ``review.json`` in one atomic step; returns its URI."""
    review.updated = datetime.now(UTC)
    return storage.write_bytes(REVIEW_KEY, review.model_dump_json(indent=1).encode(), "application/json")


def stored_version(storage: Storage, key: str) -> object:
    """Something that changes whenever ``key``'s content does (None when it is missing): the file's
    modification time and size locally, the object's ETag on S3. Cheap: no content is read."""
    path = storage.local_path(key)
    if path is not None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino
    files = [f for f in storage.list_files(str(PurePosixPath(key).parent).strip(".")) if f.key == key]
    return files[0].digest if files else None


LEASE_WAIT_S = 30.0  # a decision waits this long for another review server's save to finish


class ReviewStore:
    """The review of one run as a review server holds it. Every change is a read-modify-write of
    ``review.json`` under the output's ``review`` lease (an OS file lock, or a conditional create on
    S3): the file is read again, the one decision applied, and the file saved, so two review servers
    (or two browser tabs, or a server and a script) on one folder never lose each other's decisions.
    Reads see the other servers' decisions too: the file is read again when it changed."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self._lock = threading.Lock()
        self._version: object = None
        self.review, self.note = ReviewFile(), None
        self._damaged = False
        self.refresh()

    def refresh(self) -> ReviewFile:
        """The review as it is on storage now (read again only when the file changed)."""
        with self._lock:
            self._reload()
            return self.review

    def _reload(self) -> None:
        version = stored_version(self.storage, REVIEW_KEY)
        if version is not None and version == self._version:
            return
        self.review, self.note = load_review(self.storage)
        self._damaged = self.note is not None and version is not None
        self._version = version

    @contextmanager
    def _change(self) -> Iterator[ReviewFile]:
        """The current review, to change in place; saved under the lease when the block ends."""
        from packshot.lease import acquire_lease

        with self._lock, acquire_lease(self.storage, "review", "packshot review (saving a decision)",
                                       wait_s=LEASE_WAIT_S):
            self._reload()  # under the lease: read again if another server saved since (its version differs)
            if self._damaged:  # keep the merchant's unreadable file rather than overwrite it
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
                self.storage.write_bytes(f"review.damaged-{stamp}.json", self.storage.read_bytes(REVIEW_KEY))
            yield self.review
            save_review(self.storage, self.review)
            self._damaged, self.note = False, None
            self._version = stored_version(self.storage, REVIEW_KEY)

    def decide(self, decision: Decision, record: OutputRecord | None = None) -> Decision:
        """Record ``decision`` (its ``basis`` set by the caller) and save the file under the review lease.
        ``record``: the output decided on; a rejected color variant gets the other recolor mode for its
        redo."""
        with self._change() as review:
            table = review.outputs if decision.key is not None else review.products
            table[decision.key if decision.key is not None else decision.sku] = decision
            if decision.correction is not None:
                before = review.corrections.get(decision.sku, ProductCorrection())
                review.corrections[decision.sku] = before.merged(decision.correction)
            if decision.status == "rejected" and record is not None:
                before = review.corrections.get(decision.sku, ProductCorrection())
                mode, _ = recolor_redo(record, before)
                if mode is not None:
                    review.corrections[decision.sku] = before.model_copy(update={
                        "recolor_modes": {**before.recolor_modes, record.variant: mode},
                        "updated": datetime.now(UTC)})
        return decision

    def undo(self, sku: str, key: str | None) -> bool:
        removed = False
        with self._change() as review:
            table = review.outputs if key is not None else review.products
            removed = table.pop(key if key is not None else sku, None) is not None
        return removed


def approved_products(manifest: RunManifest, review: ReviewFile) -> Iterator[ProductResult]:
    """Each product with only its approved outputs; products with none approved are left out."""
    for p in manifest.products:
        kept = [o for o in p.outputs if (d := review.decision_for(p, o)) and d.status == "approved"]
        if kept:
            yield p.model_copy(update={"outputs": kept})


def export_approved(out: Storage) -> tuple[str, str, int]:
    """Write ``approved.json`` and ``approved.csv`` (the manifest's format, approved outputs only)
    next to the run's manifest; returns their URIs and the number of outputs."""
    manifest = RunManifest.model_validate_json(out.read_bytes("manifest.json"))
    review, note = load_review(out)
    products = list(approved_products(manifest, review))
    notes = [f"approved outputs only, from {REVIEW_KEY} (updated {review.updated or 'never'})"]
    approved = manifest.model_copy(update={"products": products, "notes": notes + ([note] if note else [])})
    json_uri = out.write_bytes(APPROVED_JSON, approved.model_dump_json(indent=2).encode(), "application/json")
    csv_uri = out.write_bytes(APPROVED_CSV, manifest_csv(approved).encode(), "text/csv")
    return json_uri, csv_uri, sum(len(p.outputs) for p in products)
