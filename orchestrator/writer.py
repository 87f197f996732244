"""Encodes, validates and writes a product's files atomically (in a pool worker, or any process)."""

from __future__ import annotations

import hashlib
import io

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

    def write_rendered(self, items: list[Rendered]) -> None:
        by_preset: dict[str, list[Rendered]] = {}
        for item in items:
            by_preset.setdefault(item.preset, []).append(item)
        for preset_name, group in by_preset.items():
            preset = self.presets[preset_name]
            for position, item in enumerate(order_for_listing(group, preset), start=1):
                data, checked = encode_checked(item, preset)
                violations = [str(v) for v in checked]
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
