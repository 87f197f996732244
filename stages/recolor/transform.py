"""The color change itself: an affine map in CIELAB plus a lightness curve, applied with OpenCV.

Model: the material's albedo changes, the light does not. With ``D = L* + 16`` and the
shading-invariant chromaticity ``z = (a* + i b*) / D`` (see :mod:`stages.recolor.material`):

- lightness: ``L*' = L* * L*_target / L*_source`` (every shade keeps its ratio to the material's
  median, which becomes the target's L*), then a soft shoulder above the target so highlights
  compress towards white instead of clipping; one lookup table;
- chroma: ``z' = A z + B``. For a chromatic source ``A = z_t / z_s`` (rotate the hue, scale the
  chroma: washed-out highlights stay washed out, texture keeps its relative variation); for a
  neutral source ``z' = z + (z_t - z_s)`` (a shift, since a grey has no hue to rotate); blended
  between the two near neutral.

Chroma follows ``a*' + i b*' = z' D'`` with ``D' = k D``, ``k = D_target / D_source`` (the light
scaling that moves the median to the target), which is affine in (L*, a*, b*):
``k A (a* + i b*) + k B D``. So the whole change is one ``cv2.transform`` on 8-bit Lab plus one
lookup table for L*; the cost is the two 8-bit Lab conversions OpenCV does for it.
"""

from __future__ import annotations

import cv2
import numpy as np

# Pure black and pure white have no room for shading; the lightness they map to is clamped here
# (CIELAB L*). The benchmark reports their delta-E separately.
L_DARKEST = 10.0
L_LIGHTEST = 97.0
_NEUTRAL_FULL = 0.05  # |z_s| below this: treat the source as neutral (shift chroma)
_CHROMATIC_FULL = 0.2  # |z_s| above this: treat the source as chromatic (rotate/scale chroma)


def srgb_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """sRGB 0-255 -> CIELAB (D65), as OpenCV computes it."""
    px = np.array([[rgb]], np.float32) / 255.0
    lab = cv2.cvtColor(px, cv2.COLOR_RGB2Lab)[0, 0]
    return float(lab[0]), float(lab[1]), float(lab[2])


def reference_lab(rgb: np.ndarray, weight: np.ndarray) -> tuple[float, float, float]:
    """Median (L*, a*, b*) of the material: pixels of ``rgb`` (``HxWx3 uint8``) where ``weight``
    (``HxW uint8``) >= 128, in OpenCV's 8-bit Lab. Subsampled on a grid; the median does not need
    every pixel."""
    step = max(1, int(np.sqrt(weight.size / 40_000)))
    w = weight[::step, ::step]
    px = rgb[::step, ::step][w >= 128]
    if len(px) == 0:
        px = rgb[::step, ::step][w > 0]
    lab = cv2.cvtColor(px[:, None, :], cv2.COLOR_RGB2Lab)[:, 0]
    med = np.median(lab.astype(np.float32), axis=0)
    return float(med[0]) * 100 / 255, float(med[1]) - 128, float(med[2]) - 128


def build_transform(source: tuple[float, float, float], target: tuple[float, float, float]):
    """(3x4 float32 matrix for ``cv2.transform`` on 8-bit Lab, 256-entry uint8 L* LUT) taking the
    material's median Lab ``source`` to ``target``."""
    ls, as_, bs = source
    lt = float(np.clip(target[0], L_DARKEST, L_LIGHTEST))
    ds, dt = ls + 16.0, lt + 16.0
    zs = complex(as_, bs) / ds
    zt = complex(target[1], target[2]) / dt
    k = dt / ds
    t = float(np.clip((abs(zs) - _NEUTRAL_FULL) / (_CHROMATIC_FULL - _NEUTRAL_FULL), 0.0, 1.0))
    gain = t * (zt / zs if zs else 0j) + (1 - t)
    shift = (1 - t) * (zt - zs)
    # a8' = 128 + k Re(gain) (a8-128) - k Im(gain) (b8-128) + k Re(shift) (L8 * 100/255 + 16); b8' likewise.
    ga, gb = k * gain.real, k * gain.imag
    sa, sb = k * shift.real, k * shift.imag
    l_scale = 100.0 / 255.0
    matrix = np.array(
        [
            [1, 0, 0, 0],
            [sa * l_scale, ga, -gb, 128 - 128 * ga + 128 * gb + 16 * sa],
            [sb * l_scale, gb, ga, 128 - 128 * gb - 128 * ga + 16 * sb],
        ],
        np.float32,
    )
    light_in = np.arange(256, dtype=np.float64) * l_scale
    light_out = _shoulder(light_in * (lt / max(ls, 1.0)), lt)
    lut = np.clip(np.round(light_out / l_scale), 0, 255).astype(np.uint8)
    return matrix, lut


def _shoulder(light: np.ndarray, target: float) -> np.ndarray:
    """Identity up to a knee above the target, then an exponential approach to L* 100."""
    knee = target + (100.0 - target) * 0.5
    room = 100.0 - knee
    over = np.maximum(light - knee, 0.0)
    rolled = knee + room * (1 - np.exp(-over / room)) if room > 0 else np.full_like(light, 100.0)
    return np.clip(np.where(light > knee, rolled, light), 0.0, 100.0)


def apply_lab(lab8: np.ndarray, matrix: np.ndarray, light_lut: np.ndarray) -> np.ndarray:
    """Transform OpenCV 8-bit Lab ``HxWx3 uint8`` with a pair from :func:`build_transform`."""
    out = cv2.transform(lab8, matrix)
    cv2.insertChannel(cv2.LUT(cv2.extractChannel(lab8, 0), light_lut), out, 0)
    return out
