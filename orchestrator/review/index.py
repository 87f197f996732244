"""What the review page lists: a run's products read once from ``manifest.json``, filtered and paged.

Reading a 10,000-product manifest takes about a second; after that a page of 50 products is a
slice of a list. The manifest is read again when its file changes (a rerun finished).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from orchestrator.report import thumb_key as report_thumb_key
from orchestrator.review.decisions import Correction, Decision, ReviewFile, stored_version, valid_key
from packshot.errors import PackshotError
from packshot.schemas.results import OutputRecord, ProductResult, RunManifest
from packshot.storage import Storage

SHA = re.compile(r"[0-9a-f]{64}")
POINT_BACKENDS = ("sam", "tiny")  # segmenters that take include/exclude points


def warnings_of(p: ProductResult) -> list[str]:
    """What a reviewer should look at: review reasons, notes (not the 'unchanged' one), failed checks."""
    reasons = list(p.review_reasons)
    notes = [n for n in p.notes if not n.startswith("unchanged")]
    checks = [f"{o.key}: {c}" for o in p.outputs for c in o.checks]
    return reasons + notes + checks


@dataclass
class RunIndex:
    """The products of one run (a local folder or an S3 prefix), in catalog order."""

    storage: Storage
    manifest: RunManifest
    version: object  # manifest.json's stored version (mtime and size, or ETag) when read
    by_sku: dict[str, ProductResult]
    files: set[str]  # every key the page may show: outputs and source previews

    @classmethod
    def load(cls, storage: Storage) -> RunIndex:
        """The index of the run in ``storage``; one-line :class:`PackshotError` when its manifest is
        missing or damaged (a rerun writes a whole new one)."""
        version = stored_version(storage, "manifest.json")
        if version is None:
            raise PackshotError(f"{storage.uri} has no manifest.json: give the --out of a finished "
                                "`packshot run` (a folder or s3://bucket/prefix)")
        try:
            manifest = RunManifest.model_validate_json(storage.read_bytes("manifest.json"))
        except (ValidationError, ValueError, UnicodeDecodeError) as exc:
            first = str(exc).splitlines()[0][:200]
            raise PackshotError(f"{storage.uri}: manifest.json is damaged ({first}); run the catalog "
                                "into this output again to rewrite it") from None
        by_sku = {p.sku: p for p in manifest.products if p.sku is not None}
        files = {o.key for p in manifest.products for o in p.outputs if valid_key(o.key)}
        previews = {p.source_preview for p in manifest.products if p.source_preview}
        files |= {key for key in previews if valid_key(key)}
        return cls(storage, manifest, version, by_sku, files)

    def fresh(self) -> RunIndex:
        """This index, or a new one when ``manifest.json`` changed (a rerun finished); this one when
        the new file cannot be read (a rerun is writing it)."""
        try:
            changed = stored_version(self.storage, "manifest.json") not in (None, self.version)
        except Exception:  # storage unreachable for a moment: keep showing what we have
            changed = False
        if not changed:
            return self
        try:
            return RunIndex.load(self.storage)
        except PackshotError:
            return self

    @property
    def takes_points(self) -> bool:
        return self.manifest.backends.get("segment", "") in POINT_BACKENDS

    def output(self, sku: str, key: str) -> OutputRecord | None:
        product = self.by_sku.get(sku)
        return next((o for o in product.outputs if o.key == key), None) if product else None

    def photo_size(self, sku: str) -> tuple[int, int] | None:
        """The source photo's width and height: the cutout is made at the photo's size."""
        product = self.by_sku.get(sku)
        cutout = next((o for o in product.outputs if o.kind == "cutout" and o.photo == 1), None) \
            if product else None
        return (cutout.width, cutout.height) if cutout else None

    def basis(self, d: Decision) -> str | None:
        """What ``d`` is about as it is now: the output's checksum, or the product's content key."""
        if d.key is not None:
            rec = self.output(d.sku, d.key)
            return rec.sha256 if rec else None
        product = self.by_sku.get(d.sku)
        return product.key if product else None

    def check(self, d: Decision) -> str | None:
        """None when ``d`` is about this run's products and its correction fits, else what is wrong."""
        if d.sku not in self.by_sku:
            return f"no product with SKU {d.sku!r} in this run"
        rec = self.output(d.sku, d.key) if d.key is not None else None
        if d.key is not None and rec is None:
            return f"{d.key!r} is not an output of SKU {d.sku!r}"
        c: Correction | None = d.correction
        if c is None:
            return None
        if c.new_seed:
            outputs = [rec] if rec is not None else self.by_sku[d.sku].outputs
            if any(o.generated for o in outputs):
                return None
            return "a new seed changes generated images only; correct a cutout with a box"
        if rec is not None and rec.kind != "cutout":
            return "a box or points correct a cutout; for other images ask for a new seed"
        if rec is not None and rec.photo != 1:  # the catalog's bbox, which a box becomes, is the main photo's
            return (f"a box or points correct the main photo's cutout only; this is photo {rec.photo}'s: "
                    "reject it with a reason, or crop that photo in the store")
        if c.points and not self.takes_points:
            return "include/exclude points need the SAM segmenter; this run used " + \
                self.manifest.backends.get("segment", "an unknown one") + ": draw a box instead"
        size = self.photo_size(d.sku)
        if size is None:
            return f"SKU {d.sku!r} has no cutout, so its photo size is unknown"
        return c.fits(*size)

    def select(self, review: ReviewFile, *, status: str = "", warning: str = "", decision: str = "",
               q: str = "") -> list[ProductResult]:
        """Products matching the filters: status (done, needs_review, failed, skipped, invalid),
        warning (any, checks, notes), decision (undecided, approved, rejected) and text in SKU or notes."""
        q = q.strip().lower()
        out = []
        for p in self.manifest.products:
            if status and p.status != status:
                continue
            if warning and not _has_warning(p, warning):
                continue
            if decision and product_decision(p, review) != decision:
                continue
            if q and q not in (p.sku or "").lower() and not any(q in w.lower() for w in warnings_of(p)):
                continue
            out.append(p)
        return out

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.manifest.products:
            out[p.status] = out.get(p.status, 0) + 1
        return out


def _has_warning(p: ProductResult, kind: str) -> bool:
    if kind == "checks":
        return any(o.checks for o in p.outputs)
    if kind == "notes":
        return any(not n.startswith("unchanged") for n in p.notes) or bool(p.review_reasons)
    return bool(warnings_of(p))


def product_decision(p: ProductResult, review: ReviewFile) -> str:
    return review.verdict(p)


def thumb_key(storage: Storage, rec: OutputRecord, thumbs: set[str] | None = None) -> str | None:
    """The report's thumbnail of ``rec`` when it made one, else None. ``thumbs``: the keys under
    ``thumbs/`` when known (an S3 run lists them once rather than asking per image)."""
    key = report_thumb_key(rec)
    if key is None:
        return None
    if thumbs is not None:
        return key if key in thumbs else None
    path = storage.local_path(key)
    return key if path is not None and Path(path).is_file() else None
