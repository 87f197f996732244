"""Cheap foreground estimate for studio shots, used to prompt SAM and to seed the classic backend.

The background of a studio shot is smooth (white, grey or a soft gradient), so it is modelled as a
quadratic surface per color channel fitted to the image border. A pixel is product when it differs
from that surface, except where it looks like a shadow: the background color scaled darker with
the same hue (contact shadows are background in a cutout).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]

MAX_SIDE = 640  # the estimate is computed at this long side; masks are resized back
PALE_GAIN = 0.85  # a region whose darkest 10% keep this share of the backdrop's light may be pale product


@dataclass
class ForegroundEstimate:
    """All arrays ``HxW`` at the estimate's working size (see ``scale``).

    ``distance``: Lab distance to the fitted background; ``shadow``: pixels that look like the
    background in shadow; ``mask``: the estimated product (bool); ``scale``: working / original size.
    """

    background: np.ndarray  # HxWx3 float32 RGB, the fitted background
    distance: np.ndarray
    shadow: np.ndarray
    mask: np.ndarray
    scale: float
    lab_residual: np.ndarray | None = None  # HxWx3 float32: Lab of the photo minus Lab of the fit

    def mask_at(self, size: tuple[int, int]) -> np.ndarray:
        """The product mask resized to ``size`` = (height, width), bool."""
        h, w = size
        return cv2.resize(self.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0

    def box_at(self, size: tuple[int, int]) -> Box | None:
        """Bounding box (x0, y0, x1, y1, exclusive) of the mask in original pixels, or None if empty."""
        ys, xs = np.nonzero(self.mask)
        if len(xs) == 0:
            return None
        h, w = size
        s = self.scale
        return (
            max(int(xs.min() / s) - 1, 0),
            max(int(ys.min() / s) - 1, 0),
            min(int(np.ceil((xs.max() + 1) / s)) + 1, w),
            min(int(np.ceil((ys.max() + 1) / s)) + 1, h),
        )


def working_copy(image: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, float]:
    """Downscale ``image`` (HxWx3 uint8) so its long side is at most ``max_side``; returns (image, scale)."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def border_ring(shape: tuple[int, int], frac: float = 0.02) -> np.ndarray:
    """``HxW`` bool: the outer ``frac`` of the frame (at least 2 px, :func:`border_width`) on every side."""
    h, w = shape
    b = border_width(shape, frac)
    out = np.zeros((h, w), bool)
    out[:b] = out[-b:] = True
    out[:, :b] = out[:, -b:] = True
    return out


def border_width(shape: tuple[int, int], frac: float) -> int:
    """Pixels in the outer ``frac`` of an ``HxW`` frame's shorter side, at least 2."""
    return max(2, int(round(min(shape) * frac)))


def _border_pixels(h: int, w: int, border_frac: float) -> tuple[int, np.ndarray, np.ndarray]:
    """(strip width ``b``, row and column indices) of the frame's border strips of an ``h x w`` image."""
    ys, xs = np.nonzero(border_ring((h, w), border_frac))
    return border_width((h, w), border_frac), ys, xs


def _quadratic_design(ys: np.ndarray, xs: np.ndarray, h: int, w: int) -> np.ndarray:
    yn, xn = ys / h - 0.5, xs / w - 0.5
    return np.stack([np.ones_like(xn), xn, yn, xn * yn, xn**2, yn**2], axis=-1)


def fit_backdrop(image: np.ndarray, border_frac: float = 0.04) -> np.ndarray:
    """The studio backdrop behind ``image`` (RGB ``HxWx3 uint8``) as ``HxWx3 float32``, fitted on its border.

    A quadratic color surface plus a smooth per-row profile. The surface is fitted robustly: from the
    border's median color on, border pixels far from the current fit are dropped, so a product that
    covers much of one edge (a garment's hem, furniture feet) does not tilt it. The row profile is
    what a seamless sweep adds (its wall-to-floor bend is a sigmoid in height, no quadratic): read
    per row on the left and right border strips, where the two agree or where one side agrees with
    its neighbours' trend (a product touching one side leaves the other to read).
    """
    h, w = image.shape[:2]
    b, ys, xs = _border_pixels(h, w, border_frac)
    design = _quadratic_design(ys, xs, h, w)
    values = image[ys, xs].astype(np.float64)
    row_profile = np.zeros((h, 3))
    residual = np.linalg.norm(values - np.median(values, axis=0), axis=1)
    keep = residual <= max(np.percentile(residual, 60), 6.0)
    for _ in range(2):
        target = values - row_profile[ys]
        for _ in range(3):
            coef, *_ = np.linalg.lstsq(design[keep], target[keep], rcond=None)
            residual = np.linalg.norm(target - design @ coef, axis=1)
            keep = residual <= max(3.0 * np.median(residual[keep]), 4.0)
        row_profile = _row_profile(image, b, coef, h, w)
    gy, gx = np.mgrid[0:h, 0:w]
    surface = _quadratic_design(gy, gx, h, w) @ coef + row_profile[:, None, :]
    return np.clip(surface, 0, 255).astype(np.float32)


def _row_profile(image: np.ndarray, b: int, coef: np.ndarray, h: int, w: int, tol: float = 4.0) -> np.ndarray:
    """``Hx3``: the per-row offset of the left and right border strips from the quadratic ``coef``.

    Per row and side, the strip's median residual. Rows where both sides agree within ``tol`` are read
    as their mean; the others take the side closer to the agreeing rows' trend (when within ``tol``
    of it) or the trend itself. Smoothed over ``h / 60`` rows: a sweep bends over a tenth of the frame.
    """
    rows = np.arange(h)
    sides = []
    for x0, x1 in ((0, b), (w - b, w)):
        gy, gx = np.mgrid[0:h, x0:x1]
        fit = _quadratic_design(gy, gx, h, w) @ coef
        sides.append(np.median(image[:, x0:x1].astype(np.float64) - fit, axis=1))
    left, right = sides
    agree = np.linalg.norm(left - right, axis=1) < tol
    if agree.sum() < max(8, h // 20):
        return np.zeros((h, 3))
    mean = (left + right) / 2
    trend = np.stack([np.interp(rows, rows[agree], mean[agree, c]) for c in range(3)], axis=1)
    profile = mean.copy()
    off_left = np.linalg.norm(left - trend, axis=1)
    off_right = np.linalg.norm(right - trend, axis=1)
    closer = np.where((off_left <= off_right)[:, None], left, right)
    usable = np.minimum(off_left, off_right) < tol
    profile[~agree] = np.where(usable[~agree, None], closer[~agree], trend[~agree])
    sigma = max(h / 60.0, 1.0)
    smooth = cv2.GaussianBlur(profile.astype(np.float32)[:, None, :], (1, 0), sigmaX=0.1, sigmaY=sigma)
    return smooth[:, 0, :].astype(np.float64)


def estimate_foreground(image: np.ndarray, threshold: float = 14.0) -> ForegroundEstimate:
    """Estimate the product in a studio shot. ``image``: RGB ``HxWx3 uint8`` (any size)."""
    small, scale = working_copy(image)
    background = fit_backdrop(small)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lab_bg = cv2.cvtColor(background / 255.0, cv2.COLOR_RGB2LAB)
    distance = np.linalg.norm(lab - lab_bg, axis=2)
    shadow = shadow_like(small, background)
    mask = (distance > threshold) & ~shadow
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    return ForegroundEstimate(background, distance, shadow, mask, scale, lab - lab_bg)


def shadow_gain(image: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the gain k that best explains ``image`` as ``k * background`` and the RGB residual.

    ``image`` ``HxWx3 uint8``, ``background`` ``HxWx3 float32``; returns two ``HxW float32`` arrays.
    A shadow on the backdrop has k < 1 and a small residual (same chroma, only darker).
    """
    img = image.astype(np.float32)
    gain = (img * background).sum(axis=2) / np.maximum((background * background).sum(axis=2), 1.0)
    residual = np.linalg.norm(img - gain[..., None] * background, axis=2)
    return gain, residual


def shadow_like(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Pixels that are the background color scaled darker (``HxW`` bool).

    For each pixel the best gain k with image ~ k * background is found; a shadow candidate has k
    in [0.35, 0.985], a small residual and a smooth neighbourhood. A candidate region counts as a
    shadow only if it fades out softly where it meets the background (along most of that border
    the gain changes per pixel by under 3% and under 15% of the region's mean depth 1 - gain); a
    flat grey part of the product meets it with a step.
    """
    gain, residual = shadow_gain(image, background)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    texture = cv2.GaussianBlur(np.abs(cv2.Laplacian(gray, cv2.CV_32F)), (5, 5), 0)
    candidate = (gain > 0.35) & (gain < 0.985) & (residual < 7.0) & (texture < 4.0)
    count, labels = cv2.connectedComponents(candidate.astype(np.uint8), connectivity=8)
    if count <= 1:
        return candidate
    background_like = (gain >= 0.985) & (residual < 7.0)
    touching_background = cv2.dilate(background_like.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    edge = candidate & touching_background
    edge_labels = labels[edge]
    # gain change per pixel: a shadow fades over many pixels, a product's edge steps within two or
    # three; relative to the region's depth (1 - gain) so a light-grey product's shallow step counts
    slope = np.hypot(cv2.Sobel(gain, cv2.CV_32F, 1, 0), cv2.Sobel(gain, cv2.CV_32F, 0, 1)) / 8.0
    depth = np.bincount(labels.ravel(), weights=(1.0 - gain).ravel(), minlength=count)
    depth /= np.maximum(np.bincount(labels.ravel(), minlength=count), 1)
    limit = np.minimum(0.03, 0.15 * np.maximum(depth, 0.01))[edge_labels]
    soft = np.bincount(edge_labels, weights=(slope[edge] < limit).astype(np.float64), minlength=count)
    total = np.bincount(edge_labels, minlength=count)
    is_shadow = (total > 0) & (soft >= 0.5 * np.maximum(total, 1))
    is_shadow[0] = False
    # a pale surface is never much darker than the backdrop (a contact shadow's core is): only
    # such regions are looked at for details inside
    pale = label_percentile(gain, labels, count, 10) > PALE_GAIN
    is_shadow &= ~(pale & _enclosing_details(candidate, labels, count, texture, residual))
    return is_shadow[labels]


def _enclosing_details(
    candidate: np.ndarray, labels: np.ndarray, count: int, texture: np.ndarray, residual: np.ndarray
) -> np.ndarray:
    """Per label of ``labels`` (``count``): whether the candidate region encloses product details.

    A shadow is smooth through and through; a pale product lit to the backdrop's level (a white
    sneaker's upper) has the backdrop's hue and a soft top edge too, but its outline encloses
    eyelets, seams and stitching: small non-shadow islands with edges or another hue. ``candidate``
    ``HxW`` bool, ``texture`` and ``residual`` ``HxW float32`` (see :func:`shadow_like`).
    """
    holes = ~candidate
    count_h, hole_labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    h, w = candidate.shape
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    enclosed = (x > 0) & (y > 0) & (x + stats[:, cv2.CC_STAT_WIDTH] < w)
    # small islands: details inside a product, not a product lying beside the shadow
    enclosed &= (y + stats[:, cv2.CC_STAT_HEIGHT] < h) & (stats[:, cv2.CC_STAT_AREA] <= 0.01 * h * w)
    detail = enclosed[hole_labels] & ((texture >= 8.0) | (residual >= 12.0))
    # which candidate region surrounds each detail pixel: the largest label next to it
    around = cv2.dilate(labels.astype(np.float32), np.ones((5, 5), np.uint8)).astype(np.int32)
    per_label = np.bincount(around[detail], minlength=count)
    return per_label >= 8


def label_percentile(
    values: np.ndarray, labels: np.ndarray, count: int, q: float, empty: float = 0.0
) -> np.ndarray:
    """The ``q``-th percentile of ``values`` (``HxW``) per label of ``labels`` (``count`` labels;
    ``empty`` for a label with no pixels)."""
    order = np.argsort(labels, axis=None, kind="stable")
    sorted_labels, sorted_values = labels.ravel()[order], values.ravel()[order]
    starts = np.searchsorted(sorted_labels, np.arange(count))
    ends = np.searchsorted(sorted_labels, np.arange(count), side="right")
    out = np.full(count, empty, np.float64)
    for label in range(count):
        if ends[label] > starts[label]:
            out[label] = np.percentile(sorted_values[starts[label] : ends[label]], q)
    return out


def interior_point(mask: np.ndarray) -> tuple[int, int] | None:
    """(x, y) of the mask pixel farthest from its boundary, or None for an empty mask."""
    if not mask.any():
        return None
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)
