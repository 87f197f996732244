"""Compose a packshot from a cutout and encode it within the preset's limits.

Every encoded file carries an sRGB ICC profile (the loader converted the source to sRGB, so the
pixels already are sRGB: the profile says so to browsers and marketplaces), has no alpha channel,
and carries provenance: generated images get IPTC DigitalSourceType ``trainedAlgorithmicMedia`` in
XMP, cutout packshots get no such claim.
"""

from __future__ import annotations

import io
from functools import cache

import cv2
import numpy as np
from PIL import Image, ImageCms, PngImagePlugin

from packshot.imaging import apply_shadow, composite, contact_shadow, place_product
from packshot.schemas.presets import Preset
from packshot.schemas.provenance import provenance_xmp
from packshot.types import Cutout, Rendered
from stages.export.blocking import blockiness
from stages.export.validate import RINGING_TOLERANCE, Violation, check

GHOST_ALPHA = 4  # on pure-white presets, matte values below this are dropped
_SUBSAMPLING = {"auto": 0, "4:4:4": 0, "4:2:2": 1, "4:2:0": 2}  # auto: 4:4:4 unless only 4:2:0 fits


def compose_packshot(cutout: Cutout, preset: Preset) -> Rendered:
    """The product centred on the preset's background (``Rendered``, not generated).

    Presets that want a pure white background get no contact shadow: Amazon requires 255 on every
    background pixel, and a shadow is background.
    """
    placement = place_product(cutout, (preset.width, preset.height), preset.fill_fraction)
    background = np.empty((preset.height, preset.width, 3), np.uint8)
    background[:] = preset.background
    if not preset.pure_white_background:
        background = apply_shadow(background, contact_shadow(placement))
    rgb, alpha = placement.layer()
    if preset.pure_white_background:
        # Resampling leaves ripples of alpha 1-3 far from the edge: invisible, but they make
        # 252-254 "background" pixels that a strict white check (or Amazon's) flags. Drop them.
        alpha = np.where(alpha < GHOST_ALPHA, 0, alpha).astype(np.uint8)
    out = composite(background, rgb, alpha)
    return Rendered(out, alpha, kind="packshot", preset=preset.name, generated=False, placement=placement)


ICC_DATE = bytes.fromhex("07e8 0001 0001 0000 0000 0000")  # 2024-01-01 00:00:00 in the ICC header


@cache
def srgb_icc() -> bytes:
    """LittleCMS's sRGB profile with a fixed creation date (bytes 24-35 of the header), so the same
    image gives the same file in every process and every run (the profile ID is left unset)."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return profile[:24] + ICC_DATE + profile[36:]


def encode(rendered: Rendered, preset: Preset) -> bytes:
    """Encode ``rendered.rgb`` as the preset's format (see :func:`encode_checked`)."""
    return encode_checked(rendered, preset)[0]


def encode_checked(rendered: Rendered, preset: Preset) -> tuple[bytes, list[Violation]]:
    """Encode ``rendered.rgb`` as the preset's format with an sRGB profile and provenance XMP, and
    validate the file (:func:`~stages.export.validate.check`, given the pixels and the matte).

    JPEG/WebP start at ``preset.quality``. For pure-white presets the quality is raised while JPEG
    ringing next to a strongly colored edge breaks the white-background rule (within ``max_bytes``):
    better a larger file than one the marketplace rejects. The needed quality is predicted from how dark
    the ringing is (its amplitude follows the quantiser scale), with one correction. A file over
    ``max_bytes`` is re-encoded at a quality predicted from a sample of its rows at a few qualities,
    with one correction; when even ``min_quality`` does not fit, that file is returned and the validator
    reports ``max-bytes``.

    Smooth shading and flat colors must not show JPEG's 8 x 8 blocks: chroma is kept whole (4:4:4)
    unless the preset names a subsampling or only 4:2:0 fits ``max_bytes`` (``auto``), and the
    quality is raised (halfway to 100, up to 3 times, within ``max_bytes``) while the product's
    blockiness in the file (:func:`~stages.export.blocking.blockiness`) exceeds its pixels' own by
    more than ``BLOCKING_MARGIN``.
    """
    img = Image.fromarray(np.ascontiguousarray(rendered.rgb), "RGB")
    xmp = provenance_xmp() if rendered.generated else None

    def checked(data: bytes) -> tuple[bytes, list[Violation]]:
        return data, check(data, preset, rendered.product_alpha, rendered.generated, rgb=rendered.rgb)

    if preset.format == "PNG":
        return checked(_save(img, "PNG", xmp, optimize=True))
    extra = {"subsampling": _SUBSAMPLING[preset.subsampling]} if preset.format == "JPEG" else {"method": 4}

    def at(quality: int) -> bytes:
        return _save(img, preset.format, xmp, quality=quality, **extra)

    quality = preset.quality
    data, violations = checked(at(quality))
    if preset.pure_white_background:
        data, violations, quality = _raise_quality_until_white(data, violations, preset, at, checked)
    if preset.format == "JPEG":
        data, violations = _raise_quality_until_smooth(data, violations, quality, rendered, preset, at,
                                                       checked)
    if preset.max_bytes is not None and len(data) > preset.max_bytes:
        data, violations = checked(_fit_bytes(data, img, preset, at, extra))
        if len(data) > preset.max_bytes and preset.subsampling == "auto":  # only 4:2:0 may fit
            extra["subsampling"] = _SUBSAMPLING["4:2:0"]
            data, violations = checked(_fit_bytes(at(preset.quality), img, preset, at, extra))
    return data, violations


BLOCKING_MARGIN = 0.1  # the file may be this much blockier than the pixels it encodes (luma ratio)
_SMOOTH_TRIES, _SMOOTH_STEP = 3, 2


def _raise_quality_until_smooth(data, violations, quality: int, rendered: Rendered, preset: Preset, at,
                                checked):
    """The file at the lowest quality, from ``quality`` halfway to 100 (at least ``_SMOOTH_STEP``; at
    most ``_SMOOTH_TRIES`` steps), at which the product shows no more blocking than its pixels plus
    ``BLOCKING_MARGIN``, within ``max_bytes``. The quality is chosen on a sample of the rows (stripes of
    whole 16-row MCUs: JPEG codes each block on its own, so their blocking is the image's); then the
    whole image is encoded once more at most."""
    region = cv2.erode((rendered.product_alpha >= 250).view(np.uint8), np.ones((9, 9), np.uint8)) > 0
    rows = _sample_rows(region)
    if rows is None:
        return data, violations
    sample = np.ascontiguousarray(rendered.rgb[rows])
    sample_region = region[rows]
    sample_region[::_STRIPE] = False  # no pairs across the seams between stripes
    if not sample_region.any():
        return data, violations
    allowed = blockiness(sample, sample_region) + BLOCKING_MARGIN
    img = Image.fromarray(sample, "RGB")
    chosen = quality
    for _ in range(_SMOOTH_TRIES + 1):
        coded = _save(img, "JPEG", None, quality=chosen, subsampling=_SUBSAMPLING[preset.subsampling])
        if chosen >= 100 or blockiness(_decode(coded), sample_region) <= allowed:
            break
        chosen = min(100, chosen + max(_SMOOTH_STEP, (100 - chosen) // 2))  # halfway to 100
    if chosen == quality:
        return data, violations
    candidate = at(chosen)
    if preset.max_bytes is not None and len(candidate) > preset.max_bytes:
        return data, violations
    return checked(candidate)


_STRIPE, _EVERY = 16, 4  # the blocking sample: 16 rows (one 4:2:0 MCU row) of every 64


def _sample_rows(region: np.ndarray) -> np.ndarray | None:
    """Row indices of the stripes that cross ``region``, or None when it is empty."""
    hit = np.flatnonzero(region.any(axis=1))
    if hit.size == 0:
        return None
    top, bottom = hit[0] - hit[0] % _STRIPE, hit[-1] + 1
    starts = range(top, max(top + 1, bottom - _STRIPE + 1), _STRIPE * _EVERY)
    rows = np.concatenate([np.arange(y, min(y + _STRIPE, region.shape[0])) for y in starts])
    return rows


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _quant_scale(quality: int) -> float:
    """libjpeg's quantiser scale in percent for a quality (``jpeg_quality_scaling``)."""
    quality = min(100, max(1, quality))
    return 5000 / quality if quality < 50 else 200 - 2 * quality


def _quality_for_scale(scale: float) -> int:
    return min(100, max(1, int(np.ceil(5000 / scale if scale > 100 else (200 - scale) / 2))))


def _raise_quality_until_white(data, violations, preset: Preset, at, checked):
    """At most two re-encodes: a predicted quality, then one correction from the new ringing depth.
    Returns the file, its violations and its quality."""
    quality = kept = preset.quality
    for _ in range(2):
        ringing = [v for v in violations if v.rule == "white-background" and v.darkest is not None]
        if not ringing or quality >= 100:
            break
        depth = 255 - min(v.darkest for v in ringing)  # levels below white; the rule allows RINGING_TOLERANCE
        scale = _quant_scale(quality) * RINGING_TOLERANCE / max(depth, RINGING_TOLERANCE + 1) * 0.8
        quality = max(quality + 2, _quality_for_scale(scale))
        candidate = at(min(100, quality))
        if preset.max_bytes is not None and len(candidate) > preset.max_bytes:
            break
        data, violations = checked(candidate)
        kept = min(100, quality)
    return data, violations, kept


def _fit_bytes(data: bytes, img: Image.Image, preset: Preset, at, extra) -> bytes:
    """The file at a quality predicted to fit ``max_bytes`` (one correction); ``data`` is at ``quality``."""
    limit, lo, hi = preset.max_bytes, preset.min_quality, preset.quality
    sample = _row_sample(img)
    qualities = sorted({lo, (lo + hi) // 2, (lo + 3 * hi) // 4, hi})
    sizes = {q: len(_save(sample, preset.format, None, quality=q, **extra)) for q in qualities}
    ratio = len(data) / sizes[hi]  # the full file against its sample, at the same quality
    quality = _predict(qualities, sizes, ratio, limit * 0.97)
    for _ in range(2):
        candidate = at(quality)
        if len(candidate) <= limit or quality <= lo:
            return candidate
        ratio *= len(candidate) / (ratio * _interp_size(qualities, sizes, quality))
        quality = min(quality - 1, _predict(qualities, sizes, ratio, limit * 0.97))
    return at(lo)


def _row_sample(img: Image.Image, stripe: int = 16, every: int = 8) -> Image.Image:
    """Every ``every``-th stripe of ``stripe`` rows: a small image with the same detail per pixel."""
    rows = np.asarray(img)
    if rows.shape[0] < stripe * every * 2:
        return img
    picked = [rows[y : y + stripe] for y in range(0, rows.shape[0] - stripe + 1, stripe * every)]
    return Image.fromarray(np.ascontiguousarray(np.concatenate(picked)), "RGB")


def _interp_size(qualities: list[int], sizes: dict[int, int], quality: int) -> float:
    return float(np.exp(np.interp(quality, qualities, [np.log(sizes[q]) for q in qualities])))


def _predict(qualities: list[int], sizes: dict[int, int], ratio: float, limit: float) -> int:
    """The highest quality whose predicted size (sample size x ``ratio``) is within ``limit``."""
    for quality in range(qualities[-1], qualities[0] - 1, -1):
        if ratio * _interp_size(qualities, sizes, quality) <= limit:
            return quality
    return qualities[0]


def _save(img: Image.Image, fmt: str, xmp: bytes | None, **kw) -> bytes:
    buf = io.BytesIO()
    kw["icc_profile"] = srgb_icc()
    if xmp is not None:
        if fmt == "PNG":  # Pillow's PNG writer has no xmp= argument: the standard iTXt chunk
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
            kw["pnginfo"] = info
        else:
            kw["xmp"] = xmp
    img.save(buf, fmt, **kw)
    return buf.getvalue()
