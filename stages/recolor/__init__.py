"""Color variants: recolor the product's main material of a finished image to a catalog color.

``recolor(rendered, color, material_mask=None) -> Rendered`` works on any finished output (packshot,
background, lifestyle scene) without re-running generative stages. Pixels outside the material
mask are returned byte-for-byte unchanged (the product-fidelity rule); inside it the hue and chroma
become the target's and the lightness is mapped so the material's median reads as the target while
shading, texture and highlights keep their relative structure. See :mod:`stages.recolor.transform`
for the color model and :mod:`stages.recolor.material` for how the main material is found.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from packshot.errors import ImageLoadError, PackshotError
from packshot.types import ColorVariant, Rendered
from stages.recolor import transform
from stages.recolor.material import find_main_material

__all__ = ["recolor", "recolor_variants", "recolor_rgb", "load_material_mask", "find_main_material"]


def recolor(rendered: Rendered, color: ColorVariant, material_mask: np.ndarray | None = None) -> Rendered:
    """A copy of ``rendered`` with its main material in ``color`` (``variant=color.slug``).

    ``material_mask``: ``HxW uint8`` in the rendered image's coordinates (255 = main material,
    soft values blend), e.g. a merchant's mask mapped into the image; ``None`` finds the main material
    automatically inside ``rendered.product_alpha``. Either way the mask is limited to the product matte.
    """
    alpha = rendered.product_alpha
    if material_mask is None:
        weight = find_main_material(rendered.rgb, alpha)
    else:
        if material_mask.shape != alpha.shape:
            raise PackshotError(
                f"recolor mask is {material_mask.shape[1]}x{material_mask.shape[0]} px but the "
                f"{rendered.kind} image is {alpha.shape[1]}x{alpha.shape[0]}; map it into the image first"
            )
        weight = cv2.min(np.ascontiguousarray(material_mask, np.uint8), alpha)
    notes = list(rendered.notes)
    if not (weight >= 128).any():
        notes.append(f"recolor {color.name}: no main material found inside the product matte; left unchanged")
        rgb = rendered.rgb.copy()
    else:
        rgb = recolor_rgb(rendered.rgb, weight, color.rgb)
    return dataclasses.replace(rendered, rgb=rgb, variant=color.slug, notes=notes)


def recolor_variants(
    rendered: Rendered, colors: list[ColorVariant], material_mask: np.ndarray | None = None
) -> list[Rendered]:
    """:func:`recolor` for several colors, finding the main material once (it is the slow part)."""
    if material_mask is None and colors:
        material_mask = find_main_material(rendered.rgb, rendered.product_alpha)
    return [recolor(rendered, color, material_mask) for color in colors]


def recolor_rgb(rgb: np.ndarray, weight: np.ndarray, target_rgb: tuple[int, int, int]) -> np.ndarray:
    """Recolor ``rgb`` (``HxWx3 uint8``) where ``weight`` (``HxW uint8``) > 0 so the weighted
    region's median color becomes ``target_rgb``; pixels with weight 0 are copied unchanged.

    Only the bounding box of ``weight`` is converted, in horizontal strips (each cut to its own
    bounding box) so the 8-bit Lab round trip stays in the CPU cache."""
    out = rgb.copy()
    x, y, w, h = cv2.boundingRect(weight)
    if w == 0 or h == 0:
        return out
    box = (slice(y, y + h), slice(x, x + w))
    matrix, light_lut = transform.build_transform(
        transform.reference_lab(rgb[box], weight[box]), transform.srgb_to_lab(target_rgb)
    )
    rows = max(8, _STRIP_PIXELS // w)
    for top in range(y, y + h, rows):
        sx, sy, sw, sh = cv2.boundingRect(weight[top : top + rows, x : x + w])
        if sw == 0:
            continue
        part = (slice(top + sy, top + sy + sh), slice(x + sx, x + sx + sw))
        old, strip_weight = rgb[part], weight[part]
        lab = transform.apply_lab(cv2.cvtColor(old, cv2.COLOR_RGB2Lab), matrix, light_lut)
        _composite(out[part], cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), old, strip_weight)
    return out


_STRIP_PIXELS = 64 * 1024  # pixels per strip: a few 8-bit images of this size fit a 1 MiB L2 cache


def _composite(dst: np.ndarray, new: np.ndarray, old: np.ndarray, weight: np.ndarray) -> None:
    """``dst = new * w + old * (1 - w)`` with ``w = weight / 255``, in place (``dst`` may be a view).

    Weight 0 keeps ``dst``, 255 gives ``new`` exactly. Soft weights (matte edges, material
    boundaries) are usually a thin band: gathered and blended alone; a strip that is mostly soft is
    blended whole."""
    soft = cv2.inRange(weight, 1, 254)
    n_soft = cv2.countNonZero(soft)
    if n_soft * 8 > weight.size:
        alpha = np.multiply(weight, np.float32(1 / 255), dtype=np.float32)
        cv2.copyTo(cv2.blendLinear(new, old, alpha, 1 - alpha), weight, dst)
        return
    cv2.copyTo(new, cv2.compare(weight, 254, cv2.CMP_GT), dst)
    if n_soft == 0:
        return
    flat = np.flatnonzero(soft)
    a = weight.reshape(-1)[flat].astype(np.uint16)[:, None]
    # uint16 holds 255 * 255 + 127: the rounded weighted mean without floats.
    mixed = (new.reshape(-1, 3)[flat] * a + old.reshape(-1, 3)[flat] * (255 - a) + 127) // 255
    rows, cols = np.divmod(flat, weight.shape[1])
    dst[rows, cols] = mixed.astype(np.uint8)


def load_material_mask(path: Path | str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A merchant's main-material mask file as ``HxW uint8`` (255 = recolor, 0 = keep).

    Grayscale/RGB files use their luminance; files with transparency use the alpha channel. ``size``
    ``(width, height)`` of the photo it was drawn on: a mask of the same aspect ratio is resized to
    it, another aspect ratio is an error. ``None`` keeps the file's size.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            if has_alpha:
                mask = np.asarray(img.convert("RGBA"))[..., 3]
                if mask.min() == 255:
                    mask = np.asarray(img.convert("L"))
            else:
                mask = np.asarray(img.convert("L"))
    except FileNotFoundError as exc:
        raise ImageLoadError(f"recolor mask {path} does not exist; fix the recolor_mask column") from exc
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"recolor mask {path} is not a readable image ({exc}); save it as PNG") from exc
    if mask.max() < 128:
        raise PackshotError(f"recolor mask {path} is empty (no pixel >= 128); paint the main material white")
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        w, h = size
        if abs(mask.shape[1] / mask.shape[0] - w / h) > 0.01 * (w / h):
            raise PackshotError(
                f"recolor mask {path} is {mask.shape[1]}x{mask.shape[0]} px but the photo is {w}x{h}; "
                "draw the mask on the product photo itself (same size or the same aspect ratio)"
            )
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(mask, np.uint8)
