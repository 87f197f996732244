"""Weight-free cutout for studio shots on plain light backgrounds.

Fit the backdrop (a smooth color surface) from the image border, find the product's filled outline
with a noise-adapted threshold on the distance to it (holes stay open only where they match the
backdrop), let GrabCut settle a narrow band along that outline at a working size of 640 px, peel
off the contact shadow under the product, then matte the boundary band at full resolution (see
:mod:`stages.segment.refine`) and drop matted shadow outside the outline.
"""

from __future__ import annotations

import cv2
import numpy as np

from packshot.types import Cutout
from stages.segment.cleanup import clean_mask, keep_product_parts
from stages.segment.estimate import (
    Box,
    ForegroundEstimate,
    backdrop_problem,
    estimate_foreground,
    shadow_gain,
    working_copy,
)
from stages.segment.refine import refine_edges
from stages.segment.settings import SegmentSettings

BAND_PX = 3  # half-width (working px) of the band GrabCut decides along the silhouette


class ClassicSegmenter:
    """Classic computer vision (backdrop fit, GrabCut band, matting): no weights, studio shots only."""

    name = "classic"
    identity = "classic"
    licence = "no model: classic computer vision in packshot (Apache-2.0)"
    generated = False

    def __init__(self, settings: SegmentSettings):
        self.settings = settings

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout:
        mask, backdrop = _mask_and_backdrop(image, box)
        mask = clean_mask(mask)
        rgba = finish_cutout(image, mask, self.settings)
        if self.settings.refine_edges:
            _drop_matted_shadow(rgba, image, mask, backdrop)
        problem = backdrop_problem(image)
        return Cutout(rgba, backend=self.name, notes=[problem] if problem else [])

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]:
        return [self.segment(im, b) for im, b in zip(images, boxes, strict=True)]


def finish_cutout(image: np.ndarray, mask: np.ndarray, settings: SegmentSettings) -> np.ndarray:
    """RGBA ``HxWx4 uint8`` from a clean binary mask, edge-refined when the settings ask for it."""
    if settings.refine_edges:
        return refine_edges(image, mask, band_px=settings.edge_band_px)
    return np.dstack([image, np.where(mask, 255, 0).astype(np.uint8)])


def classic_mask(image: np.ndarray, box: Box | None = None) -> np.ndarray:
    """Binary product mask (``HxW`` bool) of a studio shot; ``box`` (x0, y0, x1, y1) bounds the product."""
    return _mask_and_backdrop(image, box)[0]


def _drop_matted_shadow(rgba: np.ndarray, image: np.ndarray, mask: np.ndarray, backdrop: np.ndarray) -> None:
    """Zero the alpha that matting gave to shadow more than 1.5 px outside the mask (in place).

    Closed-form matting explains a dark contact shadow next to a dark product as partly product; a
    pixel well outside the outline that is just the backdrop made darker is background.
    """
    gain, residual = shadow_gain(image, backdrop)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3) > 1.5
    rgba[..., 3][outside & (gain < 0.985) & (residual < 18.0)] = 0  # JPEG chroma bleeds ~2 px


def _mask_and_backdrop(image: np.ndarray, box: Box | None) -> tuple[np.ndarray, np.ndarray]:
    """(mask ``HxW`` bool, fitted backdrop ``HxWx3 float32``), both at the photo's size."""
    h, w = image.shape[:2]
    small, scale = working_copy(image)
    est = estimate_foreground(small)
    sh, sw = small.shape[:2]
    inside = np.ones((sh, sw), bool)
    if box is not None:
        x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
        inside[:] = False
        inside[max(y0, 0) : y1, max(x0, 0) : x1] = True
    silhouette = product_silhouette(est) & inside
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
    fg = _soft_boundary(small, product, est.background)
    backdrop = est.background
    if scale != 1.0:  # smooth upsampling keeps the outline from turning into stairs
        fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR)
        backdrop = cv2.resize(backdrop, (w, h), interpolation=cv2.INTER_LINEAR)
    return fg > 0.5, backdrop


def product_silhouette(est: ForegroundEstimate) -> np.ndarray:
    """The product's outline, filled (``HxW`` bool at the estimate's working size).

    A low, noise-adapted threshold on the distance to the fitted backdrop finds the whole outline of
    low-contrast products (white on white, light grey on grey) that the estimate's own threshold
    misses in places. Everything the outline encloses is product (the pale upper of a white shoe,
    refracted backdrop in a glass bottle, reflections in steel) except enclosed regions that match
    the backdrop as closely as the backdrop matches its own fit: those are real holes (a mug
    handle, a bottle's loop) and stay open.
    """
    distance = est.distance
    noise = float(np.percentile(distance[_border(distance.shape)], 90))
    outline = (distance > max(5.0, 2.5 * noise)) & ~est.shadow
    outline = cv2.morphologyEx(outline.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    outline = cv2.morphologyEx(
        outline | est.mask.astype(np.uint8),
        cv2.MORPH_CLOSE,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)),
    )
    count, labels, stats, _ = cv2.connectedComponentsWithStats(1 - outline, connectivity=4)
    h, w = distance.shape
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    enclosed = (
        (x > 0) & (y > 0) & (x + stats[:, cv2.CC_STAT_WIDTH] < w) & (y + stats[:, cv2.CC_STAT_HEIGHT] < h)
    )
    enclosed[0] = False  # label 0 is the outline itself
    median = _label_medians(distance, labels, count)
    real_hole = enclosed & (median < max(1.5, 1.2 * noise)) & (stats[:, cv2.CC_STAT_AREA] >= 12)
    filled = (outline > 0) | (enclosed & ~real_hole)[labels]
    return keep_product_parts(filled)


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


def _label_medians(values: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Median of ``values`` per label (``count`` labels), NaN-free (empty labels get +inf)."""
    order = np.argsort(labels, axis=None, kind="stable")
    sorted_labels = labels.ravel()[order]
    sorted_values = values.ravel()[order]
    starts = np.searchsorted(sorted_labels, np.arange(count))
    ends = np.searchsorted(sorted_labels, np.arange(count), side="right")
    out = np.full(count, np.inf)
    for label in range(count):
        if ends[label] > starts[label]:
            out[label] = np.median(sorted_values[starts[label] : ends[label]])
    return out


def _border(shape: tuple[int, int], frac: float = 0.02) -> np.ndarray:
    h, w = shape
    b = max(2, int(round(min(h, w) * frac)))
    out = np.zeros((h, w), bool)
    out[:b] = out[-b:] = True
    out[:, :b] = out[:, -b:] = True
    return out


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
