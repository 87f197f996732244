"""A cutout before its edge refinement: the part of a cut that needs the model, and the part that does not.

A GPU backend (SAM) decides the product's mask on the card; the edge refinement that turns the mask
into a cutout (closed-form matting and foreground colors, :mod:`stages.segment.refine`: seconds of CPU
on a 2,000 px photo) needs no model. :meth:`Segmenter.draft_batch` returns :class:`Draft` objects so the
caller can let the card go before :meth:`Draft.finish` runs, in another process if it likes (a draft
is plain data: it pickles).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from packshot.types import Cutout
from stages.segment.classic import finish_cutout
from stages.segment.settings import SegmentSettings


@dataclass
class Draft:
    """What a model call decided for one photo: ``mask`` ``HxW`` bool (the photo's size), cleaned, plus
    the cutout's notes, confidence and review reasons; ``settings`` says how to refine its edges."""

    mask: np.ndarray
    backend: str
    settings: SegmentSettings
    notes: list[str] = field(default_factory=list)
    confidence: float | None = None
    review_reasons: list[str] = field(default_factory=list)

    def finish(self, image: np.ndarray) -> Cutout:
        """The cutout of ``image`` (RGB ``HxWx3 uint8``, the photo the mask was made on): RGBA ``HxWx4
        uint8``, edge band matted when ``settings.refine_edges`` is on. CPU only; no model."""
        if image.shape[:2] != self.mask.shape:
            raise ValueError(f"draft mask {self.mask.shape} does not fit the photo {image.shape[:2]}")
        return Cutout(finish_cutout(image, self.mask, self.settings), backend=self.backend,
                      notes=list(self.notes), confidence=self.confidence,
                      review_reasons=list(self.review_reasons))
