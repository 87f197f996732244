"""Find the product's main material inside its matte, automatically.

Color is described by shading-invariant chromaticity ``z = (a*, b*) / (L* + 16)``: under diffuse
shading CIELAB's a*, b* and L* + 16 all scale with the cube root of the light, so their ratio stays
put while the lightness changes. The main material is the densest chromaticity mode among the
product's solid pixels; a pixel belongs to it when its chromaticity is close to that mode.

- Chromatic materials: hue may not stray; chroma may drop towards white in highlights, but pixels
  with almost no chroma left (white labels, metal, bright print) are not the material.
- Neutral materials (grey, black, white fabric) cannot be told from neutral labels by chroma, so
  they also need a lightness band: the main lightness mode, widened while the histogram stays
  populated (shading is continuous; a black print on a grey shirt leaves a gap).
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 512  # statistics and membership run at most at this long side, then upsample
_BIN = 0.025  # chromaticity histogram bin
_RANGE = 3.0  # |u|, |v| beyond this are clipped (sRGB blue reaches about 2.3)
NEUTRAL_CHROMA = 0.1  # |z| below this: a neutral material (about 6 a*/b* units at L* 50)


def chromaticity(lab8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV 8-bit Lab ``HxWx3`` -> (L* float32 HxW, complex64 HxW shading-invariant chromaticity)."""
    lab = lab8.astype(np.float32)
    light = lab[..., 0] * (100.0 / 255.0)
    z = ((lab[..., 1] - 128.0) + 1j * (lab[..., 2] - 128.0)) / (light + 16.0)
    return light, z.astype(np.complex64)


def find_main_material(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Soft mask ``HxW uint8`` (255 = main material) inside ``alpha`` (``HxW uint8``) of ``rgb``
    (``HxWx3 uint8``). Zero outside the matte. Empty when the matte has no solid pixels."""
    out = np.zeros(alpha.shape, np.uint8)
    x0, y0, bw, bh = cv2.boundingRect(alpha)
    if bw == 0 or bh == 0:
        return out
    y1, x1 = y0 + bh, x0 + bw
    crop, crop_alpha = rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
    h, w = crop_alpha.shape
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        small_alpha = cv2.resize(crop_alpha, size, interpolation=cv2.INTER_AREA)
    else:
        small, small_alpha = crop, crop_alpha
    light, z = chromaticity(cv2.cvtColor(small, cv2.COLOR_RGB2Lab))
    solid = small_alpha >= 250
    if solid.sum() < 16:
        solid = small_alpha >= 128
    if not solid.any():
        return out
    weight = _membership(light, z, solid)
    mask = (weight * 255).astype(np.uint8)
    # Texture outliers make pinholes and stray specks; neither is a material boundary. Only tiny
    # components flip (a morphological close would also round off the corners of labels).
    specks = max(4, int(small_alpha.size * 2e-5))
    mask[_small_components(mask >= 128, specks)] = 0
    mask[_small_components((mask < 128) & solid, specks)] = 255
    if scale < 1.0:
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    out[y0:y1, x0:x1] = cv2.multiply(mask, crop_alpha, scale=1 / 255)
    return out


def _small_components(binary: np.ndarray, max_area: int) -> np.ndarray:
    """Pixels of ``binary`` (``HxW bool``) in 8-connected components of at most ``max_area`` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] <= max_area
    small[0] = False  # label 0 is the complement of ``binary``
    return small[labels] & binary


def _membership(light: np.ndarray, z: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """Per-pixel membership in [0, 1] of the main material (float32, same shape as ``light``)."""
    zs = z[solid]
    if zs.size > 200_000:  # statistics need no more than this
        zs = zs[:: zs.size // 200_000 + 1]
    z0 = _chroma_mode(zs)
    near = np.abs(zs - z0)
    core = near < 0.15
    sigma = 1.4826 * float(np.median(near[core])) if core.any() else 0.02
    tol = float(np.clip(3.5 * sigma, 0.06, 0.25))
    if abs(z0) < NEUTRAL_CHROMA:
        weight = _ramp(np.abs(z - z0), tol, 1.6 * tol)
        members = solid & (weight > 0.5)
        lo, hi = _lightness_band(light[members])
        weight *= _ramp(lo - light, 0.0, 6.0) * _ramp(light - hi, 0.0, 6.0)
        return weight.astype(np.float32)
    # Chromatic: measure along the material's hue (p: chroma relative to the mode) and across it.
    rel = z * (np.conj(z0) / abs(z0))  # rotate so the mode lies on the positive real axis
    p = rel.real / abs(z0)
    across = np.abs(rel.imag)
    weight = _ramp(across, tol, 1.6 * tol)
    p_max = 1 + 1.6 * tol / abs(z0)
    weight *= _ramp(p, p_max, p_max + 0.3)  # far more saturated than the mode: another material
    # Less chroma is fine only when the pixel is brighter (a highlight washing the color out);
    # a pixel with under ~30% of the chroma left is a white/grey part, not the material.
    floor_normal = max(0.0, 1 - 1.6 * tol / abs(z0))
    l_ref = float(np.median(light[solid & (weight > 0.5)])) if (solid & (weight > 0.5)).any() else 50.0
    brighter = np.clip((light - l_ref) / 15.0, 0.0, 1.0)
    floor = floor_normal + (0.3 - floor_normal) * brighter if floor_normal > 0.3 else np.float32(floor_normal)
    weight *= _ramp(floor - p, 0.0, 0.1)
    return weight.astype(np.float32)


def _chroma_mode(zs: np.ndarray) -> complex:
    """Densest point of the chromaticity histogram (smoothed, so a flat label cannot outvote a
    large textured material), refined by the mean of the pixels around it."""
    nbins = int(2 * _RANGE / _BIN)
    u = np.clip(zs.real, -_RANGE, _RANGE - 1e-6)
    v = np.clip(zs.imag, -_RANGE, _RANGE - 1e-6)
    hist, _, _ = np.histogram2d(u, v, bins=nbins, range=[[-_RANGE, _RANGE], [-_RANGE, _RANGE]])
    hist = cv2.GaussianBlur(hist.astype(np.float32), (0, 0), 2.0)
    iu, iv = np.unravel_index(int(np.argmax(hist)), hist.shape)
    mode = complex(-_RANGE + (iu + 0.5) * _BIN, -_RANGE + (iv + 0.5) * _BIN)
    around = zs[np.abs(zs - mode) < 0.08]
    return complex(np.mean(around)) if around.size else mode


def _lightness_band(light: np.ndarray) -> tuple[float, float]:
    """Lightness range of the main mode: from the histogram peak outwards while it stays above 3%."""
    if light.size == 0:
        return 0.0, 100.0
    hist, _ = np.histogram(light, bins=101, range=(0, 101))
    hist = np.convolve(hist.astype(np.float32), np.ones(5, np.float32) / 5, mode="same")
    peak = int(np.argmax(hist))
    populated = hist >= 0.03 * hist[peak]
    lo = peak
    while lo > 0 and populated[lo - 1]:
        lo -= 1
    hi = peak
    while hi < 100 and populated[hi + 1]:
        hi += 1
    return float(lo), float(hi + 1)


def _ramp(x, start: float, end: float):
    """1 where ``x <= start``, 0 where ``x >= end``, linear between."""
    return np.clip((end - x) / (end - start), 0.0, 1.0)
