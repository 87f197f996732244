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
    box_edge_contact,
    box_edge_reasons,
    edgeless_outline,
    judge,
    mask_checks,
)
from stages.segment.cut_checks import cut_values
from stages.segment.estimate import Box, ForegroundEstimate, estimate_foreground, shadow_gain, working_copy
from stages.segment.refine import refine_edges
from stages.segment.settings import SegmentSettings
from stages.segment.silhouette import Silhouette, product_silhouette

MIN_JUDGED_SIDE = 32  # px: smaller photos get one review reason instead of the checks
BAND_PX = 3  # half-width (working px) of the band GrabCut decides along the silhouette
HAIR_SPREAD = 0.1  # coverage spread (std in 5x5) inside the mask above which an edge is hair
OFF_BLEND = 14.0  # RGB levels off the backdrop-to-hair line beyond which a pale rim pixel is no hair tip
DEEP_SHADOW_PX = 32  # working px: the tallest dark contact shadow peeled from under a product
BOX_GROW = 0.2  # a row's bbox is a hint: the search reaches this share of its size beyond each side


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
            values = parts.review_values(image) | cut_values(image, rgba[..., 3] >= 128)  # the final cut
            confidence, reasons = judge(values, CLASSIC_CHECKS, ADVICE)
        notes = []
        if parts.search is not None:
            edge_reasons = box_edge_reasons(box_edge_contact(mask, parts.search), "the catalog's box, "
                                            f"even widened by {BOX_GROW:.0%} on each side,")
            if edge_reasons:
                confidence = min(confidence, 0.25)
                reasons += edge_reasons
            beyond = _sides_beyond(mask, box)
            if beyond:
                notes.append(f"segment: the product reaches past the {' and '.join(beyond)} edge of the "
                             "row's bbox; it was cut out whole (the box is a hint)")
        return Cutout(rgba, backend=self.name, confidence=confidence, review_reasons=reasons, notes=notes)

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
    search: Box | None = None  # the region searched for a row with a bbox (the box, widened), full-size px
    unclear_base: float = 0.0  # share of the product's width whose base runs into a deep shadow unpeeled

    def review_values(self, image: np.ndarray) -> dict[str, float]:
        """Measured values for :data:`stages.segment.confidence.CLASSIC_CHECKS`."""
        values = {"border_mismatch": border_mismatch(image), "border_noise": self.silhouette.noise}
        values |= mask_checks(self.small_mask, self.silhouette.mask & self.inside, self.estimate.distance)
        values["open_pocket"] = self.silhouette.open_pockets
        values["smooth_fill"] = self.silhouette.smooth_fill
        values["edgeless_outline"] = edgeless_outline(self.small_mask, self.estimate.lab_residual)
        values["shadow_base"] = self.unclear_base
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
    search = None
    found = product_silhouette(est)
    silhouette = found.mask
    if box is not None:
        # the box is a hint, not a crop: the product may reach past a hand-drawn box (a bag's straps)
        search = _widened(box, (h, w))
        x0, y0, x1, y1 = (int(round(v * scale)) for v in search)
        inside[:] = False
        inside[y0:y1, x0:x1] = True
        silhouette = _parts_touching(silhouette & inside, box, scale)
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
    product, unclear_base = _peel_deep_shadow(small, product, est.background)
    product = _peel_sparse_fringe(small, product, est.background)
    fg = _soft_boundary(small, product, est.background)
    backdrop, small_mask = est.background, fg > 0.5
    if scale != 1.0:  # smooth upsampling keeps the outline from turning into stairs
        fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR)
        backdrop = cv2.resize(backdrop, (w, h), interpolation=cv2.INTER_LINEAR)
    return _Parts(fg > 0.5, backdrop, est, found, small_mask, inside, search, unclear_base)


def _widened(box: Box, size: tuple[int, int]) -> Box:
    """``box`` grown by ``BOX_GROW`` of its width and height on each side, within the photo (h, w)."""
    h, w = size
    x0, y0, x1, y1 = box
    dx, dy = max(16, int(BOX_GROW * (x1 - x0))), max(16, int(BOX_GROW * (y1 - y0)))
    return max(x0 - dx, 0), max(y0 - dy, 0), min(x1 + dx, w), min(y1 + dy, h)


def _parts_touching(mask: np.ndarray, box: Box, scale: float) -> np.ndarray:
    """The connected parts of ``mask`` (``HxW`` bool, working size) that overlap ``box`` (full-size px)."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
    keep = np.zeros(count, bool)
    keep[np.unique(labels[max(y0, 0) : y1, max(x0, 0) : x1])] = True
    keep[0] = False
    return keep[labels]


def _sides_beyond(mask: np.ndarray, box: Box, margin: int = 2) -> list[str]:
    """The sides of ``box`` that the product mask (``HxW`` bool, full size) passes by > ``margin`` px."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return []
    x0, y0, x1, y1 = box
    sides = {"left": xs.min() < x0 - margin, "top": ys.min() < y0 - margin,
             "right": xs.max() >= x1 + margin, "bottom": ys.max() >= y1 + margin}
    return [side for side, past in sides.items() if past]


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


def _peel_deep_shadow(
    image: np.ndarray, mask: np.ndarray, background: np.ndarray, max_px: int = DEEP_SHADOW_PX
) -> tuple[np.ndarray, float]:
    """Remove a deep contact shadow (its core nearly black) that the silhouette took for the product's base.

    A product pressed onto the floor casts a shadow whose core can be as dark as a black product
    (gain 0.07 under a cushion), so color alone cannot tell them apart. Three things do: it has the
    backdrop's hue and no texture; under the cut it keeps fading for pixels (a product's own edge
    meets the backdrop within one or two); and going up it ends, within ``max_px``, at a pixel that
    is not shadow-colored: the product's edge. Peeled from below one row per step; a peeled region
    whose top never met such an edge (a smooth grey product, a black one in its own shadow) is put
    back. ``image`` ``HxWx3 uint8``, ``mask`` ``HxW`` bool; returns the peeled ``HxW`` bool mask and
    the share of the mask's width where a shadow run was put back (the base and the shadow could
    not be told apart there: the ``shadow_base`` check).
    """
    gain, residual = shadow_gain(image, background)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    texture = cv2.GaussianBlur(np.abs(cv2.Laplacian(gray, cv2.CV_32F)), (5, 5), 0)
    shadow_colored = (gain > 0.03) & (gain < 0.985) & (residual < 8.0) & (texture < 8.0)
    gain_below = np.vstack([gain[1:], gain[-1:]])
    candidates = shadow_colored & (np.abs(gain - gain_below) < 0.2)
    # where the cut ends, the shadow still fades two pixels further down
    fading = np.vstack([gain[2:], gain[-2:]]) < 0.95
    h, w = mask.shape
    kept = mask.copy()
    peeled = np.zeros_like(mask)
    for step in range(max_px):
        below_is_out = np.vstack([~kept[1:], np.zeros((1, w), bool)])
        peel = kept & candidates & below_is_out
        if step == 0:
            peel &= fading
        else:  # keep climbing only above what was peeled (a column's run, not a new start)
            peel &= np.vstack([peeled[1:], np.zeros((1, w), bool)])
        if not peel.any():
            break
        kept &= ~peel
        peeled |= peel
    if not peeled.any():
        return mask, 0.0
    # a run still climbing after max_px never met the product's edge: put its region back
    below_is_out = np.vstack([~kept[1:], np.zeros((1, w), bool)])
    climbing = kept & candidates & below_is_out & np.vstack([peeled[1:], np.zeros((1, w), bool)])
    count, labels = cv2.connectedComponents(peeled.astype(np.uint8), connectivity=8)
    unfinished = np.zeros(count, bool)
    unfinished[np.unique(labels[cv2.dilate(climbing.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0])] = True
    unfinished[0] = False
    # a region whose top meets the backdrop, not the product, was a light part's underside (a
    # handle's arch), and one never darker than a light shade is no deep shadow
    width = max(int(mask.any(axis=0).sum()), 1)
    unclear = float(unfinished[labels].any(axis=0).sum() / width)  # dark runs that never met an edge
    above = np.vstack([np.zeros((1, w), bool), mask[:-1]])
    above_peeled = np.vstack([np.zeros((1, w), bool), peeled[:-1]])
    top = peeled & ~above_peeled
    tops = np.bincount(labels[top], minlength=count)
    in_air = np.bincount(labels[top & ~above], minlength=count)
    unfinished |= in_air > 0.6 * np.maximum(tops, 1)
    unfinished[0] = False
    # a thin sliver is an edge's blend, not a shadow: only regions at least 3 rows tall count
    tall = np.zeros(count, bool)
    for label in range(1, count):
        region = labels == label
        ys = np.nonzero(region)[0]
        tall[label] = ys.max() - ys.min() >= 2 and gain[region].min() < 0.6
    restore = (unfinished | ~tall)[labels] & peeled
    return kept | restore, unclear


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
    # a hair tip is a blend of the hair's color and the backdrop's; a pale rim of another shade (a
    # candle's lit top edge) lies off that line and is not peeled
    off_line = np.linalg.norm(img - background - coverage[..., None] * fg_minus_bg, axis=2)
    blend = off_line < OFF_BLEND
    coverage = cv2.blur(coverage, (3, 3))
    peelable = (weight > 0) & (norm2 > 30.0**2) & (coverage < 0.5) & hairy & blend
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
