"""The write phase's encoder: encodes, validates and writes a product's files atomically."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

from orchestrator.context import RunContext
from packshot.schemas.results import OutputRecord
from packshot.types import Cutout, Product, Rendered
from stages.export import check, encode, order_for_listing


class ProductWriter:
    """Writes one product's cutout and finished images; ``records`` lists what was written."""

    def __init__(self, product: Product, folder: str, ctx: RunContext):
        self.product, self.folder, self.ctx = product, folder, ctx
        self.records: list[OutputRecord] = []

    def _record(self, key: str, data: bytes, fmt: str, size, **kw) -> OutputRecord:
        uri = self.ctx.storage.write_bytes(key, data, f"image/{fmt.lower()}")
        rec = OutputRecord(
            sku=self.product.sku, key=key, uri=uri, format=fmt, width=size[0], height=size[1],
            bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
            source_file=self.product.source_file, source_line=self.product.source_line, **kw,
        )
        self.records.append(rec)
        return rec

    def write_cutout(self, cutout: Cutout) -> None:
        buf = io.BytesIO()
        Image.fromarray(cutout.rgba, "RGBA").save(buf, "PNG", optimize=False, compress_level=6)
        h, w = cutout.rgba.shape[:2]
        self._record(f"{self.folder}/cutout.png", buf.getvalue(), "PNG", (w, h), kind="cutout")

    def write_source_preview(self, rgb: np.ndarray, side: int = 1024) -> str:
        """A JPEG copy of the photo (``HxWx3 uint8``), at most ``side`` px, for the review page; not
        an output. Returns its key."""
        img = Image.fromarray(rgb, "RGB")
        img.thumbnail((side, side))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        key = f"{self.folder}/source-preview.jpg"
        self.ctx.storage.write_bytes(key, buf.getvalue(), "image/jpeg")
        return key

    def write_rendered(self, items: list[Rendered]) -> None:
        by_preset: dict[str, list[Rendered]] = {}
        for item in items:
            by_preset.setdefault(item.preset, []).append(item)
        for preset_name, group in by_preset.items():
            preset = self.ctx.presets[preset_name]
            for position, item in enumerate(order_for_listing(group, preset), start=1):
                data = encode(item, preset)
                found = check(data, preset, item.product_alpha, item.generated)
                violations = [str(v) for v in found if not v.warning]
                ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[preset.format]
                stem = item.kind if item.scene is None else f"{item.kind}{item.scene + 1}"
                sub = f"{item.variant}/" if item.variant else ""
                key = f"{self.folder}/{sub}{stem}-{preset_name}.{ext}"
                h, w = item.rgb.shape[:2]
                self._record(
                    key, data, preset.format, (w, h), kind=item.kind, preset=preset_name,
                    variant=item.variant, scene=item.scene, position=position,
                    generated=item.generated, checks=violations,
                )
