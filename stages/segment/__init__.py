"""Cut the product out of its photo.

``get_segmenter(settings)`` returns a backend from a small registry (``classic``, ``sam``,
``tiny``, ``auto``); every backend turns an RGB ``HxWx3 uint8`` photo into a :class:`Cutout`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from packshot.config import SegmentSettings
from packshot.types import Cutout

Box = tuple[int, int, int, int]


class Segmenter(Protocol):
    name: str

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout: ...

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]: ...


def get_segmenter(settings: SegmentSettings, device: str = "cpu") -> Segmenter:
    from stages.segment.classic import ClassicSegmenter

    backend = settings.backend
    if backend in ("auto", "classic"):
        return ClassicSegmenter(settings)
    raise NotImplementedError(f"segment backend {backend!r}")
