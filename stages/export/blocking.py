"""How blocky an image looks: the block-edge impairment ratio of JPEG's 8 x 8 grid.

``blockiness(rgb, region)`` follows the generalized block-edge impairment metric (GBIM) of Wu & Yuen
("A generalized block-edge impairment metric for video coding", IEEE Signal Processing Letters 4(11),
1997) without its luminance-masking weight: the mean absolute difference between neighbouring pixels
*across* the 8-px block boundaries divided by the mean difference between neighbours *inside* the
blocks, horizontally and vertically together. 1.0 means the boundaries are no more visible than any
other step (no blocking); a flat color coded in visible 8 x 8 steps scores well above 1. As in
GBIM it is computed on luma (Y', BT.601, as JPEG codes it). :func:`chroma_blockiness` is the same
ratio on Cb and Cr (the worse of the two), for subsampled chroma blocks on saturated colors; it reacts
to steps far below one level (JPEG smooths chroma inside a block), so it is reported, not used to
choose the quality.
"""

from __future__ import annotations

import cv2
import numpy as np

BLOCK = 8
_EPS = 1.0  # one level added to both means: steps well under a level are not seen as edges, and a
# perfectly flat area (0 / 0) counts as no blocking


def blockiness(rgb: np.ndarray, region: np.ndarray | None = None) -> float:
    """Block-edge impairment ratio of the luma of ``rgb`` (``HxWx3 uint8``, the 8-px grid starting at
    pixel 0) over ``region`` (``HxW bool``, pairs of neighbours both inside it; ``None``: everywhere)."""
    return _ratio(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), region)  # BT.601 luma, as JPEG codes it


def chroma_blockiness(rgb: np.ndarray, region: np.ndarray | None = None) -> float:
    """:func:`blockiness` of Cb and Cr, the worse of the two."""
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    return max(_ratio(np.ascontiguousarray(ycc[..., c]), region) for c in (1, 2))


def _ratio(channel: np.ndarray, region: np.ndarray | None) -> float:
    """``channel``: ``HxW uint8``."""
    if region is None:
        region = np.ones(channel.shape, bool)
    x, y, w, h = cv2.boundingRect(region.view(np.uint8))
    if w < 2 or h < 2:
        return 1.0
    x0, y0 = x - x % BLOCK, y - y % BLOCK  # the bounding box, cut at block edges so the grid stays put
    channel = channel[y0 : y + h, x0 : x + w]
    mask = region[y0 : y + h, x0 : x + w].view(np.uint8) * np.uint8(255)
    sums = np.zeros(4)  # across, pairs across, all, pairs
    for axis in (1, 0):  # neighbours along a row (vertical block edges), then along a column
        a, b = (np.s_[:, :-1], np.s_[:, 1:]) if axis == 1 else (np.s_[:-1], np.s_[1:])
        diff = cv2.absdiff(channel[b], channel[a])
        pairs = cv2.bitwise_and(mask[a], mask[b])
        edge = np.s_[:, BLOCK - 1 :: BLOCK] if axis == 1 else np.s_[BLOCK - 1 :: BLOCK]
        for i, (d, p) in enumerate(((diff[edge], pairs[edge]), (diff, pairs))):
            d, p = np.ascontiguousarray(d), np.ascontiguousarray(p)
            n = cv2.countNonZero(p)
            sums[2 * i] += cv2.mean(d, mask=p)[0] * n if n else 0.0
            sums[2 * i + 1] += n
    across, n_across, total, n_total = sums
    n_inside = n_total - n_across
    if n_across == 0 or n_inside == 0:
        return 1.0
    return (across / n_across + _EPS) / ((total - across) / n_inside + _EPS)
