"""Composition around a generative fill: generation size, fill mask, color match and paste-back.

Arrays: RGB ``HxWx3 uint8``; mattes ``HxW uint8`` (255 = product); masks ``HxW bool``.
The product's own pixels never come from the model: the generated image only supplies the
background, and the original product is composited back through its matte.
"""

from __future__ import annotations

import cv2
import numpy as np

LATENT_MULTIPLE = 16  # FLUX: VAE scale factor 8 x 2x2 latent packing


def generation_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(w, h) with the preset's aspect, long side at most ``long_side``, both multiples of 16."""
    scale = min(1.0, long_side / max(width, height))

    def snap(v: float) -> int:
        return max(LATENT_MULTIPLE, int(round(v / LATENT_MULTIPLE)) * LATENT_MULTIPLE)

    return snap(width * scale), snap(height * scale)


def protected_region(alpha: np.ndarray, size: tuple[int, int], grow_px: int) -> np.ndarray:
    """Pixels of a ``size`` (w, h) image that the fill must keep: every pixel touched by any product
    opacity, grown by ``grow_px`` into the background. Returns ``h x w bool``.

    The fill mask is its complement, so it never reaches the product, not even its soft edge.
    """
    touched = cv2.resize((alpha > 0).astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    if grow_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
        touched = cv2.dilate(touched.astype(np.uint8), kernel) > 0
    return touched


def solid_core(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixels of a ``size`` (w, h) image lying entirely inside fully opaque product, eroded by one
    pixel: where the model's reconstruction can be compared with the original colors."""
    solid = cv2.resize((alpha == 255).astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.999
    return cv2.erode(solid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def color_shift(generated: np.ndarray, reference: np.ndarray, where: np.ndarray, limit: float = 24.0):
    """Per-channel median of ``generated - reference`` over ``where`` (the VAE's color drift on the
    product), clamped to ``limit`` levels; zeros when too few pixels to trust."""
    if where.sum() < 16:
        return np.zeros(3, np.float32)
    diff = generated[where].astype(np.float32) - reference[where].astype(np.float32)
    return np.clip(np.median(diff, axis=0), -limit, limit).astype(np.float32)


def fill_holes(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill ``~known`` pixels smoothly from the known ones (push-pull over an image pyramid).

    Used to replace the product area and its protective band in the generated image with the
    surrounding generated background, so soft product edges blend onto new background colors
    instead of the placeholder that was behind the product.
    """
    img = image.astype(np.float32)
    weight = known.astype(np.float32)
    if weight.all():
        return image.copy()
    levels = [(img * weight[..., None], weight)]
    while min(levels[-1][1].shape) > 2:
        c, w = levels[-1]
        size = (max(1, c.shape[1] // 2), max(1, c.shape[0] // 2))
        levels.append((cv2.resize(c, size, interpolation=cv2.INTER_AREA),
                       cv2.resize(w, size, interpolation=cv2.INTER_AREA)))
    c, w = levels[-1]
    # Coarsest level: any pixel still without support takes the mean of all known pixels.
    known_pixels = img[known]
    mean = known_pixels.mean(axis=0) if len(known_pixels) else np.zeros(img.shape[2], np.float32)
    filled = np.where(w[..., None] > 1e-6, c / np.maximum(w, 1e-6)[..., None], mean)
    for c, w in reversed(levels[:-1]):
        up = cv2.resize(filled, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR)
        up = up.reshape(c.shape)
        own = c / np.maximum(w, 1e-6)[..., None]
        mix = np.clip(w * 4, 0, 1)[..., None]  # trust a level where it has enough known support
        filled = own * mix + up * (1 - mix)
    out = np.where(known[..., None], img, filled)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def finish_generated(
    generated: np.ndarray,
    guide: np.ndarray,
    protect: np.ndarray,
    core: np.ndarray,
    canvas_size: tuple[int, int],
) -> np.ndarray:
    """Turn the model's output (generation size) into a background for the full canvas.

    1. Undo the VAE color drift measured on the product core, so the background matches the
       original product pixels pasted on top (diffusers issue 10582).
    2. Replace the protected region (product + band) with the surrounding generated background.
    3. Upscale to the canvas size (Lanczos).
    """
    shift = color_shift(generated, guide, core)
    matched = np.clip(generated.astype(np.float32) - shift, 0, 255).round().astype(np.uint8)
    background = fill_holes(matched, ~protect)
    if background.shape[1::-1] != canvas_size:
        background = cv2.resize(background, canvas_size, interpolation=cv2.INTER_LANCZOS4)
    return background
