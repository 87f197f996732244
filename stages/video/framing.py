"""Getting a product image into the frame a provider accepts: pick a size, pad or crop, encode.

Images are never stretched: they are scaled uniformly, then padded with their own border color
(``fit="pad"``) or center-cropped (``fit="crop"``).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping

import numpy as np
from PIL import Image

from packshot.errors import PackshotError


class InputImageError(PackshotError):
    """A clip's source image cannot be used; the message says why."""


def decode_image(image: np.ndarray | bytes) -> np.ndarray:
    """RGB ``HxWx3 uint8`` from an array (RGB, gray or RGBA) or encoded PNG/JPEG/WebP bytes."""
    if isinstance(image, bytes | bytearray):
        try:
            with Image.open(io.BytesIO(image)) as pil:
                pil.load()
                if pil.mode in ("RGBA", "LA", "P"):
                    pil = pil.convert("RGBA")
                    white = Image.new("RGBA", pil.size, (255, 255, 255, 255))
                    pil = Image.alpha_composite(white, pil)
                return np.asarray(pil.convert("RGB"))
        except (OSError, Image.DecompressionBombError) as exc:
            raise InputImageError(f"the source image could not be decoded ({exc})") from None
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise InputImageError(f"the source image must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 8:
        raise InputImageError(f"the source image must be HxWx3 RGB, got shape {arr.shape}")
    return np.ascontiguousarray(arr[..., :3])


def parse_ratio(ratio: str) -> float:
    """``"16:9"``, ``"1280:720"`` or ``"1280x720"`` as width / height."""
    for sep in (":", "x"):
        if sep in ratio:
            w, _, h = ratio.partition(sep)
            try:
                value = float(w) / float(h)
            except (ValueError, ZeroDivisionError):
                break
            if value > 0:
                return value
    raise InputImageError(f"video ratio '{ratio}' is not W:H (e.g. 16:9, 9:16, 1280:720) or 'auto'")


def choose_size(
    sizes: Mapping[str, tuple[int, int]], ratio: str, image_shape: tuple[int, ...]
) -> tuple[str, tuple[int, int]]:
    """The provider size (label, (w, h)) whose aspect is closest to ``ratio`` ("auto": the image's)."""
    target = image_shape[1] / image_shape[0] if ratio == "auto" else parse_ratio(ratio)
    label = min(sizes, key=lambda k: abs(math.log(sizes[k][0] / sizes[k][1]) - math.log(target)))
    return label, sizes[label]


def border_color(rgb: np.ndarray) -> tuple[int, int, int]:
    """Median color of the outermost 2 px ring (the studio background of a packshot)."""
    ring = np.concatenate(
        [
            rgb[:2].reshape(-1, 3),
            rgb[-2:].reshape(-1, 3),
            rgb[:, :2].reshape(-1, 3),
            rgb[:, -2:].reshape(-1, 3),
        ]
    )
    return tuple(int(v) for v in np.median(ring, axis=0))  # type: ignore[return-value]


def fit_to_frame(rgb: np.ndarray, size: tuple[int, int], fit: str = "pad") -> np.ndarray:
    """``rgb`` (``HxWx3 uint8``) scaled uniformly into ``size`` (w, h); returns ``h x w x 3 uint8``.

    ``pad`` keeps the whole product and fills the rest with the border color; ``crop`` fills the
    frame and cuts the overflow equally from both sides.
    """
    out_w, out_h = size
    h, w = rgb.shape[:2]
    scale = min(out_w / w, out_h / h) if fit == "pad" else max(out_w / w, out_h / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    if fit == "pad":
        new_w, new_h = min(new_w, out_w), min(new_h, out_h)
    else:
        new_w, new_h = max(new_w, out_w), max(new_h, out_h)
    scaled = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.LANCZOS))
    if fit == "pad":
        canvas = np.empty((out_h, out_w, 3), np.uint8)
        canvas[:] = border_color(rgb)
        x0, y0 = (out_w - new_w) // 2, (out_h - new_h) // 2
        canvas[y0 : y0 + new_h, x0 : x0 + new_w] = scaled
        return canvas
    x0, y0 = (new_w - out_w) // 2, (new_h - out_h) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + out_h, x0 : x0 + out_w])


def encode_within(rgb: np.ndarray, max_bytes: int) -> tuple[bytes, str]:
    """PNG if it fits in ``max_bytes``, else the best JPEG that does; returns (bytes, mime type)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False)
    if buf.tell() <= max_bytes:
        return buf.getvalue(), "image/png"
    for quality in (95, 90, 85, 80, 70, 60):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
        if buf.tell() <= max_bytes:
            return buf.getvalue(), "image/jpeg"
    raise InputImageError(f"the prepared image does not fit in {max_bytes} bytes even as JPEG quality 60")


def data_uri(rgb: np.ndarray, max_uri_bytes: int) -> str:
    """A ``data:image/...;base64,`` URI no longer than ``max_uri_bytes`` characters."""
    overhead = len("data:image/jpeg;base64,")
    data, mime = encode_within(rgb, (max_uri_bytes - overhead) * 3 // 4)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
