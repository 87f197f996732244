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

:func:`material_doubts` says when this cannot be trusted (a neutral main material, or parts whose
colors blend), so the variant is flagged for review rather than quietly repainting a sole or a label.

Speed: the model is fitted and evaluated on a copy at most ``WORK_SIDE`` px long (Gaussian pyramid),
the mask is upsampled, and only the pixels on its boundaries are evaluated again at full resolution,
so label and matte edges stay pixel-exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIDE = 512  # the model is fitted and evaluated at most at this long side, then upsampled
_BIN = 0.025  # chromaticity histogram bin
_RANGE = 3.0  # |u|, |v| beyond this are clipped (sRGB blue reaches about 2.3)
NEUTRAL_CHROMA = 0.1  # |z| below this: a neutral material (about 6 a*/b* units at L* 50)
# Relative chroma (of the mode's) a bright pixel may fall to and still be the material. Lower would
# take in the washed-out center of highlights, but the lightness map compresses highlights (see
# transform.lightness_curve), which costs shading fidelity there; see docs/benchmarks.md.
HIGHLIGHT_FLOOR = 0.3


def chromaticity(lab8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV 8-bit Lab ``HxWx3`` (or ``Nx1x3``) -> (L* float32, complex64 shading-invariant
    chromaticity), each of the leading shape."""
    lab = lab8.astype(np.float32)
    light = lab[..., 0] * np.float32(100.0 / 255.0)
    z = ((lab[..., 1] - 128.0) + 1j * (lab[..., 2] - 128.0)) / (light + 16.0)
    return light, z.astype(np.complex64)


@dataclass(frozen=True)
class MaterialModel:
    """The main material's color statistics; :meth:`weight` scores any pixels against them."""

    z0: complex  # chromaticity mode
    tol: float  # chromaticity tolerance (robust spread of the mode)
    l_ref: float = 50.0  # chromatic: median L* of the material
    band: tuple[float, float] = (0.0, 101.0)  # neutral: L* range of the main lightness mode

    @property
    def neutral(self) -> bool:
        return abs(self.z0) < NEUTRAL_CHROMA

    def weight(self, light: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Membership in [0, 1] (float32, shape of ``light``) of pixels with L* ``light`` and
        chromaticity ``z`` (from :func:`chromaticity`)."""
        tol = self.tol
        if self.neutral:
            weight = _ramp(np.abs(z - np.complex64(self.z0)), tol, 1.6 * tol)
            lo, hi = self.band
            weight *= _ramp(lo - light, 0.0, 6.0)
            weight *= _ramp(light - hi, 0.0, 6.0)
            return weight.astype(np.float32, copy=False)
        # Chromatic: measure along the material's hue (p: chroma relative to the mode) and across it.
        chroma0 = abs(self.z0)
        rel = z * np.complex64(np.conj(self.z0) / chroma0)  # the mode on the positive real axis
        p = rel.real / np.float32(chroma0)
        weight = _ramp(np.abs(rel.imag), tol, 1.6 * tol)
        p_max = 1 + 1.6 * tol / chroma0
        weight *= _ramp(p, p_max, p_max + 0.3)  # far more saturated than the mode: another material
        # Less chroma is fine only when the pixel is brighter (a highlight washing the color out); a
        # pixel with under ~30% of the chroma left is a white/grey part, not the material.
        floor = max(0.0, 1 - 1.6 * tol / chroma0)
        if floor > HIGHLIGHT_FLOOR:
            brighter = np.clip((light - np.float32(self.l_ref)) / np.float32(15.0), 0.0, 1.0)
            floor = floor + (HIGHLIGHT_FLOOR - floor) * brighter
        weight *= _ramp(floor - p, 0.0, 0.1)
        return weight.astype(np.float32, copy=False)


def fit_material(light: np.ndarray, z: np.ndarray) -> MaterialModel:
    """Fit :class:`MaterialModel` to the product's solid pixels (1-D ``light``, ``z``)."""
    if z.size > 200_000:  # statistics need no more than this
        step = z.size // 200_000 + 1
        light, z = light[::step], z[::step]
    z0 = _chroma_mode(z)
    near = np.abs(z - z0)
    core = near < 0.15
    sigma = 1.4826 * float(np.median(near[core])) if core.any() else 0.02
    tol = float(np.clip(3.5 * sigma, 0.06, 0.25))
    model = MaterialModel(z0, tol)
    if model.neutral:
        return MaterialModel(z0, tol, band=_lightness_band(light[model.weight(light, z) > 0.5]))
    # l_ref: median lightness of the pixels of the material's hue and at most its chroma.
    rel = z * np.complex64(np.conj(z0) / abs(z0))
    p_max = 1 + 1.6 * tol / abs(z0)
    hue_match = _ramp(np.abs(rel.imag), tol, 1.6 * tol) * _ramp(rel.real / abs(z0), p_max, p_max + 0.3) > 0.5
    l_ref = float(np.median(light[hue_match])) if hue_match.any() else 50.0
    return MaterialModel(z0, tol, l_ref=l_ref)


def find_main_material(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Soft mask ``HxW uint8`` (255 = main material) inside ``alpha`` (``HxW uint8``) of ``rgb``
    (``HxWx3 uint8``). Zero outside the matte. Empty when the matte has no solid pixels."""
    out = np.zeros(alpha.shape, np.uint8)
    x0, y0, bw, bh = cv2.boundingRect(alpha)
    if bw == 0 or bh == 0:
        return out
    box = (slice(y0, y0 + bh), slice(x0, x0 + bw))
    crop, crop_alpha = rgb[box], alpha[box]  # views: OpenCV reads strided rows without a copy
    small, small_alpha = crop, crop_alpha
    while max(small.shape[:2]) > WORK_SIDE:  # pyrDown: anti-aliased, and far faster than INTER_AREA
        small, small_alpha = cv2.pyrDown(small), cv2.pyrDown(small_alpha)
    light, z = chromaticity(cv2.cvtColor(small, cv2.COLOR_RGB2Lab))
    solid = small_alpha >= 250
    if np.count_nonzero(solid) < 16:
        solid = small_alpha >= 128
    if not solid.any():
        return out
    model = fit_material(light[solid], z[solid])
    mask = _to_uint8(model.weight(light, z))
    # Texture outliers make pinholes and stray specks; neither is a material boundary. Only tiny
    # components flip (a morphological close would also round off the corners of labels).
    specks = max(4, int(small_alpha.size * 2e-5))
    mask[_small_components(mask >= 128, specks)] = 0
    mask[_small_components((mask < 128) & solid, specks)] = 255
    if small is not crop:
        mask = _upsample_refined(mask, crop, model)
    out[box] = cv2.multiply(mask, crop_alpha, scale=1 / 255)
    return out


def _upsample_refined(mask: np.ndarray, crop: np.ndarray, model: MaterialModel) -> np.ndarray:
    """``mask`` upsampled to ``crop``'s size; within two work pixels of where it crosses 128 (edges of
    labels, prints and the matte) the pixels are scored again at full resolution, so a label's edge
    stays out of the mask however the pyramid blurred it."""
    h, w = crop.shape[:2]
    inside = cv2.compare(mask, 128, cv2.CMP_GE)
    near = np.ones((5, 5), np.uint8)
    crossing = cv2.compare(cv2.dilate(inside, near), cv2.erode(inside, near), cv2.CMP_NE)
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    edge = cv2.findNonZero(cv2.resize(crossing, (w, h), interpolation=cv2.INTER_NEAREST))
    if edge is None:
        return mask
    xy = edge.reshape(-1, 2)
    flat = xy[:, 1] * w + xy[:, 0]
    lab = cv2.cvtColor(crop[xy[:, 1], xy[:, 0]][:, None, :], cv2.COLOR_RGB2Lab)
    light, z = chromaticity(lab[:, 0])
    mask.reshape(-1)[flat] = _to_uint8(model.weight(light, z))
    return mask


def _to_uint8(weight: np.ndarray) -> np.ndarray:
    return (weight * 255 + 0.5).astype(np.uint8)


def _small_components(binary: np.ndarray, max_area: int) -> np.ndarray:
    """Pixels of ``binary`` (``HxW bool``) in 8-connected components of at most ``max_area`` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.view(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] <= max_area
    small[0] = False  # label 0 is the complement of ``binary``
    if not small.any():
        return np.zeros_like(binary)
    return small[labels] & binary


def _chroma_mode(zs: np.ndarray) -> complex:
    """Densest point of the chromaticity histogram (smoothed, so a flat label cannot outvote a
    large textured material), refined by the mean of the pixels around it."""
    nbins = int(2 * _RANGE / _BIN)
    iu = np.clip(((zs.real + _RANGE) / _BIN).astype(np.int32), 0, nbins - 1)
    iv = np.clip(((zs.imag + _RANGE) / _BIN).astype(np.int32), 0, nbins - 1)
    hist = np.bincount(iu * nbins + iv, minlength=nbins * nbins).reshape(nbins, nbins)
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
    return np.clip((np.float32(end) - x) / np.float32(end - start), 0.0, 1.0)


AMBIGUOUS_SHARE = 0.03  # share of solid product pixels half in, half out of the material: not clean


def material_doubts(rgb: np.ndarray, alpha: np.ndarray, weight: np.ndarray) -> list[str]:
    """Why the automatic material mask ``weight`` (from :func:`find_main_material`) may repaint
    parts of another material: empty when the product's colors separate cleanly.

    - A neutral main material (white, grey, black) is told from other neutral parts (a white sole
      under a white upper, grey labels, steel) only by a lightness band, which parts of the same
      lightness fall into.
    - Many solid pixels with a middling weight: the colors of the parts blend into each other."""
    solid = alpha >= 250
    n = int(np.count_nonzero(solid))
    if n == 0:
        return []
    w = weight[solid]
    doubts = []
    inside = w >= 128
    if inside.any():
        step = max(1, int(np.count_nonzero(inside)) // 50_000)
        px = rgb[solid][inside][::step]
        lab = cv2.cvtColor(px[:, None, :], cv2.COLOR_RGB2Lab)
        light, z = chromaticity(lab[:, 0])
        if abs(complex(np.median(z.real), np.median(z.imag))) < NEUTRAL_CHROMA:
            doubts.append("the main material is neutral (white, grey or black): parts of another "
                          "material in a similar neutral (a sole, labels, metal) cannot be told from it by "
                          "color and may be repainted; check the variant or give a recolor_mask")
    ambiguous = float(np.count_nonzero((w > 38) & (w < 217))) / n
    if ambiguous > AMBIGUOUS_SHARE:
        doubts.append(f"{ambiguous:.0%} of the product is neither clearly the main material nor another part "
                      "(their colors blend); check the variant or give a recolor_mask")
    return doubts
