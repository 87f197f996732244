"""Check a finished file against its preset; each broken rule is one :class:`Violation`.

Rules (names as reported):

- ``readable``: the bytes decode as an image.
- ``format``: the preset's format. ``color-mode``: RGB or greyscale, no CMYK, no alpha channel
  (every preset has an opaque background; a JPEG cannot carry alpha at all).
- ``color-profile``: an embedded ICC profile that describes sRGB; an RGB or greyscale file without
  one is a warning (``Violation.warning``): it is assumed sRGB, as marketplaces do.
- ``min-size``/``max-size`` (long side), ``min-short-side``, ``megapixels``, ``aspect`` (when the
  preset checks it), ``max-bytes``.
- ``white-background`` (pure-white presets): every pixel outside the product region is exactly
  (255, 255, 255). The product region is the matte's non-zero pixels (anti-aliased edge included).
  For JPEG it is widened to whole MCU blocks that the product touches (plus one pixel when chroma
  is subsampled, for the decoder's chroma interpolation): JPEG codes each block on its own, so a
  block with no product pixel decodes to exactly 255, while ringing around the product edge stays
  inside the product's own blocks. Inside those blocks, background pixels may differ from 255 by at
  most ``RINGING_TOLERANCE`` levels; anything more (a shadow, a grey halo) is still reported.
- ``fill``: the product's bounding box spans at least ``min_fill_fraction`` of the frame along its
  longer relative side (Amazon: 85%).
- ``provenance``: generated images carry IPTC DigitalSourceType ``trainedAlgorithmicMedia`` in XMP,
  non-generated ones do not; presets that forbid generated images reject files that carry it.

Without a matte (checking a file from disk), the product region is estimated: pixels that differ
from white by more than ``ESTIMATE_THRESHOLD`` levels, grown by ``EDGE_BAND`` of the long side
(12 px at 2000 px, at least 4 px) for the soft edge, with enclosed holes filled. A backdrop or
shadow darker than the threshold is taken for product, so the check is weaker than with the
pipeline's matte; it still catches off-white backgrounds and faint shadows or gradients away
from the product, and a photo whose edge is mostly not white (more than ``EDGE_NOT_WHITE_MAX`` of
the border pixels: a product on a table or a backdrop) fails ``white-background`` too.
"""

from __future__ import annotations

import io
import re
import warnings

import cv2
import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError
from pydantic import BaseModel

from packshot.schemas.presets import Preset
from packshot.schemas.provenance import AI_SOURCE_TYPE

RINGING_TOLERANCE = 12  # levels below 255 allowed for JPEG ringing inside blocks the product touches
ESTIMATE_THRESHOLD = 24  # max channel difference from white above which a pixel counts as product
EDGE_BAND = 0.006  # without a matte, the product's soft edge: this fraction of the long side (12 px at 2000)
_SRGB_RED_XYZ = (0.4361, 0.2225, 0.0139)  # D50-adapted sRGB red colorant, as in ICC sRGB profiles
_BOMB = (Image.DecompressionBombWarning, Image.DecompressionBombError)
_SOURCE_TYPE = re.compile(r"DigitalSourceType[^>]*?(?:=\s*[\"']|>)\s*([^\"'<\s]+)")

# ValueError: a PNG text or ICC chunk that decompresses beyond Pillow's limit; SyntaxError, EOFError:
# broken headers and truncated chunks
_UNREADABLE = (ValueError, SyntaxError, EOFError)


class Violation(BaseModel):
    rule: str
    message: str
    warning: bool = False  # what we assume rather than a broken rule (an untagged file is sRGB)
    darkest: int | None = None  # white-background: the darkest offending level (the encoder aims from it)

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


def check(
    data: bytes,
    preset: Preset,
    product_alpha: np.ndarray | None = None,
    generated: bool | None = None,
    rgb: np.ndarray | None = None,
) -> list[Violation]:
    """Violations of ``preset``'s rules by the encoded file ``data`` (empty list: it passes).

    ``product_alpha``: ``HxW uint8`` product matte in the file's pixel coordinates, or ``None`` to
    estimate the product region. ``generated``: whether a generative model made any pixel; ``None``
    when unknown (the provenance rule then only checks what the preset forbids). ``rgb``: the
    ``HxWx3 uint8`` pixels that were encoded into ``data``, when the caller has them (the pipeline):
    format, mode, profile, size and provenance then come from the file's header alone, and the pixels
    are decoded only where a rule needs the decoded ones (pure white after lossy compression); without
    it the whole file is decoded (checking a file from disk).
    """
    out: list[Violation] = []

    def fail(rule: str, message: str, warning: bool = False, darkest: int | None = None) -> None:
        out.append(Violation(rule=rule, message=message, warning=warning, darkest=darkest))

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if rgb is None:
                img.load()
    except (UnidentifiedImageError, OSError, *_UNREADABLE, *_BOMB) as exc:
        return [Violation(rule="readable", message=f"not a readable image ({exc})")]

    if img.format != preset.format:
        fail("format", f"{img.format}, preset wants {preset.format}")
    _check_mode(img, fail)
    _check_profile(img, preset, fail)
    _check_dimensions(img, preset, fail)
    if preset.max_bytes and len(data) > preset.max_bytes:
        fail("max-bytes", f"{len(data):,} bytes > {preset.max_bytes:,}")

    if preset.pure_white_background or preset.min_fill_fraction:
        if product_alpha is not None and product_alpha.shape != img.size[::-1]:
            fail("matte", f"matte is {product_alpha.shape[1]}x{product_alpha.shape[0]}, image is {img.width}x"
                 f"{img.height}; checked with an estimated product region instead")
            product_alpha = None
        pixels = None
        if preset.pure_white_background or product_alpha is None:
            pixels = _decoded(img, rgb)
            if pixels is None:
                return [*out, Violation(rule="readable", message="the file does not decode to its pixels")]
        product = product_alpha > 0 if product_alpha is not None else estimate_product(pixels)
        if preset.pure_white_background:
            _check_white(pixels, product, img, fail)
            if product_alpha is None:
                _check_white_edge(pixels, fail)
        if preset.min_fill_fraction:
            solid = product_alpha > 8 if product_alpha is not None else product
            _check_fill(solid, preset.min_fill_fraction, fail)

    _check_provenance(img, preset, generated, fail)
    return out


LOSSLESS = ("PNG",)


def _decoded(img: Image.Image, rgb: np.ndarray | None) -> np.ndarray | None:
    """The file's pixels as ``HxWx3 uint8``: the encoder's own array for lossless formats, else decoded."""
    if rgb is not None and img.format in LOSSLESS and img.mode == "RGB" and rgb.shape[1::-1] == img.size:
        return rgb
    try:
        return np.asarray(img.convert("RGB"))
    except (OSError, *_UNREADABLE, *_BOMB):
        return None


def _check_mode(img: Image.Image, fail) -> None:
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if has_alpha:
        fail("color-mode", f"{img.mode} image with transparency; marketplaces need an opaque background")
    elif img.mode not in ("RGB", "L", "P"):
        fail("color-mode", f"color mode {img.mode}; save as RGB (no CMYK)")


def _check_profile(img: Image.Image, preset: Preset, fail) -> None:
    icc = img.info.get("icc_profile")
    if not icc:
        if img.mode in ("RGB", "L", "P"):  # marketplaces read untagged RGB as sRGB, and so do we
            fail("color-profile", f"no ICC profile embedded: assumed sRGB, as marketplaces do; embed an "
                 f"{preset.color_profile} profile to be sure", warning=True)
        else:
            fail("color-profile", f"no ICC profile embedded; export with an {preset.color_profile} profile")
        return
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile
    except (OSError, ImageCms.PyCMSError) as exc:
        fail("color-profile", f"unreadable ICC profile ({exc})")
        return
    description = (profile.profile_description or "").lower()
    red = profile.red_colorant[0] if profile.red_colorant else None  # ((X, Y, Z), (x, y, Y))
    srgb_colorants = red is not None and np.allclose(red, _SRGB_RED_XYZ, atol=0.01)
    if profile.xcolor_space.strip() != "RGB" or not (srgb_colorants or "srgb" in description):
        fail("color-profile", f"profile '{profile.profile_description}' is not sRGB; convert to sRGB")


def _check_dimensions(img: Image.Image, preset: Preset, fail) -> None:
    long_side, short_side = max(img.size), min(img.size)
    if preset.min_long_side and long_side < preset.min_long_side:
        fail("min-size", f"long side {long_side} px < {preset.min_long_side}")
    if preset.max_long_side and long_side > preset.max_long_side:
        fail("max-size", f"long side {long_side} px > {preset.max_long_side}")
    if preset.min_short_side and short_side < preset.min_short_side:
        fail("min-short-side", f"short side {short_side} px < {preset.min_short_side}")
    megapixels = img.width * img.height / 1e6
    if preset.max_megapixels and megapixels > preset.max_megapixels:
        fail("megapixels", f"{megapixels:.1f} MP > {preset.max_megapixels}")
    if preset.check_aspect:
        want, got = preset.width / preset.height, img.width / img.height
        if abs(got - want) > 0.01 * want:
            fail("aspect", f"{img.width}x{img.height} is not {preset.width}:{preset.height}")


def estimate_product(rgb: np.ndarray) -> np.ndarray:
    """``HxW bool`` product region of an ``HxWx3 uint8`` image on white, without a matte."""
    diff = 255 - rgb.min(axis=2)
    core = (diff > ESTIMATE_THRESHOLD).astype(np.uint8)
    # The soft edge (alpha ramp, resampling) is fainter than the threshold: take a band around the core.
    radius = max(4, round(EDGE_BAND * max(rgb.shape[:2])))
    grown = cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    # Fill holes: whatever the border cannot reach through non-product pixels is enclosed.
    h, w = grown.shape
    reach = np.pad(grown, 1, constant_values=0)  # a frame of background so the flood starts anywhere
    flood_mask = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(reach, flood_mask, (0, 0), 2)
    return reach[1:-1, 1:-1] != 2


def _check_white(rgb: np.ndarray, product: np.ndarray, img: Image.Image, fail) -> None:
    darkest = channel_min(rgb)  # a pixel is 255 white when its darkest channel is 255
    outside = ~product
    if img.format == "JPEG":
        touched = _jpeg_blocks(product, img)
        strict = outside & ~touched
        edge = outside & touched
        ringing = edge & (darkest < 255 - RINGING_TOLERANCE)
        if ringing.any():
            worst = int(darkest[ringing].min())
            fail("white-background", f"{int(ringing.sum())} background pixels next to the product are darker "
                 f"than {255 - RINGING_TOLERANCE} (more than JPEG ringing: a shadow or halo?); "
                 f"darkest {worst}",
                 darkest=worst)
    else:
        strict = outside
    bad = strict & (darkest != 255)
    if bad.any():
        ys, xs = np.nonzero(bad)
        worst = int(darkest[bad].min())
        fail("white-background", f"{len(xs)} background pixels are not 255 white (first at x={xs[0]}, "
             f"y={ys[0]}; darkest {worst})", darkest=worst)


EDGE_NOT_WHITE_MAX = 0.5  # without a matte: at most this share of the image's edge may be product


def _check_white_edge(rgb: np.ndarray, fail) -> None:
    """Without a matte, a photo on a table or a backdrop reads as one big "product" that fills the
    frame, leaving no background to check. A packshot on white has white around the product: its
    product may touch the edge along a side (a tall bottle), never along most of the frame's edge."""
    darkest = channel_min(rgb)
    edge = np.concatenate([darkest[0], darkest[-1], darkest[1:-1, 0], darkest[1:-1, -1]])
    dark = float((edge < 255 - ESTIMATE_THRESHOLD).mean()) if edge.size else 0.0
    if dark > EDGE_NOT_WHITE_MAX:
        fail("white-background", f"{dark:.0%} of the image's edge is not white (darkest {int(edge.min())}): "
             "the product is not on a white background (a photo on a table or a backdrop?)",
             darkest=int(edge.min()))


def channel_min(rgb: np.ndarray) -> np.ndarray:
    """``HxW uint8``: the smallest of the three channels of an ``HxWx3 uint8`` image (OpenCV, no copies)."""
    r, g, b = cv2.split(np.ascontiguousarray(rgb))
    return cv2.min(cv2.min(r, g), b)


def _jpeg_blocks(product: np.ndarray, img: Image.Image) -> np.ndarray:
    """``HxW bool``: pixels in JPEG MCUs that contain any product pixel (plus 1 px when subsampled)."""
    layers = getattr(img, "layer", None) or [("1", 1, 1, 0)]
    bw = 8 * max(layer[1] for layer in layers)
    bh = 8 * max(layer[2] for layer in layers)
    h, w = product.shape
    ph, pw = -(-h // bh) * bh, -(-w // bw) * bw
    padded = np.zeros((ph, pw), bool)
    padded[:h, :w] = product
    blocks = padded.reshape(ph // bh, bh, pw // bw, bw).any(axis=(1, 3))
    touched = np.repeat(np.repeat(blocks, bh, axis=0), bw, axis=1)[:h, :w]
    if bw > 8 or bh > 8:
        touched = cv2.dilate(touched.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return touched


def _check_fill(solid: np.ndarray, minimum: float, fail) -> None:
    ys, xs = np.nonzero(solid)
    if len(xs) == 0:
        fail("fill", "no product found in the image")
        return
    h, w = solid.shape
    fill = max((xs.max() - xs.min() + 1) / w, (ys.max() - ys.min() + 1) / h)
    if fill < minimum:
        fail("fill", f"product spans {fill:.0%} of the frame, needs at least {minimum:.0%}")


def source_type(img: Image.Image) -> str | None:
    """The IPTC DigitalSourceType the file's XMP declares, or None."""
    raw = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if not raw:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    match = _SOURCE_TYPE.search(text)
    return match.group(1) if match else None


def _check_provenance(img: Image.Image, preset: Preset, generated: bool | None, fail) -> None:
    declared = source_type(img)
    ai = declared == AI_SOURCE_TYPE
    if generated and not ai:
        fail("provenance", "generated image without IPTC DigitalSourceType trainedAlgorithmicMedia in XMP")
    if generated is False and ai:
        fail("provenance", "declares trainedAlgorithmicMedia but is not a generated image")
    if not preset.allow_generated and (generated or ai):
        fail("provenance", f"generated images are not allowed for {preset.name}")
