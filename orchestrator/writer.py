"""Encodes, validates and writes a product's files atomically (in a pool worker, or any process)."""

from __future__ import annotations

import hashlib
import io
import re
from types import SimpleNamespace

import numpy as np
from PIL import Image

from packshot.schemas.results import OutputRecord
from packshot.storage import Storage
from packshot.types import Cutout, Product, Rendered
from stages.export import encode_checked, order_for_listing

CUTOUT_PNG_LEVEL = 6  # the delivered cutout: smaller files are worth the encode time here


class ProductWriter:
    """Writes one product's cutout and finished images; ``records`` lists what was written."""

    def __init__(self, product: Product, folder: str, storage: Storage, presets: dict):
        self.product, self.folder, self.storage, self.presets = product, folder, storage, presets
        self.records: list[OutputRecord] = []

    def _record(self, key: str, data: bytes, fmt: str, size, **kw) -> OutputRecord:
        uri = self.storage.write_bytes(key, data, f"image/{fmt.lower()}")
        rec = OutputRecord(
            sku=self.product.sku, key=key, uri=uri, format=fmt, width=size[0], height=size[1],
            bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
            source_file=self.product.source_file, source_line=self.product.source_line, **kw,
        )
        self.records.append(rec)
        return rec

    def write_cutout(self, cutout: Cutout) -> bytes:
        """Write ``cutout.png``; returns its bytes (the stage cache keeps the same file)."""
        buf = io.BytesIO()
        Image.fromarray(cutout.rgba, "RGBA").save(buf, "PNG", optimize=False, compress_level=CUTOUT_PNG_LEVEL)
        h, w = cutout.rgba.shape[:2]
        self._record(f"{self.folder}/cutout.png", buf.getvalue(), "PNG", (w, h), kind="cutout")
        return buf.getvalue()

    def write_source_preview(self, rgb: np.ndarray, side: int = 1024) -> str:
        """A JPEG copy of the photo (``HxWx3 uint8``), at most ``side`` px, for the review page; not
        an output. Returns its key."""
        img = Image.fromarray(rgb, "RGB")
        img.thumbnail((side, side))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        key = f"{self.folder}/source-preview.jpg"
        self.storage.write_bytes(key, buf.getvalue(), "image/jpeg")
        return key

    def write_rendered(self, items: list[Rendered]) -> None:
        """Write ``items`` with their listing positions (per preset: real packshots first)."""
        by_preset: dict[str, list[Rendered]] = {}
        for item in items:
            by_preset.setdefault(item.preset, []).append(item)
        for preset_name, group in by_preset.items():
            for position, item in enumerate(order_for_listing(group, self.presets[preset_name]), start=1):
                self.write_item(item, position)

    def write_item(self, item: Rendered, position: int | None = None) -> OutputRecord:
        """Encode, validate and write one finished image (``position`` may be set later:
        :func:`listed`)."""
        preset = self.presets[item.preset]
        data, checked = encode_checked(item, preset)
        violations = [str(v) for v in checked if not v.warning]  # a warning is not a failed check
        ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[preset.format]
        stem = item.kind if item.scene is None else f"{item.kind}{item.scene + 1}"
        sub = f"{variant_folder(item.variant)}/" if item.variant else ""
        key = f"{self.folder}/{sub}{stem}-{item.preset}.{ext}"
        h, w = item.rgb.shape[:2]
        return self._record(
            key, data, preset.format, (w, h), kind=item.kind, preset=item.preset, variant=item.variant,
            scene=item.scene, position=position, generated=item.generated, checks=violations,
            recolor=item.recolor,
        )


def variant_folder(slug: str) -> str:
    """The folder of a variant's files; a color slug that reads like another photo's folder
    (``photo-2``, :mod:`orchestrator.photos`) gets a ``color-`` prefix so the two never share a file."""
    return f"color-{slug}" if re.fullmatch(r"photo-\d+", slug) else slug


def listed(records: list[OutputRecord], presets: dict) -> list[OutputRecord]:
    """``records`` grouped by preset (in order of first appearance) and in listing order within each,
    with their ``position`` set; the cutout (no preset) stays first. Raises
    :class:`~stages.export.ListingOrderError` when a preset wants a real first image and has none."""
    out = [r for r in records if r.preset is None]
    by_preset: dict[str, list[OutputRecord]] = {}
    for rec in records:
        if rec.preset is not None:
            by_preset.setdefault(rec.preset, []).append(rec)
    for name, group in by_preset.items():
        for position, rec in enumerate(order_for_listing(group, presets[name]), start=1):
            rec.position = position
            out.append(rec)
    return out


def check_listing_order(parts, presets: dict) -> None:
    """Raise :class:`~stages.export.ListingOrderError` before any file is written when a preset that
    wants a real first image would only get generated ones (``parts``: :class:`orchestrator.work.Part`)."""
    by_preset: dict[str, list[SimpleNamespace]] = {}
    for part in parts:
        if part.preset is None:
            continue
        generated = part.kind == "image" and part.image.plan is not None
        scene = part.image.scene if part.image is not None else None
        kind = part.image.kind if part.image is not None else "packshot"
        by_preset.setdefault(part.preset, []).append(
            SimpleNamespace(kind=kind, generated=generated, variant=None, scene=scene))
    for name, items in by_preset.items():
        order_for_listing(items, presets[name])
