"""Geometry and compositing shared by the export, background and lifestyle stages.

All functions take and return numpy arrays: RGB ``HxWx3 uint8``, mattes ``HxW uint8``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from packshot.types import Cutout


@dataclass
class Placement:
    """Where a cutout lands on a canvas: the scaled RGBA layer and its top-left corner."""

    rgba: np.ndarray  # the cropped, scaled cutout (h x w x 4)
    x: int
    y: int
    canvas_size: tuple[int, int]  # (width, height)
    src_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # the cutout's bbox in source pixels

    def warp(self, source_mask: np.ndarray) -> np.ndarray:
        """Map an ``HxW uint8`` mask drawn on the source photo into canvas coordinates, the same
        way the cutout was cropped, scaled and placed (for a merchant's recolor mask)."""
        x0, y0, x1, y1 = self.src_box
        h, w = self.rgba.shape[:2]
        crop = source_mask[y0:y1, x0:x1]
        scaled = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
        cw, ch = self.canvas_size
        out = np.zeros((ch, cw), np.uint8)
        out[self.y : self.y + h, self.x : self.x + w] = scaled
        return out

    def layer(self) -> tuple[np.ndarray, np.ndarray]:
        """Full-canvas (rgb, alpha) of the product alone."""
        cw, ch = self.canvas_size
        rgb = np.zeros((ch, cw, 3), np.uint8)
        alpha = np.zeros((ch, cw), np.uint8)
        h, w = self.rgba.shape[:2]
        rgb[self.y : self.y + h, self.x : self.x + w] = self.rgba[..., :3]
        alpha[self.y : self.y + h, self.x : self.x + w] = self.rgba[..., 3]
        return rgb, alpha


def place_product(
    cutout: Cutout,
    size: tuple[int, int],
    fill_fraction: float,
    anchor: Literal["center", "floor"] = "center",
    floor_line: float = 0.86,
) -> Placement:
    """Scale the cutout so its bounding box spans ``fill_fraction`` of the frame and position it.

    ``fill_fraction`` applies to the side that binds first, so the product never exceeds the frame.
    ``anchor="floor"`` stands the product's bottom on ``floor_line`` (fraction of the height).
    Upscaling uses Lanczos, downscaling area averaging; alpha is scaled with the same filter.
    """
    cw, ch = size
    x0, y0, x1, y1 = cutout.bbox
    crop = cutout.rgba[y0:y1, x0:x1]
    bw, bh = x1 - x0, y1 - y0
    scale = min(cw * fill_fraction / bw, ch * fill_fraction / bh)
    w, h = max(1, round(bw * scale)), max(1, round(bh * scale))
    w, h = min(w, cw), min(h, ch)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4
    scaled = _resize_rgba(crop, (w, h), interp)
    x = (cw - w) // 2
    if anchor == "floor":
        y = int(round(ch * floor_line)) - h
        y = min(max(y, 0), ch - h)
    else:
        y = (ch - h) // 2
    return Placement(scaled, x, y, (cw, ch), (x0, y0, x1, y1))


def _resize_rgba(rgba: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    """Resize with premultiplied color so transparent pixels do not bleed into the edge."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    pre = np.concatenate([rgba[..., :3].astype(np.float32) * a, a * 255.0], axis=2)
    out = cv2.resize(pre, size, interpolation=interp)
    out = np.clip(out, 0, 255)
    alpha = out[..., 3:4]
    safe = np.where(alpha > 0.5, alpha / 255.0, 1.0)
    rgb = np.clip(out[..., :3] / safe, 0, 255)
    rgb = np.where(alpha > 0.5, rgb, 0)
    return np.concatenate([rgb, alpha], axis=2).round().astype(np.uint8)


def contact_shadow(placement: Placement, strength: float = 0.35, spread: float = 0.06) -> np.ndarray:
    """A soft elliptical shadow under the product's base, as an ``HxW float32`` darkness in [0, 1].

    The ellipse follows the width of the product's lowest rows, so a bottle casts a narrow shadow
    and a sofa a wide one; it sits on the base so the product does not float.
    """
    cw, ch = placement.canvas_size
    alpha = placement.rgba[..., 3]
    h, w = alpha.shape
    rows = np.nonzero(alpha.max(axis=1) > 128)[0]
    if len(rows) == 0:
        return np.zeros((ch, cw), np.float32)
    bottom = rows.max()
    base_rows = alpha[max(bottom - max(2, h // 20), 0) : bottom + 1] > 128
    cols = np.nonzero(base_rows.any(axis=0))[0]
    left, right = (cols.min(), cols.max()) if len(cols) else (0, w - 1)
    cx = placement.x + (left + right) / 2
    cy = placement.y + bottom
    rx = max((right - left) / 2 * 1.08, 2)
    ry = max(rx * 0.12, 2)
    shadow = np.zeros((ch, cw), np.float32)
    cv2.ellipse(shadow, (int(cx), int(cy)), (int(rx), int(ry)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    blur = max(3, int(max(cw, ch) * spread) | 1)
    # Blur only the window the kernel can reach (same result, ~10x faster at 2048 px).
    pad = blur // 2 + 2
    y0, y1 = max(int(cy - ry) - pad, 0), min(int(cy + ry) + pad + 1, ch)
    x0, x1 = max(int(cx - rx) - pad, 0), min(int(cx + rx) + pad + 1, cw)
    if y1 > y0 and x1 > x0:
        shadow[y0:y1, x0:x1] = cv2.GaussianBlur(shadow[y0:y1, x0:x1], (blur, blur), 0)
    if shadow.max() > 0:
        shadow = shadow / shadow.max()
    return shadow * strength


def composite(background: np.ndarray, fg_rgb: np.ndarray, fg_alpha: np.ndarray) -> np.ndarray:
    """Alpha-blend a straight-alpha foreground over an RGB background. Full-opacity pixels are
    copied exactly (no rounding), which is what the product-fidelity guarantee relies on."""
    out = background.copy()
    window = _nonzero_window(fg_alpha)  # outside it the background is unchanged
    if window is None:
        return out
    a = fg_alpha[window].astype(np.float32)[..., None] / 255.0
    blend = background[window].astype(np.float32) * (1 - a) + fg_rgb[window].astype(np.float32) * a
    blend = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    solid = fg_alpha[window] == 255
    blend[solid] = fg_rgb[window][solid]
    out[window] = blend
    return out


def apply_shadow(background: np.ndarray, shadow: np.ndarray, color=(0, 0, 0)) -> np.ndarray:
    out = background.copy()
    window = _nonzero_window(shadow)
    if window is None:
        return out
    s = shadow[window][..., None]
    shaded = background[window].astype(np.float32) * (1 - s) + np.asarray(color, np.float32) * s
    out[window] = np.clip(np.round(shaded), 0, 255).astype(np.uint8)
    return out


def _nonzero_window(plane: np.ndarray) -> tuple[slice, slice] | None:
    """Row and column slices bounding the non-zero pixels of an ``HxW`` array, or None."""
    rows = np.flatnonzero(plane.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(plane.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
