"""Cut the product out of its photo.

``get_segmenter(settings, device)`` returns a backend chosen by ``settings.backend``:

- ``sam``: Segment Anything with the checkpoint in ``PACKSHOT_SEGMENT__SAM_CHECKPOINT``;
- ``classic``: no weights, for studio shots on plain light backgrounds;
- ``tiny``: a randomly initialised small SAM built from the package's own classes (tests);
- ``auto``: ``sam`` when a checkpoint is configured, else ``classic`` (said in ``Cutout.notes``).

Every backend turns an RGB ``HxWx3 uint8`` photo into a :class:`Cutout` (RGBA, straight alpha, edge
band matted and color-corrected when ``refine_edges`` is on).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from packshot.errors import ConfigError
from packshot.types import Cutout
from stages.segment.estimate import Box
from stages.segment.settings import SegmentSettings

__all__ = ["Box", "Segmenter", "get_segmenter"]


class Segmenter(Protocol):
    name: str

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout: ...

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]: ...


class _Noted:
    """Wraps a backend and adds a note to every cutout (how ``auto`` reports its choice)."""

    def __init__(self, inner: Segmenter, note: str):
        self.inner, self.note, self.name = inner, note, inner.name

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout:
        cutout = self.inner.segment(image, box)
        cutout.notes.append(self.note)
        return cutout

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]:
        cutouts = self.inner.segment_batch(images, boxes)
        for cutout in cutouts:
            cutout.notes.append(self.note)
        return cutouts


def get_segmenter(settings: SegmentSettings, device: str = "cpu") -> Segmenter:
    """The backend ``settings.backend`` names; model weights load once per process (registry)."""
    from stages.segment.classic import ClassicSegmenter

    backend = settings.backend
    if backend == "classic":
        return ClassicSegmenter(settings)
    if backend == "auto":
        if settings.sam_checkpoint is None:
            return _Noted(ClassicSegmenter(settings), "auto: no SAM checkpoint configured, used classic")
        from stages.segment.sam import SamSegmenter

        sam = SamSegmenter(settings, device)
        return _Noted(sam, f"auto: used SAM {settings.sam_model_type} from {settings.sam_checkpoint}")
    if backend in ("sam", "tiny"):
        from stages.segment.sam import SamSegmenter

        return SamSegmenter(settings, device, tiny=backend == "tiny")
    raise ConfigError(
        f"PACKSHOT_SEGMENT__BACKEND={backend!r} is not a backend: use sam, classic, tiny or auto"
    )
