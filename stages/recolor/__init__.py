"""Color variants: recolor the product's main material of a finished image to a catalog color.

``recolor_variants(rendered, colors, material_mask=None, product=None, mode="relative")`` works on
any finished output (packshot, background, lifestyle scene) without re-running generative stages.
Pixels outside the material mask are returned byte-for-byte unchanged (the product-fidelity rule).

Inside it, ``relative`` mode (the default) moves every pixel from the product's own color (the color
it has in the photo, see :mod:`stages.recolor.own`) to the variant's as the swatches differ, keeping
the photo's light, shading and texture: the variant in the product's own color is the photo itself,
and the others look photographed under the same light. ``exact-swatch`` mode moves the material's
median color onto the swatch value instead. Each variant carries a :class:`RecolorReport` with its
distance to the swatch and to "the photographed product shifted to the target", and review reasons
when the main material does not separate cleanly from the product's other parts (see
:mod:`stages.recolor.material`). :mod:`stages.recolor.transform` holds the color model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from packshot.colors import delta_e2000
from packshot.errors import ImageLoadError, PackshotError
from packshot.types import ColorVariant, Product, RecolorReport, Rendered
from stages.recolor import transform
from stages.recolor.material import find_main_material, material_doubts
from stages.recolor.own import OwnColor, own_color
from stages.recolor.settings import RecolorMode, RecolorSettings

__all__ = ["recolor", "recolor_variants", "recolor_rgb", "load_material_mask", "find_main_material",
           "own_color", "OwnColor", "RecolorSettings", "RecolorMode"]


def recolor(rendered: Rendered, color: ColorVariant, material_mask: np.ndarray | None = None, *,
            product: Product | None = None, mode: RecolorMode = "relative") -> Rendered:
    """A copy of ``rendered`` with its main material in ``color`` (``variant=color.slug``).

    ``material_mask``: ``HxW uint8`` in the rendered image's coordinates (255 = main material,
    soft values blend), e.g. a merchant's mask mapped into the image; ``None`` finds the main material
    automatically inside ``rendered.product_alpha``. Either way the mask is limited to the product matte.
    ``product``: the catalog row (its ``photo_color``, title and colors tell the product's own color).
    """
    return recolor_variants(rendered, [color], material_mask, product=product, mode=mode)[0]


def recolor_variants(rendered: Rendered, colors: list[ColorVariant], material_mask: np.ndarray | None = None,
                     *, product: Product | None = None, mode: RecolorMode = "relative") -> list[Rendered]:
    """:func:`recolor` for several colors, finding the main material and own color once."""
    if not colors:
        return []
    alpha = rendered.product_alpha
    doubts: list[str] = []
    if material_mask is None:
        weight = find_main_material(rendered.rgb, alpha)
        doubts = material_doubts(rendered.rgb, alpha, weight)
    else:
        if material_mask.shape != alpha.shape:
            raise PackshotError(
                f"recolor mask is {material_mask.shape[1]}x{material_mask.shape[0]} px but the "
                f"{rendered.kind} image is {alpha.shape[1]}x{alpha.shape[0]}; map it into the image first"
            )
        weight = cv2.min(np.ascontiguousarray(material_mask, np.uint8), alpha)
    solid = int(np.count_nonzero(alpha >= 250)) or 1
    share = float(np.count_nonzero(weight >= 128)) / solid
    if not (weight >= 128).any():
        note = "no main material found inside the product matte; left unchanged"
        return [dataclasses.replace(
            rendered, rgb=rendered.rgb.copy(), variant=c.slug,
            notes=[*rendered.notes, f"recolor {c.name}: {note}"],
            recolor=RecolorReport(mode=mode, target=c.hex, own_color_source="not measured",
                                  review_reasons=[f"recolor: {note}"])) for c in colors]
    measured = transform.reference_lab(rendered.rgb, weight)
    own = own_color(product, measured)
    out = []
    own_lab = transform.srgb_to_lab(own.color.rgb) if own.color is not None else measured
    for color in colors:
        # a review may have chosen another mode for one variant (orchestrator.review: a rejected variant)
        variant_mode = product.recolor_modes.get(color.slug, mode) if product is not None else mode
        target = transform.srgb_to_lab(color.rgb)
        source = own_lab if variant_mode == "relative" else measured
        unchanged = variant_mode == "relative" and own.color is not None and (
            own.color.slug == color.slug or float(delta_e2000(own_lab, target)) < 0.5)
        rgb = rendered.rgb.copy() if unchanged else _recolor_weighted(
            rendered.rgb, weight, source, target, measured)
        after = transform.reference_lab(rgb, weight)
        reference = transform.shifted(np.array(measured), own_lab, target)
        report = RecolorReport(
            mode=variant_mode, target=color.hex, own_color=own.describe(), own_color_source=own.source,
            unchanged=unchanged, de_swatch=round(float(delta_e2000(after, target)), 2),
            de_shifted=round(float(delta_e2000(after, reference)), 2),
            material_share=round(share, 4),
            review_reasons=[] if unchanged else [f"recolor: {d}" for d in doubts],
        )
        out.append(dataclasses.replace(rendered, rgb=rgb, variant=color.slug, notes=list(rendered.notes),
                                       recolor=report))
    return out


def recolor_rgb(rgb: np.ndarray, weight: np.ndarray, target_rgb: tuple[int, int, int]) -> np.ndarray:
    """Exact-swatch recolor of ``rgb`` (``HxWx3 uint8``) where ``weight`` (``HxW uint8``) > 0: the
    weighted region's median color becomes ``target_rgb``; pixels with weight 0 are copied unchanged."""
    if not weight.any():
        return rgb.copy()
    source = transform.reference_lab(rgb, weight)
    return _recolor_weighted(rgb, weight, source, transform.srgb_to_lab(target_rgb))


def _recolor_weighted(rgb: np.ndarray, weight: np.ndarray, source: tuple[float, float, float],
                      target: tuple[float, float, float],
                      measured: tuple[float, float, float] | None = None) -> np.ndarray:
    """``rgb`` with the material (``weight`` > 0) moved from ``source`` to ``target`` (CIELAB);
    ``measured``: the material's median in ``rgb`` (see :class:`~stages.recolor.transform.LabTransform`).

    Only the bounding box of ``weight`` is converted, in horizontal strips (each cut to its own
    bounding box) so the float Lab round trip stays in the CPU cache."""
    out = rgb.copy()
    x, y, w, h = cv2.boundingRect(weight)
    if w == 0 or h == 0:
        return out
    tr = transform.LabTransform(source, target, measured)
    if tr.identity:
        return out
    rows = max(8, _STRIP_PIXELS // w)
    for top in range(y, y + h, rows):
        sx, sy, sw, sh = cv2.boundingRect(weight[top : top + rows, x : x + w])
        if sw == 0:
            continue
        part = (slice(top + sy, top + sy + sh), slice(x + sx, x + sx + sw))
        old, strip_weight = rgb[part], weight[part]
        _composite(out[part], tr.apply_rgb(old, seed=top + sy), old, strip_weight)
    return out


_STRIP_PIXELS = 32 * 1024  # pixels per strip: a few float images of this size fit a 1 MiB L2 cache


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
