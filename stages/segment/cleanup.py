"""Mask clean-up: keep the product's parts, drop specks, keep real holes transparent.

A product can have several parts (a pair of earrings, a lid beside its jar) and holes that show the
background (a mug handle, a ring, a bag strap). Only small isolated blobs (dust, noise) are
removed and only pinholes are filled; holes of real size stay open.
"""

from __future__ import annotations

import cv2
import numpy as np


def speck_area(shape: tuple[int, int], fraction: float = 2e-4) -> int:
    """Blobs and holes smaller than this many pixels are noise (0.02% of the image, at least 12 px)."""
    return max(12, int(shape[0] * shape[1] * fraction))


def keep_product_parts(
    mask: np.ndarray, min_part_fraction: float = 0.02, near_part_fraction: float = 0.002, near: float = 0.02
) -> np.ndarray:
    """Drop connected parts smaller than ``min_part_fraction`` of the largest part or than a speck.

    A smaller part lying within ``near`` of the image diagonal of a kept part stays when it holds at
    least ``near_part_fraction`` of the largest: a bag's grab handle or a bottle's loop drawn apart
    from the body by a thin gap of backdrop is product, a fleck far away is not.
    ``mask``: ``HxW`` bool/uint8; returns ``HxW`` bool.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask > 0
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0
    speck = speck_area(mask.shape)
    keep = areas >= max(speck, areas.max() * min_part_fraction)
    keep[0] = False
    small = ~keep & (areas >= max(speck, areas.max() * near_part_fraction))
    small[0] = False
    if small.any():
        reach = max(1, int(near * np.hypot(*mask.shape)))
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
        around = cv2.dilate(keep[labels].astype(np.uint8), disc) > 0
        touching = np.zeros(count, bool)
        touching[np.unique(labels[around])] = True
        keep |= small & touching
    return keep[labels]


def fill_pinholes(mask: np.ndarray, max_area: int | None = None) -> np.ndarray:
    """Fill enclosed background regions smaller than ``max_area`` (default: a speck); bigger holes stay."""
    mask = mask > 0
    max_area = speck_area(mask.shape) if max_area is None else max_area
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    h, w = mask.shape
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    touches_border = (x == 0) | (y == 0) | (x + stats[:, cv2.CC_STAT_WIDTH] == w)
    touches_border |= y + stats[:, cv2.CC_STAT_HEIGHT] == h
    fill = (stats[:, cv2.CC_STAT_AREA] < max_area) & ~touches_border
    fill[0] = False  # label 0 is the mask itself
    return mask | fill[labels]


def open_background_holes(mask: np.ndarray, background_like: np.ndarray) -> np.ndarray:
    """Cut enclosed regions that look like background out of ``mask`` (a handle SAM filled in).

    ``background_like``: ``HxW`` bool, confidently background pixels. A region is cut only when it
    lies inside the mask's outline and is bigger than a speck.
    """
    mask = mask > 0
    candidates = mask & background_like
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates.astype(np.uint8), connectivity=4)
    if count <= 1:
        return mask
    # a hole must be surrounded by product: a ring around the region is (almost) all mask
    ring_kernel = np.ones((5, 5), np.uint8)
    out = mask.copy()
    for label in range(1, count):
        if stats[label, cv2.CC_STAT_AREA] < speck_area(mask.shape):
            continue
        region = labels == label
        ring = cv2.dilate(region.astype(np.uint8), ring_kernel) > 0
        ring &= ~region
        if ring.any() and mask[ring].mean() > 0.9:
            out[region] = False
    return out


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Keep the product's parts and fill pinholes. ``mask`` ``HxW`` -> ``HxW`` bool."""
    return fill_pinholes(keep_product_parts(mask))
