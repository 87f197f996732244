"""The product's filled outline on a studio shot, and which enclosed regions are real holes.

Used by the classic backend (:mod:`stages.segment.classic`) at the estimate's working size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stages.segment.cleanup import keep_product_parts
from stages.segment.confidence import border_ring
from stages.segment.estimate import ForegroundEstimate, label_percentile

WEAK_FLOOR = 1.5  # Lab units: faint product pixels grow the outline when connected to clear ones
HOLE_FLOOR = 2.0  # Lab units: an enclosed region under this median distance may be the backdrop
MAX_HOLE_TEXTURE = 0.85  # an enclosed backdrop-colored region with more fine texture is product
NEAR_BACKDROP = 8.0  # Lab units: an enclosed region closer than this to the backdrop fit may be backdrop
SEAL_PX = 15  # working px: gaps in a light product's outline up to this wide are sealed to find pockets


@dataclass
class Silhouette:
    """The filled outline and what was decided on the way (all at the estimate's working size).

    ``mask``: ``HxW`` bool; ``noise``: the backdrop's own distance to its fit (90th percentile on
    the border where the product does not touch it, Lab units); ``holes``: the enclosed regions
    that look like the backdrop, each with whether it was left open (a see-through hole) or kept
    as product; ``open_pockets``: see :func:`_sealed_pockets`.
    """

    mask: np.ndarray
    noise: float
    holes: list[HoleDecision]
    open_pockets: float = 0.0  # area of backdrop pockets only a sealed outline encloses, share of the mask
    smooth_fill: float = 0.0  # area of smooth, near-backdrop enclosed regions kept as product, share


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
    ring = distance[border_ring(distance.shape)]
    noise = float(np.percentile(ring, 90))
    # the thresholds read the backdrop's own noise: a product touching the frame (a garment's hem,
    # furniture feet) is on the border too, so the far pixels of the ring are left out there
    noise_floor = float(np.percentile(ring[ring <= max(4.0 * np.median(ring), 2.0)], 90))
    strong = (distance > max(5.0, 2.5 * noise_floor)) & ~est.shadow
    # faint pixels are judged on the residual averaged over 5x5: JPEG ringing next to a strong edge
    # swings both ways and cancels, a faint product's offset from the backdrop does not
    mean_offset = np.linalg.norm(cv2.blur(est.lab_residual, (5, 5)), axis=2)
    # JPEG's 8x8 blocks shift a flat backdrop by a level or two and do not average out over 5x5:
    # the faint threshold stays above the averaged offsets the border itself shows
    ring_offset = mean_offset[border_ring(distance.shape)]
    block_level = float(np.percentile(ring_offset[ring_offset <= max(4.0 * np.median(ring_offset), 2.0)], 99))
    weak_level = max(WEAK_FLOOR, 3.0 * noise_floor, 1.5 * block_level)
    weak = (mean_offset > weak_level) & ~est.shadow
    # the average spreads a clear edge 2 px outwards: next to clear pixels a faint one must stand out
    # on its own
    next_to_strong = (cv2.dilate(strong.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ~strong
    weak &= ~(next_to_strong & (distance <= weak_level))
    # JPEG rings around a clear edge out to its 8x8 block: the faintest pixels count only beyond it
    ringing = cv2.dilate(strong.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    weak &= ~(ringing & ~strong & (mean_offset < HOLE_FLOOR))
    outline = _grow(strong, weak)
    outline = cv2.morphologyEx(outline.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    outline = cv2.morphologyEx(
        outline | est.mask.astype(np.uint8),
        cv2.MORPH_CLOSE,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)),
    )
    # a light product's outline can have gaps (a white upper's top edge is lit to the backdrop's
    # level in places): sealing them finds the pockets the backdrop "leaks" into through a gap
    sealed = cv2.morphologyEx(
        outline, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (SEAL_PX, SEAL_PX))
    )
    pockets, left_open = _sealed_pockets(est, outline, sealed, noise)
    outline = outline | pockets.astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(1 - outline, connectivity=4)
    h, w = distance.shape
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    enclosed = (
        (x > 0) & (y > 0) & (x + stats[:, cv2.CC_STAT_WIDTH] < w) & (y + stats[:, cv2.CC_STAT_HEIGHT] < h)
    )
    enclosed[0] = False  # label 0 is the outline itself
    median = _label_medians(distance, labels, count)
    # under the hole floor a region is not even faint product (JPEG ringing in a small handle hole
    # on a flawless backdrop reaches 1.7)
    backdrop_colored = enclosed & (median < max(HOLE_FLOOR, 1.2 * noise_floor))
    backdrop_colored &= stats[:, cv2.CC_STAT_AREA] >= 12
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
    kept = keep_product_parts(filled)
    # enclosed regions kept as product although smooth and near the backdrop's color: the backdrop
    # between a chair's legs under an uneven sweep looks like this, so does a pale panel
    doubtful = enclosed & ~backdrop_colored & (median < NEAR_BACKDROP) & (stats[:, cv2.CC_STAT_AREA] >= 12)
    smooth_fill = 0
    for label in np.nonzero(doubtful)[0]:
        _, texture = _hole_evidence(est, labels == label, noise)
        if texture < MAX_HOLE_TEXTURE:
            smooth_fill += int(stats[label, cv2.CC_STAT_AREA])
    area = max(int(kept.sum()), 1)
    return Silhouette(kept, noise_floor, holes, left_open / area, smooth_fill / area)


def _sealed_pockets(
    est: ForegroundEstimate, outline: np.ndarray, sealed: np.ndarray, noise: float
) -> tuple[np.ndarray, int]:
    """Pockets that only a sealed outline encloses and that are product surface (``HxW`` bool), and
    the area (px) of the pockets left open.

    ``outline``: the grown outline (``HxW`` uint8), ``sealed``: it closed over gaps of ``SEAL_PX``.
    A pocket is the region the sealed outline encloses but the outline does not, with the sealed
    gap's pixels next to it. It is product when it is textured like a surface (leather grain, a
    seam, laces; ``MAX_HOLE_TEXTURE``) and not a shadow; the backdrop seen between two parts (a
    strap and the body, chair legs) is smooth and stays open, but nothing here can tell it from a
    smooth light part, so the open area is reported (the ``open_pocket`` check).
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(1 - sealed, connectivity=4)
    h, w = outline.shape
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    enclosed = (
        (x > 0) & (y > 0) & (x + stats[:, cv2.CC_STAT_WIDTH] < w) & (y + stats[:, cv2.CC_STAT_HEIGHT] < h)
    )
    enclosed[0] = False
    enclosed &= stats[:, cv2.CC_STAT_AREA] >= 12
    # regions the plain outline already encloses are judged as holes by the caller
    plain_count, plain_labels = cv2.connectedComponents(1 - outline, connectivity=4)
    open_to_frame = np.zeros(plain_count, bool)
    open_to_frame[np.unique(np.concatenate([plain_labels[0], plain_labels[-1], plain_labels[:, 0],
                                            plain_labels[:, -1]]))] = True
    open_to_frame[0] = False
    skin = (sealed > 0) & (outline == 0)
    out = np.zeros((h, w), bool)
    left_open = 0
    reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (SEAL_PX, SEAL_PX))
    for label in np.nonzero(enclosed)[0]:
        region = labels == label
        if not open_to_frame[plain_labels[region]].any():
            continue  # enclosed without the seal: an ordinary hole
        _, texture = _hole_evidence(est, region, noise)
        if texture < MAX_HOLE_TEXTURE or est.shadow[region].mean() > 0.5:
            left_open += int(stats[label, cv2.CC_STAT_AREA])
            continue
        out |= region | ((cv2.dilate(region.astype(np.uint8), reach) > 0) & skin)
    return out, left_open


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


def _label_medians(values: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Median of ``values`` per label (``count`` labels), NaN-free (empty labels get +inf)."""
    return label_percentile(values, labels, count, 50, empty=np.inf)
