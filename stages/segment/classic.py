"""Weight-free cutout for studio shots on plain light backgrounds.

Fit the backdrop (a smooth color surface) from the image border, find the product's filled outline
with a noise-adapted threshold on the distance to it (holes stay open only where they match the
backdrop), let GrabCut settle a narrow band along that outline at a working size of 640 px, peel
off the contact shadow under the product, then matte the boundary band at full resolution (see
:mod:`stages.segment.refine`) and drop matted shadow outside the outline.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from packshot.types import Cutout
from stages.segment.cleanup import clean_mask, keep_product_parts
from stages.segment.confidence import (
    ADVICE,
    CLASSIC_CHECKS,
    border_mismatch,
    border_ring,
    judge,
    mask_checks,
)
from stages.segment.estimate import Box, ForegroundEstimate, estimate_foreground, shadow_gain, working_copy
from stages.segment.refine import refine_edges
from stages.segment.settings import SegmentSettings

MIN_JUDGED_SIDE = 32  # px: smaller photos get one review reason instead of the checks
BAND_PX = 3  # half-width (working px) of the band GrabCut decides along the silhouette
WEAK_FLOOR = 2.0  # Lab units: faint product pixels grow the outline when connected to clear ones
HAIR_SPREAD = 0.1  # coverage spread (std in 5x5) inside the mask above which an edge is hair
MAX_HOLE_TEXTURE = 0.85  # an enclosed backdrop-colored region with more fine texture is product


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


@dataclass
class Silhouette:
    """The filled outline and what was decided on the way (all at the estimate's working size).

    ``mask``: ``HxW`` bool; ``noise``: the backdrop's own distance to its fit (90th percentile on
    the border, Lab units); ``holes``: the enclosed regions that look like the backdrop, each with
    whether it was left open (a see-through hole) or kept as product.
    """

    mask: np.ndarray
    noise: float
    holes: list[HoleDecision]


@dataclass
class HoleDecision:
    """An enclosed region whose color is the backdrop's: ``area`` px, ``opened`` when cut out.

    ``shading`` and ``texture`` are its evidence of being product surface rather than backdrop
    seen through a hole (both 1.0 at the backdrop's own level; see :func:`_hole_evidence`).
    """

    area: int
    share: float  # of the filled outline's area
    shading: float
    texture: float
    opened: bool


def product_silhouette(est: ForegroundEstimate) -> Silhouette:
    """The product's outline, filled (``HxW`` bool at the estimate's working size), and its holes.

    A hysteresis threshold on the distance to the fitted backdrop finds the whole outline of
    low-contrast products (white on white, light grey on grey): clear product pixels (noise-adapted
    threshold) grow into faint ones connected to them (judged on the locally averaged residual).
    Everything the outline encloses is product (the pale upper of a white shoe, a white cushion's
    middle, refracted backdrop in a glass) except enclosed regions that are the backdrop seen
    through a hole: as close to the fit as the backdrop itself and as smooth (no fabric, knit or
    grain; ``MAX_HOLE_TEXTURE``). A mug's handle and a ring's middle stay open. How shaded each such
    region is goes into the cutout's confidence (a shaded "hole" may be a surface).
    """
    distance = est.distance
    noise = float(np.percentile(distance[border_ring(distance.shape)], 90))
    strong = (distance > max(5.0, 2.5 * noise)) & ~est.shadow
    # faint pixels are judged on the residual averaged over 5x5: JPEG ringing next to a strong edge
    # swings both ways and cancels, a faint product's offset from the backdrop does not
    weak_level = max(WEAK_FLOOR, 3.0 * noise)
    mean_offset = np.linalg.norm(cv2.blur(est.lab_residual, (5, 5)), axis=2)
    weak = (mean_offset > weak_level) & ~est.shadow
    # the average spreads a clear edge 2 px outwards: next to clear pixels a faint one must stand out
    # on its own
    next_to_strong = (cv2.dilate(strong.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ~strong
    weak &= ~(next_to_strong & (distance <= weak_level))
    outline = _grow(strong, weak)
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
    backdrop_colored = enclosed & (median < max(1.5, 1.2 * noise)) & (stats[:, cv2.CC_STAT_AREA] >= 12)
    filled_area = int(outline.sum() + stats[enclosed, cv2.CC_STAT_AREA].sum())
    real_hole = np.zeros(count, bool)
    holes = []
    for label in np.nonzero(backdrop_colored)[0]:
        shading, texture = _hole_evidence(est, labels == label, noise)
        opened = texture < MAX_HOLE_TEXTURE
        real_hole[label] = opened
        area = int(stats[label, cv2.CC_STAT_AREA])
        holes.append(HoleDecision(area, area / max(filled_area, 1), shading, texture, opened))
    filled = (outline > 0) | (enclosed & ~real_hole)[labels]
    return Silhouette(keep_product_parts(filled), noise, holes)


def _grow(strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Pixels of ``weak`` (``HxW`` bool) 8-connected to a pixel of ``strong``, plus ``strong``."""
    count, labels = cv2.connectedComponents((weak | strong).astype(np.uint8), connectivity=8)
    seeded = np.zeros(count, bool)
    seeded[np.unique(labels[strong])] = True
    seeded[0] = False
    return seeded[labels]


def _hole_evidence(est: ForegroundEstimate, region: np.ndarray, noise: float) -> tuple[float, float]:
    """(shading, texture) of an enclosed ``region`` (``HxW`` bool), relative to the backdrop's.

    shading: spread (90th - 10th percentile) of the smoothed signed lightness residual inside the
    region, over the same spread on the border; texture: high-pass energy inside over the border's.
    The backdrop seen through a hole scores about 1 on both; a padded cushion's middle, a shoe's
    knit upper or a box's paper, though of the backdrop's color, score higher.
    """
    core = cv2.erode(region.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # away from the product's edge
    if core.sum() < 12:
        return 0.0, 0.0
    residual = np.ascontiguousarray(est.lab_residual[..., 0])
    smooth = cv2.GaussianBlur(residual, (0, 0), 2.0)
    detail = np.abs(residual - smooth)
    border = border_ring(residual.shape)
    spread_border = np.subtract(*np.percentile(smooth[border], [90, 10]))
    spread_region = np.subtract(*np.percentile(smooth[core], [90, 10]))
    shading = float(spread_region / max(spread_border, 0.5))
    texture = float(np.mean(detail[core]) / max(np.mean(detail[border]), 0.3))
    return shading, texture


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
