"""Studio backdrops drawn without any model: sweeps, two-tone sets and soft gradients.

They serve the ``classic`` backend (CPU-only installs) and the placeholder the generative fill
starts from. Everything is separable (row profile x column profile), so a 2048 px backdrop takes
tens of milliseconds.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_PALETTE = ["#F4F1EC", "#DCD6CC", "#B9B0A3"]
STYLES = ("sweep", "two-tone", "glow")


def hex_to_rgb(value: str) -> np.ndarray:
    value = value.lstrip("#")
    return np.array([int(value[i : i + 2], 16) for i in (0, 2, 4)], np.float32)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _gaussian(n: int, center: float, sigma: float) -> np.ndarray:
    t = (np.arange(n, dtype=np.float32) + 0.5) / n
    return np.exp(-0.5 * ((t - center) / sigma) ** 2)


def studio_backdrop(
    width: int,
    height: int,
    palette: list[str] | None = None,
    style: int = 0,
    floor_line: float = 0.86,
    variant: int = 0,
) -> np.ndarray:
    """An ``height x width x 3 uint8`` backdrop in the palette's colors.

    ``style`` picks sweep (wall curving softly into the floor), two-tone (wall and floor meeting
    at a blurred horizon) or glow (radial light on a single color); ``variant`` rotates which
    palette colors are wall and floor, so scenes of one product differ.
    """
    # Everything is smooth: draw at <= 512 px, upscale, then dither at full size.
    scale = min(1.0, 512 / max(width, height))
    small_w, small_h = max(2, round(width * scale)), max(2, round(height * scale))
    colors = [hex_to_rgb(c) for c in (palette or DEFAULT_PALETTE)]
    wall = colors[variant % len(colors)]
    floor = colors[(variant + 1) % len(colors)] if len(colors) > 1 else wall * 0.86
    kind = STYLES[style % len(STYLES)]
    ys = (np.arange(small_h, dtype=np.float32) + 0.5) / small_h
    if kind == "sweep":
        # Wide, soft transition centred a little above the floor line: a cyclorama curve.
        band = 0.22
        t = _smoothstep((ys - (floor_line - band * 0.7)) / band)
        light_y = _gaussian(small_h, floor_line - 0.35, 0.45)
    elif kind == "two-tone":
        t = _smoothstep((ys - floor_line + 0.02) / 0.04)
        light_y = _gaussian(small_h, 0.4, 0.6)
    else:
        t = np.zeros_like(ys)
        light_y = _gaussian(small_h, floor_line - 0.3, 0.35)
    rows = wall[None, :] * (1 - t[:, None]) + floor[None, :] * t[:, None]  # H x 3
    light_x = _gaussian(small_w, 0.5, 0.45 if kind != "glow" else 0.3)
    # Key light behind the product (+8%) and a gentle vignette towards the corners (-10%).
    light = 0.92 + 0.16 * np.outer(light_y, light_x)
    small = (rows[:, None, :] * light[..., None]).astype(np.float32)
    out = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    out += _dither(height, width)[..., None]  # breaks up 8-bit banding in smooth gradients
    return cv2.convertScaleAbs(out)  # rounds and saturates to uint8 (values are never negative)


def _dither(height: int, width: int, tile: int = 64) -> np.ndarray:
    rng = np.random.default_rng(7)
    pattern = rng.uniform(-0.5, 0.5, (tile, tile)).astype(np.float32)
    reps = (-(-height // tile), -(-width // tile))
    return np.tile(pattern, reps)[:height, :width]
