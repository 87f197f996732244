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


def fit_background(image: np.ndarray, border_frac: float = 0.04) -> np.ndarray:
    """Fit a quadratic color surface to the border of ``image`` (HxWx3 uint8); returns HxWx3 float32.

    Two passes: border pixels far from the first fit (a product touching the frame) are dropped.
    """
    h, w = image.shape[:2]
    b = max(2, int(round(min(h, w) * border_frac)))
    on_border = np.zeros((h, w), bool)
    on_border[:b] = on_border[-b:] = True
    on_border[:, :b] = on_border[:, -b:] = True
    ys, xs = np.nonzero(on_border)
    yn, xn = ys / h - 0.5, xs / w - 0.5
    design = np.stack([np.ones_like(xn), xn, yn, xn * yn, xn**2, yn**2], axis=1)
    values = image[ys, xs].astype(np.float64)
    keep = np.ones(len(ys), bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        residual = np.linalg.norm(values - design @ coef, axis=1)
        keep = residual <= max(np.percentile(residual, 80), 6.0)
    gy, gx = np.mgrid[0:h, 0:w]
    gy, gx = gy / h - 0.5, gx / w - 0.5
    grid = np.stack([np.ones_like(gx), gx, gy, gx * gy, gx**2, gy**2], axis=-1)
    return np.clip(grid @ coef, 0, 255).astype(np.float32)


def estimate_foreground(image: np.ndarray, threshold: float = 14.0) -> ForegroundEstimate:
    """Estimate the product in a studio shot. ``image``: RGB ``HxWx3 uint8`` (any size)."""
    small, scale = working_copy(image)
    background = fit_background(small)
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
    return is_shadow[labels]


def interior_point(mask: np.ndarray) -> tuple[int, int] | None:
    """(x, y) of the mask pixel farthest from its boundary, or None for an empty mask."""
    if not mask.any():
        return None
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)
