"""Weight-free cutout for studio shots on plain light backgrounds.

Fit the backdrop (a smooth color surface) from the image border, find the product's filled outline
(:mod:`stages.segment.silhouette`: clear pixels grown into faint ones; enclosed regions stay open
only where they are the backdrop seen through a hole), let GrabCut settle a narrow band along that
outline at a working size of 640 px, peel off the contact shadow under the product and a hair
fringe beyond half coverage, then matte the boundary band at full resolution (see
:mod:`stages.segment.refine`) and drop matted shadow outside the outline. Every cutout is judged
by :mod:`stages.segment.confidence` (confidence and review reasons).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from packshot.types import Cutout
from stages.segment.cleanup import clean_mask
from stages.segment.confidence import (
    ADVICE,
    CLASSIC_CHECKS,
    border_mismatch,
    judge,
    mask_checks,
)
from stages.segment.estimate import Box, ForegroundEstimate, estimate_foreground, shadow_gain, working_copy
from stages.segment.refine import refine_edges
from stages.segment.settings import SegmentSettings
from stages.segment.silhouette import Silhouette, product_silhouette

MIN_JUDGED_SIDE = 32  # px: smaller photos get one review reason instead of the checks
BAND_PX = 3  # half-width (working px) of the band GrabCut decides along the silhouette
HAIR_SPREAD = 0.1  # coverage spread (std in 5x5) inside the mask above which an edge is hair


class ClassicSegmenter:
    """Classic computer vision (backdrop fit, GrabCut band, matting): no weights, studio shots only."""

    name = "classic"
    identity = "classic"
    licence = "no model: classic computer vision in packshot (Apache-2.0)"
    generated = False

    def __init__(self, settings: SegmentSettings):
        self.settings = settings

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout:
        parts = _segment_parts(image, box)
        mask = clean_mask(parts.mask)
        rgba = finish_cutout(image, mask, self.settings)
        if self.settings.refine_edges:
            _drop_matted_shadow(rgba, image, mask, parts.backdrop)
        h, w = image.shape[:2]
        if min(h, w) < MIN_JUDGED_SIDE:  # the checks measure borders and edges a few pixels wide
            confidence = 0.0
            reasons = [f"segment: the photo is only {w}x{h} px, too small to check its cutout"]
        else:
            confidence, reasons = judge(parts.review_values(image), CLASSIC_CHECKS, ADVICE)
        return Cutout(rgba, backend=self.name, confidence=confidence, review_reasons=reasons)

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]:
        return [self.segment(im, b) for im, b in zip(images, boxes, strict=True)]


def finish_cutout(image: np.ndarray, mask: np.ndarray, settings: SegmentSettings) -> np.ndarray:
    """RGBA ``HxWx4 uint8`` from a clean binary mask, edge-refined when the settings ask for it."""
    if settings.refine_edges:
        return refine_edges(image, mask, band_px=settings.edge_band_px)
    return np.dstack([image, np.where(mask, 255, 0).astype(np.uint8)])


def classic_mask(image: np.ndarray, box: Box | None = None) -> np.ndarray:
    """Binary product mask (``HxW`` bool) of a studio shot; ``box`` (x0, y0, x1, y1) bounds the product."""
    return _segment_parts(image, box).mask


@dataclass
class _Parts:
    """What the classic cut produced: ``mask`` ``HxW`` bool and ``backdrop`` ``HxWx3 float32`` at the
    photo's size; the estimate, silhouette and working-size mask for the confidence checks."""

    mask: np.ndarray
    backdrop: np.ndarray
    estimate: ForegroundEstimate
    silhouette: Silhouette
    small_mask: np.ndarray
    inside: np.ndarray

    def review_values(self, image: np.ndarray) -> dict[str, float]:
        """Measured values for :data:`stages.segment.confidence.CLASSIC_CHECKS`."""
        values = {"border_mismatch": border_mismatch(image), "border_noise": self.silhouette.noise}
        values |= mask_checks(self.small_mask, self.silhouette.mask & self.inside, self.estimate.distance)
        shaded = [h.shading for h in self.silhouette.holes if h.opened and h.share >= 0.02]
        if shaded:
            values["shaded_hole"] = max(shaded)
        return values


def _drop_matted_shadow(rgba: np.ndarray, image: np.ndarray, mask: np.ndarray, backdrop: np.ndarray) -> None:
    """Zero the alpha that matting gave to shadow more than 1.5 px outside the mask (in place).

    Closed-form matting explains a dark contact shadow next to a dark product as partly product; a
    pixel well outside the outline that is just the backdrop made darker is background.
    """
    gain, residual = shadow_gain(image, backdrop)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3) > 1.5
    rgba[..., 3][outside & (gain < 0.985) & (residual < 18.0)] = 0  # JPEG chroma bleeds ~2 px


def _segment_parts(image: np.ndarray, box: Box | None) -> _Parts:
    """The classic cut of ``image`` (RGB ``HxWx3 uint8``) and what it was made from."""
    h, w = image.shape[:2]
    small, scale = working_copy(image)
    est = estimate_foreground(small)
    sh, sw = small.shape[:2]
    inside = np.ones((sh, sw), bool)
    if box is not None:
        x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
        inside[:] = False
        inside[max(y0, 0) : y1, max(x0, 0) : x1] = True
    found = product_silhouette(est)
    silhouette = found.mask & inside
    # GrabCut only settles a narrow band along the silhouette's outline (and around its holes): the
    # silhouette already knows which regions are product, the color models place the edge
    ring = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BAND_PX + 1, 2 * BAND_PX + 1))
    sil8 = silhouette.astype(np.uint8)
    seeds = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    seeds[(cv2.dilate(sil8, ring) > 0) & inside] = cv2.GC_PR_BGD
    seeds[silhouette] = cv2.GC_PR_FGD
    seeds[cv2.erode(sil8, ring) > 0] = cv2.GC_FGD
    if (seeds == cv2.GC_FGD).any() and (seeds == cv2.GC_BGD).any():
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut's k-means start draws from OpenCV's global RNG: same photo, same cut
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), seeds, None, bgd, fgd, 2, cv2.GC_INIT_WITH_MASK)
    product = _peel_contact_shadow(small, np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)), est.background)
    product = _peel_sparse_fringe(small, product, est.background)
    fg = _soft_boundary(small, product, est.background)
    backdrop, small_mask = est.background, fg > 0.5
    if scale != 1.0:  # smooth upsampling keeps the outline from turning into stairs
        fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR)
        backdrop = cv2.resize(backdrop, (w, h), interpolation=cv2.INTER_LINEAR)
    return _Parts(fg > 0.5, backdrop, est, found, small_mask, inside)


def _peel_contact_shadow(
    image: np.ndarray, mask: np.ndarray, background: np.ndarray, max_px: int = 6
) -> np.ndarray:
    """Remove the contact shadow's darkest line that GrabCut glued to the product's underside.

    Right under a product its shadow is darkest and meets the product's edge, so the estimate's
    smoothness test misses it. Peeled from below, one pixel row per step: a mask pixel goes when
    it is the backdrop's color made darker (gain < 1, small residual), the pixel under it is not
    product and the gain changes smoothly between them (a shadow fades; a product's edge steps).
    ``image`` ``HxWx3 uint8``, ``mask`` ``HxW`` bool; returns the peeled ``HxW`` bool mask.
    """
    gain, residual = shadow_gain(image, background)
    shadow_colored = (gain > 0.3) & (gain < 0.985) & (residual < 8.0)
    gain_below = np.vstack([gain[1:], gain[-1:]])
    smooth_below = np.abs(gain - gain_below) < 0.06
    candidates = shadow_colored & smooth_below
    mask = mask.copy()
    for _ in range(max_px):
        below_is_out = np.vstack([~mask[1:], np.zeros((1, mask.shape[1]), bool)])
        peel = mask & candidates & below_is_out
        if not peel.any():
            break
        mask &= ~peel
    return mask


def _peel_sparse_fringe(
    image: np.ndarray, mask: np.ndarray, background: np.ndarray, max_px: int = 12
) -> np.ndarray:
    """Pull the outline of a furry or fluffy product in to where its hairs cover half the backdrop.

    The faint-pixel growth of the silhouette reaches the tips of hairs, beyond where a matte would
    say 50%. Each outline pixel's coverage is its position between the backdrop and the product's
    color deeper inside (a linear blend, averaged over 3x3 so strands and gaps count together);
    outline pixels under half coverage are peeled, one pixel per step. Only where the product's
    color is clearly apart from the backdrop (light products keep their faint edges).
    ``image`` ``HxWx3 uint8``, ``mask`` ``HxW`` bool; returns the peeled ``HxW`` bool mask.
    """
    m = mask.astype(np.uint8)
    deep = (cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))) > 0).astype(np.float32)
    if not deep.any():
        return mask
    img = image.astype(np.float32)
    weight = cv2.boxFilter(deep, -1, (31, 31), normalize=False)
    local_fg = cv2.boxFilter(img * deep[..., None], -1, (31, 31), normalize=False)
    local_fg /= np.maximum(weight, 1e-6)[..., None]
    fg_minus_bg = local_fg - background
    norm2 = (fg_minus_bg**2).sum(axis=2)
    coverage = (((img - background) * fg_minus_bg).sum(axis=2) / np.maximum(norm2, 1e-6)).astype(np.float32)
    # hair is strands and gaps: inside the mask its coverage varies from pixel to pixel; a solid
    # edge's does not (a mug's rim, a label) and is left alone
    inside = mask.astype(np.float32)
    count = np.maximum(cv2.boxFilter(inside, -1, (5, 5), normalize=False), 1.0)
    mean = cv2.boxFilter(coverage * inside, -1, (5, 5), normalize=False) / count
    spread = cv2.boxFilter(coverage**2 * inside, -1, (5, 5), normalize=False) / count - mean**2
    hairy = np.sqrt(np.maximum(spread, 0.0)) > HAIR_SPREAD
    coverage = cv2.blur(coverage, (3, 3))
    peelable = (weight > 0) & (norm2 > 30.0**2) & (coverage < 0.5) & hairy
    mask = mask.copy()
    for _ in range(max_px):
        rim = mask & ~(cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
        peel = rim & peelable
        if not peel.any():
            break
        mask &= ~peel
    return mask


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
