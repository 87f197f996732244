"""Weight-free cutout for studio shots on plain light backgrounds.

Fit the background from the image border, seed a GrabCut trimap from the color distance to it
(contact shadows are marked as probable background), run GrabCut at a working size of 640 px, clean
the mask, then matte the boundary band at full resolution (see :mod:`stages.segment.refine`).
"""

from __future__ import annotations

import cv2
import numpy as np

from packshot.config import SegmentSettings
from packshot.types import Cutout
from stages.segment.cleanup import clean_mask
from stages.segment.estimate import Box, estimate_foreground, working_copy
from stages.segment.refine import refine_edges


class ClassicSegmenter:
    name = "classic"

    def __init__(self, settings: SegmentSettings):
        self.settings = settings

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout:
        mask = clean_mask(classic_mask(image, box))
        return Cutout(finish_cutout(image, mask, self.settings), backend=self.name)

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]:
        return [self.segment(im, b) for im, b in zip(images, boxes, strict=True)]


def finish_cutout(image: np.ndarray, mask: np.ndarray, settings: SegmentSettings) -> np.ndarray:
    """RGBA ``HxWx4 uint8`` from a clean binary mask, edge-refined when the settings ask for it."""
    if settings.refine_edges:
        return refine_edges(image, mask, band_px=settings.edge_band_px)
    return np.dstack([image, np.where(mask, 255, 0).astype(np.uint8)])


def classic_mask(image: np.ndarray, box: Box | None = None) -> np.ndarray:
    """Binary product mask (``HxW`` bool) of a studio shot; ``box`` (x0, y0, x1, y1) bounds the product."""
    h, w = image.shape[:2]
    small, scale = working_copy(image)
    est = estimate_foreground(small)
    sh, sw = small.shape[:2]
    seeds = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
    seeds[est.mask] = cv2.GC_PR_FGD
    seeds[(est.distance > 40) & ~est.shadow] = cv2.GC_FGD
    seeds[_background_reached_from_border(est.distance < 6)] = cv2.GC_BGD
    if box is not None:
        x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
        outside = np.ones((sh, sw), bool)
        outside[max(y0, 0) : y1, max(x0, 0) : x1] = False
        seeds[outside] = cv2.GC_BGD
    has_fg = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).any()
    if has_fg and (seeds == cv2.GC_BGD).any():
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut's k-means start draws from OpenCV's global RNG: same photo, same cut
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), seeds, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    fg = _soft_boundary(small, np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)), est.background)
    if scale != 1.0:  # smooth upsampling keeps the outline from turning into stairs
        fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR)
    return fg > 0.5


def _soft_boundary(image: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``mask`` as float32 with a fractional coverage estimate on its 1-px inner and outer rim.

    GrabCut labels blended edge pixels as product, which grows the mask by about a pixel. On the
    rim each pixel's coverage is its position between the fitted background and the mean product
    color nearby (a linear blend model), so thresholding the upsampled result at 0.5 puts the
    outline where the true edge is.
    """
    m = mask.astype(np.uint8)
    out = m.astype(np.float32)
    rim = (cv2.dilate(m, np.ones((3, 3), np.uint8)) > 0) & ~(cv2.erode(m, np.ones((5, 5), np.uint8)) > 0)
    if not rim.any():
        return out
    interior = (cv2.erode(m, np.ones((5, 5), np.uint8)) > 0).astype(np.float32)
    img = image.astype(np.float32)
    weight = cv2.boxFilter(interior, -1, (9, 9), normalize=False)
    fg_sum = cv2.boxFilter(img * interior[..., None], -1, (9, 9), normalize=False)
    local_fg = fg_sum / np.maximum(weight, 1e-6)[..., None]
    fg_minus_bg = local_fg - background
    norm2 = (fg_minus_bg**2).sum(axis=2)
    coverage = ((img - background) * fg_minus_bg).sum(axis=2) / np.maximum(norm2, 1e-6)
    usable = rim & (weight > 0) & (norm2 > 30.0**2)  # product color clearly apart from the backdrop
    out[usable] = np.clip(coverage[usable], 0.0, 1.0)
    return out


def _background_reached_from_border(near_background: np.ndarray) -> np.ndarray:
    """The part of ``near_background`` (HxW bool) connected to the image border.

    Enclosed near-background regions (a white label, the inside of a handle) stay undecided so
    GrabCut's color models choose, instead of being forced out.
    """
    count, labels = cv2.connectedComponents(near_background.astype(np.uint8), connectivity=4)
    border_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    reached = np.zeros(count, bool)
    reached[border_labels] = True
    reached[0] = False
    return reached[labels]
