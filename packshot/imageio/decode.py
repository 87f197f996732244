"""Decoding image bytes into sRGB arrays, with the bomb check before any pixel is decoded."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from packshot.config import LoadSettings
from packshot.errors import ImageLoadError
from packshot.imageio.local import regular_file

log = logging.getLogger(__name__)

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "AVIF")  # JPEG includes MPO
# Formats Pillow cannot (or must not) read here, recognised by their first bytes for a helpful message.
_KNOWN_NON_RASTER = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"8BPS", "a Photoshop PSD file"),
    (b"%!PS", "a PostScript/EPS file"),
)


@dataclass
class LoadedImage:
    """A decoded image.

    ``rgb``: sRGB ``HxWx3 uint8``, EXIF orientation applied. ``alpha``: ``HxW uint8`` straight alpha,
    only when the source has transparency that is actually used, else None. ``sha256``: hex digest of
    the source bytes (cache key). ``source``: the reference as given. ``size``: (width, height).
    ``notes``: things the user may want to know (first frame of an animation used, broken ICC ignored).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    sha256: str
    source: str
    size: tuple[int, int]
    notes: tuple[str, ...] = ()


def probe_file(ref: str, path: Path, max_pixels: int, decode: bool = True) -> tuple[int, int]:
    """(width, height) of the local image file ``path`` as the pipeline will see it (EXIF rotation
    applied); :class:`ImageLoadError` naming ``ref`` for anything else: not a regular file, not an
    image, a decompression bomb, a PNG text/ICC chunk bomb, truncated or corrupt data. ``decode``:
    also decode the pixels (a JPEG at 1/8 scale, which still reads all its data), so a truncated
    file is found; else the header alone is read."""
    regular_file(ref, path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ImageLoadError(f"Image {ref!r}: cannot open it ({exc.strerror or exc}).") from exc
    with os.fdopen(fd, "rb") as fh:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(fh, formats=_available_formats()) as img:
                    width, height = img.size
                    orientation = _orientation(img)
                    if width * height > max_pixels:
                        raise _bomb_error(repr(ref), f"{width}x{height} = {width * height:,} pixels",
                                          LoadSettings(max_pixels=max_pixels))
                    if decode:
                        if img.format == "JPEG":
                            img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                        img.load()
        except ImageLoadError:
            raise
        except Image.DecompressionBombError as exc:
            raise _bomb_error(repr(ref), str(exc), LoadSettings(max_pixels=max_pixels)) from exc
        except UnidentifiedImageError as exc:
            raise ImageLoadError(
                f"Image {ref!r}: not an image Pillow can read (supported: {', '.join(SUPPORTED_FORMATS)}); "
                "export it as JPEG or PNG."
            ) from exc
        except Exception as exc:  # ValueError (PNG chunk bombs), OSError, SyntaxError, EOFError ...
            raise ImageLoadError(
                f"Image {ref!r}: truncated, damaged or not a valid image ({type(exc).__name__}: {exc}); "
                "re-export or re-upload it."
            ) from exc
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # malformed EXIF: the image is used as stored, as decode_image does
        return 1


def decode_image(data: bytes, name: str, settings: LoadSettings) -> LoadedImage:
    """Decode image bytes into sRGB ``HxWx3 uint8`` (+ optional alpha); ``name`` is used in messages."""
    if not data:
        raise ImageLoadError(f"Image {name}: the file is empty (0 bytes). Re-export or re-upload it.")
    _refuse_non_raster(data, name)
    try:
        with warnings.catch_warnings():
            # Our own limit (load.max_pixels) is checked just below; Pillow's hard limit still applies.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=_available_formats())
    except Image.DecompressionBombError as exc:
        raise _bomb_error(name, str(exc), settings) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(
            f"Image {name}: not a readable image (supported: {', '.join(SUPPORTED_FORMATS)}). "
            "The file may be corrupt or another kind of file; re-export it as JPEG or PNG."
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(f"Image {name}: invalid image header ({exc}); re-export the file.") from exc

    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"Image {name}: declares an empty size {width}x{height}; re-export the file.")
    if width * height > settings.max_pixels:
        raise _bomb_error(name, f"{width}x{height} = {width * height:,} pixels", settings)

    notes: list[str] = []
    if getattr(img, "is_animated", False):
        notes.append("animated image: the first frame was used")
        img.seek(0)
    icc_profile = img.info.get("icc_profile")
    try:
        img.load()
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageLoadError(
            f"Image {name}: the pixel data is truncated or corrupt ({exc}); re-export or re-upload the file."
        ) from exc

    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception as exc:  # malformed EXIF must not lose the image
        notes.append(f"EXIF orientation unreadable ({exc}); image used as stored")

    rgb, alpha = _to_srgb(img, icc_profile, name, notes)
    for note in notes:
        log.warning("Image %s: %s", name, note)
    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        sha256=hashlib.sha256(data).hexdigest(),
        source=name,
        size=(rgb.shape[1], rgb.shape[0]),
        notes=tuple(notes),
    )


@lru_cache
def _available_formats() -> tuple[str, ...]:
    """SUPPORTED_FORMATS that this Pillow build can open (AVIF needs libavif)."""
    Image.init()
    return tuple(fmt for fmt in SUPPORTED_FORMATS if fmt in Image.OPEN)


def _refuse_non_raster(data: bytes, name: str) -> None:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<"):
        kind = "an SVG drawing" if b"<svg" in data[:4096].lower() else "an HTML/XML document"
        raise ImageLoadError(
            f"Image {name}: is {kind}, not a raster image (from a URL: likely an error or login page). "
            "Check the reference, or export the artwork as PNG."
        )
    for magic, kind in _KNOWN_NON_RASTER:
        if data.startswith(magic):
            raise ImageLoadError(f"Image {name}: is {kind}, not an image; export it as JPEG or PNG.")
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftyphevc"):
        raise ImageLoadError(f"Image {name}: HEIC/HEIF is not supported; convert it to JPEG or PNG.")


def _bomb_error(name: str, detail: str, settings: LoadSettings) -> ImageLoadError:
    return ImageLoadError(
        f"Image {name}: refused, too many pixels ({detail}); the limit is load.max_pixels = "
        f"{settings.max_pixels:,}. Downscale the image, or raise PACKSHOT_LOAD__MAX_PIXELS if it is genuine."
    )


def _to_srgb(img: Image.Image, icc_profile: bytes | None, name: str, notes: list[str]):
    """Any Pillow mode -> (sRGB ``HxWx3 uint8``, ``HxW uint8`` alpha or None)."""
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        return _high_bit_depth_gray(img), None
    if mode in ("RGBa", "La"):  # premultiplied: Pillow un-premultiplies on conversion
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("PA", "LA"):
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")

    if icc_profile and img.mode in ("RGB", "RGBA", "CMYK", "L"):
        img = _apply_icc(img, icc_profile, name, notes)
    if img.mode not in ("RGB", "RGBA"):
        try:
            img = img.convert("RGB")
        except ValueError as exc:
            raise ImageLoadError(
                f"Image {name}: color mode {img.mode} is not supported; re-export it as 8-bit RGB."
            ) from exc

    arr = np.asarray(img)
    if img.mode == "RGB":
        return np.ascontiguousarray(arr), None
    rgb, alpha = np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
    return rgb, (alpha if alpha.min() < 255 else None)


def _apply_icc(img: Image.Image, icc_profile: bytes, name: str, notes: list[str]) -> Image.Image:
    """Convert from the embedded profile to sRGB; a broken profile falls back to a plain conversion."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if img.mode != "CMYK" and "srgb" in ImageCms.getProfileDescription(source).lower():
            return img  # already sRGB: skip a costly identity transform
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(
            img,
            source,
            ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            outputMode=out_mode,
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        notes.append(f"embedded ICC profile unusable ({exc}); colors converted without it")
        return img


def _high_bit_depth_gray(img: Image.Image) -> np.ndarray:
    """16/32-bit integer or float grayscale -> ``HxWx3 uint8`` (16-bit ``v`` maps to ``round(v / 257)``)."""
    values = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
    elif img.mode == "I" and (values.size == 0 or values.max() <= 255):
        scale = 1.0  # 8-bit data stored in a 32-bit container
    else:
        scale = 255.0 / 65535.0
    gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)
