"""Compose a packshot from a cutout and encode it within the preset's limits."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from packshot.imaging import apply_shadow, composite, contact_shadow, place_product
from packshot.types import Cutout, Rendered
from stages.export.presets import Preset


def compose_packshot(cutout: Cutout, preset: Preset) -> Rendered:
    """The product centred on the preset's background with a soft contact shadow.

    For pure-white presets the shadow is kept inside the product's own footprint rows only
    where it stays >= 255 after rounding, i.e. it is dropped: Amazon requires 255 everywhere.
    """
    placement = place_product(cutout, (preset.width, preset.height), preset.fill_fraction)
    background = np.empty((preset.height, preset.width, 3), np.uint8)
    background[:] = preset.background
    if not preset.pure_white_background:
        background = apply_shadow(background, contact_shadow(placement))
    rgb, alpha = placement.layer()
    out = composite(background, rgb, alpha)
    return Rendered(out, alpha, kind="packshot", preset=preset.name, generated=False)


def encode(rendered: Rendered, preset: Preset) -> bytes:
    """Encode as the preset's format, lowering quality until the file fits ``max_bytes``."""
    img = Image.fromarray(rendered.rgb, "RGB")
    if preset.format == "PNG":
        return _save(img, "PNG", optimize=True)
    quality = preset.quality
    while True:
        data = _save(img, preset.format, quality=quality)
        if preset.max_bytes is None or len(data) <= preset.max_bytes or quality <= preset.min_quality:
            return data
        quality -= 4


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()
