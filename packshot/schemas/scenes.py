"""What the lifestyle stage decides and the background stage renders: one planned scene per image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def derive_seed(sku: str, scene: int | None, base: int) -> int:
    """Same SKU, scene and brand seed give the same 32-bit seed on every run and machine."""
    digest = hashlib.sha256(f"{sku}\x1f{'bg' if scene is None else scene}\x1f{base}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class ScenePlan:
    """One brand scene of a product: its prompt template (``{title}`` ... placeholders), its seed and
    its index (``Rendered.scene``; also picks the palette backdrop's style without a model)."""

    template: str
    seed: int
    index: int
