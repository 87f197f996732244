"""The color change itself: an affine map in CIELAB plus a lightness curve, in float, dithered to 8 bits.

Model: the material's albedo changes, the light does not. Under diffuse light a surface's luminance
``Y`` is albedo x light, and CIELAB's ``D = L* + 16`` is ``116 Y^(1/3)``; so changing the albedo
multiplies ``D`` of every pixel by one factor ``k``, whatever its shading. The shading-invariant
chromaticity ``z = (a* + i b*) / D`` (see :mod:`stages.recolor.material`) is the material's color:

- lightness: ``D' = k D`` with ``k = D_target / D_source``; a soft toe and shoulder keep the few
  pixels pushed below L* 0 or above 100 from clipping (``k = 1`` is exactly the identity);
- chroma: ``z' = A z + B``. For a chromatic source ``A = z_t / z_s`` (rotate the hue, scale the
  chroma: washed-out highlights stay washed out, texture keeps its relative variation); for a
  neutral source ``z' = z + (z_t - z_s)`` (a shift, since a grey has no hue to rotate); blended
  between the two near neutral.

Chroma follows ``a*' + i b*' = z' D'``, which is affine in (L*, a*, b*): ``k A (a* + i b*) + k B D``.

Two modes use the same map (see :func:`stages.recolor.recolor`):

- ``relative`` (source = the swatch of the color the photo shows, target = the variant's swatch):
  every pixel moves as the swatch moves, so the photographed color stays the photo, and a variant
  is "the photographed product shifted to the target" (:func:`shifted`);
- ``exact-swatch`` (source = the material's measured median): the median lands on the swatch value.

A chroma gain well above 1 (a grey-blue mug made forest green: about 5x) would also amplify every
deviation of the photo's chroma from the material's own (chroma noise, the source's JPEG chroma
blocks, slight blotches of the glaze), which read as color patches after the gain. So deviations
from the material's measured chromaticity ``z_m`` get at most ``DETAIL_GAIN_MAX``:
``z' = h z + (A - h) z_m`` with ``h = A / |A| * min(|A|, DETAIL_GAIN_MAX)``, which still takes
``z_m`` to ``A z_m`` and is still affine (no extra cost).

The map runs on float CIELAB and the result is dithered (triangular noise of one 8-bit step) before
rounding: an 8-bit Lab round trip posterizes smooth shading into bands that JPEG then turns into
blocks.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

# Pure black and pure white have no room for shading; the lightness they map to is clamped here
# (CIELAB L*). The benchmark reports their delta-E separately.
L_DARKEST = 10.0
L_LIGHTEST = 97.0
_NEUTRAL_FULL = 0.05  # |z_s| below this: treat the source as neutral (shift chroma)
_CHROMATIC_FULL = 0.2  # |z_s| above this: treat the source as chromatic (rotate/scale chroma)
_CURVE_STEPS = 1001  # samples of the lightness curve over L* 0-100
DETAIL_GAIN_MAX = 1.5  # chroma detail (noise, source JPEG blocks) is amplified at most this much


def srgb_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """sRGB 0-255 -> CIELAB (D65), as OpenCV computes it."""
    px = np.array([[rgb]], np.float32) / 255.0
    lab = cv2.cvtColor(px, cv2.COLOR_RGB2Lab)[0, 0]
    return float(lab[0]), float(lab[1]), float(lab[2])


def reference_lab(rgb: np.ndarray, weight: np.ndarray) -> tuple[float, float, float]:
    """Median (L*, a*, b*) of the material: pixels of ``rgb`` (``HxWx3 uint8``) where ``weight``
    (``HxW uint8``) >= 128. Subsampled on a grid; the median does not need every pixel."""
    step = max(1, int(np.sqrt(weight.size / 40_000)))
    w = weight[::step, ::step]
    px = rgb[::step, ::step][w >= 128]
    if len(px) == 0:
        px = rgb[::step, ::step][w > 0]
    lab = cv2.cvtColor(px[:, None, :].astype(np.float32) / np.float32(255), cv2.COLOR_RGB2Lab)[:, 0]
    med = np.median(lab, axis=0)
    return float(med[0]), float(med[1]), float(med[2])


class LabTransform:
    """The map taking a material of color ``source`` to ``target`` (CIELAB triples), for any pixel.
    ``measured``: the material's median CIELAB in the photo (the pivot of a damped chroma gain; the
    source when not given). ``identity``: source and target are the same color (nothing changes)."""

    def __init__(self, source: tuple[float, float, float], target: tuple[float, float, float],
                 measured: tuple[float, float, float] | None = None, damp: bool = True):
        ls, as_, bs = source
        lt = float(np.clip(target[0], L_DARKEST, L_LIGHTEST))
        ds, dt = ls + 16.0, lt + 16.0
        zs = complex(as_, bs) / ds
        zt = complex(target[1], target[2]) / dt
        k = dt / ds
        t = float(np.clip((abs(zs) - _NEUTRAL_FULL) / (_CHROMATIC_FULL - _NEUTRAL_FULL), 0.0, 1.0))
        gain = t * (zt / zs if zs else 0j) + (1 - t)
        shift = (1 - t) * (zt - zs)
        if damp and abs(gain) > DETAIL_GAIN_MAX:  # deviations from the measured chromaticity: damped
            lm, am, bm = measured if measured is not None else source
            zm = complex(am, bm) / (lm + 16.0)
            damped = gain / abs(gain) * DETAIL_GAIN_MAX
            gain, shift = damped, shift + (gain - damped) * zm
        self.identity = abs(k - 1) < 1e-6 and abs(gain - 1) < 1e-6 and abs(shift) < 1e-6
        self.k, self.target_l = k, lt
        ga, gb, sa, sb = k * gain.real, k * gain.imag, k * shift.real, k * shift.imag
        # a' = k Re(gain) a - k Im(gain) b + k Re(shift) (L + 16); b' likewise (float Lab, L in 0-100).
        self.matrix = np.array(
            [[1, 0, 0, 0], [sa, ga, -gb, 16 * sa], [sb, gb, ga, 16 * sb]], np.float32
        )
        self.matrix[0] = (k, 0, 0, 16 * k - 16)  # the straight part of the lightness curve
        self.curve_x = np.linspace(0.0, 100.0, _CURVE_STEPS, dtype=np.float32)
        self.curve_y = lightness_curve(self.curve_x.astype(np.float64), k, lt).astype(np.float32)
        bent = np.abs(self.curve_y - (self.curve_x + 16) * k + 16) > 1e-4  # the toe and the shoulder
        self.straight = (float(self.curve_x[bent][self.curve_x[bent] < 50].max(initial=-1.0)),
                         float(self.curve_x[bent][self.curve_x[bent] > 50].min(initial=101.0)))

    def apply_lab(self, lab: np.ndarray) -> np.ndarray:
        """Float CIELAB ``HxWx3`` (L* 0-100) -> transformed float CIELAB of the same shape."""
        out = cv2.transform(lab, self.matrix)
        light = lab[..., 0]
        lo, hi = self.straight
        curved = (light <= lo) | (light >= hi)  # usually few pixels: deep shadows, highlights
        if curved.any():
            out[..., 0][curved] = np.interp(light[curved], self.curve_x, self.curve_y)
        return out

    def apply_rgb(self, rgb: np.ndarray, seed: int = 0) -> np.ndarray:
        """``HxWx3 uint8`` sRGB -> transformed ``HxWx3 uint8``, dithered (deterministic for a ``seed``)."""
        if self.identity:
            return rgb.copy()
        new = cv2.cvtColor(self.apply_lab(rgb_to_lab_float(rgb)), cv2.COLOR_Lab2RGB)
        return dither_to_uint8(new * np.float32(255), seed)


_SRGB = np.arange(256) / 255
_LINEAR = np.where(_SRGB <= 0.04045, _SRGB / 12.92, ((_SRGB + 0.055) / 1.055) ** 2.4).astype(np.float32)
# sRGB (D65) -> XYZ, divided by the white point; then f(X), f(Y), f(Z) -> L*, a*, b*
_XYZ = (np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                  [0.019334, 0.119193, 0.950227]])
        / np.array([[0.950456], [1.0], [1.088754]])).astype(np.float32)
_LAB = np.array([[0, 116, 0, -16], [500, -500, 0, 0], [0, 200, -200, 0]], np.float32)


def rgb_to_lab_float(rgb: np.ndarray) -> np.ndarray:
    """``HxWx3 uint8`` sRGB -> float32 CIELAB (D65), as ``cv2.cvtColor`` on float input computes it
    (within 0.5) at a third of its cost: a lookup table for the sRGB curve and one power."""
    xyz = cv2.transform(cv2.LUT(rgb, _LINEAR), _XYZ)
    f = cv2.pow(xyz, 1 / 3)
    small = xyz < np.float32(0.008856)
    if small.any():
        f[small] = xyz[small] * np.float32(7.787) + np.float32(16 / 116)
    return cv2.transform(f, _LAB)


def lightness_curve(light: np.ndarray, k: float, target: float) -> np.ndarray:
    """L* after scaling ``D = L* + 16`` by ``k``: ``(L* + 16) k - 16``, with a soft toe where that
    falls below 0 and a soft shoulder where it passes 100, each reaching its limit with slope 0 at the
    input's end (L* 0 or 100) and joining the straight line with slope 1 (``k = 1``: identity)."""
    x = (light + 16.0) * k - 16.0
    low, high = 16.0 * k - 16.0, 116.0 * k - 16.0  # where L* 0 and L* 100 land
    out = x.copy()
    if low < 0:  # darker: L* 0 .. -16(1-k) -> a toe from 0 up to t0, then the line
        t0 = min(-2.0 * low, max(target, 1.0))
        u = np.clip((t0 - x) / (t0 - low), 0.0, 1.0)
        m = (t0 - low) / t0
        out = np.where(x < t0, t0 * (1 - u) ** m, out)
    if high > 100:  # lighter: the line up to t1, then a shoulder reaching 100 at L* 100
        t1 = max(100.0 - 2.0 * (high - 100.0), min(target, 99.0))
        u = np.clip((high - x) / (high - t1), 0.0, 1.0)
        m = (high - t1) / (100.0 - t1)
        out = np.where(x > t1, 100.0 - (100.0 - t1) * u**m, out)
    return np.clip(out, 0.0, 100.0)


def dither_to_uint8(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """Float 0-255 ``HxWx3`` -> uint8 with triangular dither of +-1 step: smooth gradients stay smooth
    instead of breaking into flat bands (which JPEG then codes as visible blocks). The noise is a
    fixed tile (:func:`_dither_tile`) started at a ``seed``-dependent row: the same image always gives
    the same file."""
    tile = _dither_tile()
    h, w = values.shape[:2]
    t = tile.shape[0]
    start = (seed * 37) % t
    reps = ((h + start) // t + 1, w // t + 1, 1)
    noise = np.tile(tile, reps)[start : start + h, :w]
    out = cv2.add(values, noise, dtype=cv2.CV_32F)
    return np.clip(out, 0, 255).astype(np.uint8)


@cache
def _dither_tile(size: int = 256) -> np.ndarray:
    """``size x size x 3`` float32 triangular noise in (-1, 1), plus the 0.5 of rounding."""
    rng = np.random.default_rng(0)
    noise = rng.random((size, size, 3), np.float32) - rng.random((size, size, 3), np.float32)
    return noise + np.float32(0.5)


def shifted(lab: np.ndarray, base: tuple[float, float, float],
            target: tuple[float, float, float]) -> np.ndarray:
    """"The photographed product shifted to the target": CIELAB ``...x3`` of a product photographed in
    the color ``base`` as it would look in ``target``, by the model above, without toe, shoulder or
    rounding, and with the full chroma gain on every pixel (the benchmark's and the manifest's reference)."""
    tr = LabTransform(base, target, damp=False)
    lab = np.asarray(lab, np.float64)
    out = lab @ tr.matrix[:, :3].T.astype(np.float64) + tr.matrix[:, 3].astype(np.float64)
    out[..., 0] = (lab[..., 0] + 16.0) * tr.k - 16.0
    return out
