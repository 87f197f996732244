"""SAM's cut in three steps, so only the middle one holds the card: prompt, model, finish.

1. :func:`sam_prompt` (CPU): the cheap studio foreground estimate (:mod:`stages.segment.estimate`) and
   the prompts derived from it, or the catalog's box; a loader thread can make it while the card works.
2. The model (:meth:`stages.segment.sam.SamSegmenter.draft_batch`): the image encoder, batched across
   photos, and the mask decoder per photo; a :class:`SamDraft` each.
3. :meth:`SamDraft.finish` (CPU): the best of SAM's three masks, cleanup, the confidence checks and the
   edge refinement (:mod:`stages.segment.refine`: seconds on a 2,000 px photo), in a pool worker after
   the card is let go.

Plain numpy and OpenCV: a pool worker that finishes drafts never imports torch. Prompts and drafts are
plain data (they pickle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from packshot.types import Cutout
from stages.segment.classic import finish_cutout
from stages.segment.cleanup import fill_pinholes, keep_product_parts, open_background_holes, speck_area
from stages.segment.confidence import SAM_CHECKS, box_edge_contact, box_edge_reasons, judge, sam_values
from stages.segment.estimate import Box, ForegroundEstimate, estimate_foreground, interior_point
from stages.segment.settings import SegmentSettings

QUALITY_WEIGHT = 0.5  # share of SAM's predicted IoU in the mask choice; the rest is agreement


@dataclass
class SamPrompt:
    """What SAM is asked for one photo of ``size`` (h, w): ``box`` (x0, y0, x1, y1) plus ``points``
    ``Nx2`` (x, y) with ``labels`` ``N`` (1 product, 0 background), in the photo's pixels; the estimate
    they came from; ``catalog_box`` when the box is the catalog's."""

    size: tuple[int, int]
    box: Box
    points: np.ndarray
    labels: np.ndarray
    estimate: ForegroundEstimate
    catalog_box: Box | None = None
    notes: list[str] = field(default_factory=list)


def sam_prompt(image: np.ndarray, box: Box | None, backend: str) -> SamPrompt:
    """The prompt for ``image`` (RGB ``HxWx3 uint8``): the catalog's ``box`` alone when there is one,
    else a box and points from the foreground estimate (the whole frame when it finds nothing)."""
    h, w = image.shape[:2]
    estimate = estimate_foreground(image)
    if box is not None:
        return SamPrompt((h, w), box, np.zeros((0, 2), np.float32), np.zeros((0,), np.int64), estimate,
                         catalog_box=box)
    derived, points, labels = derive_prompts(estimate, (h, w))
    if derived is not None:
        return SamPrompt((h, w), derived, points, labels, estimate)
    return SamPrompt((h, w), (0, 0, w, h), points, labels, estimate,
                     notes=[f"{backend}: no foreground estimate, prompted with the whole frame"])


@dataclass
class SamDraft:
    """SAM's answer to one :class:`SamPrompt`: ``masks`` ``3xHxW`` bool, predicted IoUs ``quality``
    ``(3,)``, ``logits`` ``3x256x256`` float32 (low resolution) or None; ``settings`` say how to finish.
    A :class:`stages.segment.Draft`."""

    prompt: SamPrompt
    masks: np.ndarray
    quality: np.ndarray
    logits: np.ndarray | None
    settings: SegmentSettings
    backend: str = "sam"
    notes: list[str] = field(default_factory=list)  # said after SAM's own notes (how ``auto`` chose it)

    def finish(self, image: np.ndarray) -> Cutout:
        """The cutout of ``image`` (the photo prompted): RGBA ``HxWx4 uint8``, edge band matted when
        ``settings.refine_edges`` is on; confidence and review reasons from SAM's own scores. CPU only."""
        h, w = image.shape[:2]
        if (h, w) != tuple(self.prompt.size):
            raise ValueError(f"SAM draft of a {self.prompt.size} photo does not fit the photo {(h, w)}")
        estimate, notes = self.prompt.estimate, list(self.prompt.notes)  # the prompt's, then the choice's
        estimate_mask = estimate.mask_at((h, w))
        masks, quality = self.masks, self.quality
        best = choose_mask(masks, quality, estimate_mask)
        mask = masks[best]
        if not mask.any():
            notes.append(f"{self.backend}: SAM returned empty masks, used the foreground estimate")
            mask = estimate_mask
        mask = fill_pinholes(keep_product_parts(mask))
        near_background = cv2.resize(estimate.distance, (w, h), interpolation=cv2.INTER_LINEAR) < 6
        mask = open_background_holes(mask, near_background)
        logits = None if self.logits is None else self.logits[best]
        confidence, reasons = judge(sam_values(quality[best], logits), SAM_CHECKS)
        if self.prompt.catalog_box is not None:  # SAM cannot reach past its prompt box: say when it does
            edge_reasons = box_edge_reasons(box_edge_contact(mask, self.prompt.catalog_box))
            if edge_reasons:
                confidence, reasons = min(confidence, 0.25), reasons + edge_reasons
        if not masks[best].any():
            confidence = 0.0
            reasons.append("segment: SAM found no product; the cutout is a rough estimate")
        choice = f"mask {best + 1} of {len(masks)} (predicted IoU {quality[best]:.2f})"
        return Cutout(finish_cutout(image, mask, self.settings), backend=self.backend,
                      notes=[*notes, f"{self.backend}: {choice}", *self.notes], confidence=confidence,
                      review_reasons=reasons)


def choose_mask(masks: np.ndarray, quality: np.ndarray, estimate: np.ndarray | None) -> int:
    """Index of the best of SAM's masks (``Nx HxW`` bool) given predicted IoUs ``quality`` (N,).

    With a foreground estimate (``HxW`` bool, non-empty) the score mixes predicted quality and IoU
    with the estimate; empty masks never win while a non-empty one exists.
    """
    score = quality.astype(np.float64).copy()
    if estimate is not None and estimate.any():
        inter = (masks & estimate).sum(axis=(1, 2))
        union = (masks | estimate).sum(axis=(1, 2))
        agreement = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        score = QUALITY_WEIGHT * score + (1 - QUALITY_WEIGHT) * agreement
    empty = ~masks.any(axis=(1, 2))
    if not empty.all():
        score[empty] = -np.inf
    return int(np.argmax(score))


def derive_prompts(
    estimate: ForegroundEstimate, size: tuple[int, int]
) -> tuple[Box | None, np.ndarray, np.ndarray]:
    """Box plus points from the estimate, in original pixels: (box, points Nx2 (x, y), labels N).

    One positive point at the deepest interior pixel of the largest part; one negative point in
    each enclosed hole of the estimate that is bigger than a speck (a handle, a ring's middle).
    """
    box = estimate.box_at(size)
    points, labels = [], []
    s = estimate.scale
    if estimate.mask.any():
        product = estimate.mask.astype(np.uint8)
        count, parts, stats, _ = cv2.connectedComponentsWithStats(product, connectivity=8)
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        inside = interior_point(parts == largest)
        if inside is not None:
            points.append((inside[0] / s, inside[1] / s))
            labels.append(1)
        holes = fill_pinholes(estimate.mask, max_area=10**12) & ~estimate.mask
        holes8 = holes.astype(np.uint8)
        count, hole_labels, stats, _ = cv2.connectedComponentsWithStats(holes8, connectivity=4)
        for label in range(1, count):
            if stats[label, cv2.CC_STAT_AREA] >= speck_area(estimate.mask.shape) * 4:
                x, y = interior_point(hole_labels == label)
                points.append((x / s, y / s))
                labels.append(0)
    return box, np.array(points, np.float32).reshape(-1, 2), np.array(labels, np.int64)


