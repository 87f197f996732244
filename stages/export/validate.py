"""Check a finished file against its preset; each broken rule is one :class:`Violation`."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydantic import BaseModel

from stages.export.presets import Preset


class Violation(BaseModel):
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


def check(data: bytes, preset: Preset, product_alpha: np.ndarray | None = None) -> list[Violation]:
    out: list[Violation] = []
    img = Image.open(io.BytesIO(data))
    if img.format != preset.format:
        out.append(Violation(rule="format", message=f"{img.format}, preset wants {preset.format}"))
    long_side = max(img.size)
    if preset.min_long_side and long_side < preset.min_long_side:
        out.append(Violation(rule="min-size", message=f"long side {long_side} < {preset.min_long_side}"))
    if preset.max_long_side and long_side > preset.max_long_side:
        out.append(Violation(rule="max-size", message=f"long side {long_side} > {preset.max_long_side}"))
    if preset.max_bytes and len(data) > preset.max_bytes:
        out.append(Violation(rule="max-bytes", message=f"{len(data)} bytes > {preset.max_bytes}"))
    if preset.pure_white_background and product_alpha is not None:
        rgb = np.asarray(img.convert("RGB"))
        bg = product_alpha == 0
        bad = int((rgb[bg] != 255).any(axis=1).sum())
        if bad:
            out.append(Violation(rule="white-background", message=f"{bad} background pixels are not 255 white"))
    return out
