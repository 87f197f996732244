"""Generate the segmentation evaluation set: products with exact alpha on studio backgrounds.

Each sample is a synthetic product (bottle, mug with an open handle, ring, bag with a strap, box,
ball, shoe, a pair of earrings) drawn at 4x and area-averaged, so its alpha matte is exact,
including the fractional edge. It gets shading, texture and a label, and is composited onto a
typical studio background (white, light grey or a soft gradient) with a soft contact shadow, then
JPEG-compressed like a camera or a merchant's export would be.

Writes, per sample ``NAME``: ``images/NAME.png`` (the photo, JPEG artefacts included, stored
losslessly), ``truth/NAME_alpha.png`` (ground-truth alpha, 8-bit) and ``truth/NAME_fg.png``
(ground-truth product colors, RGB). Deterministic for a given seed.

    python bench/make_segment_evalset.py --out /tmp/segment-eval --count 24
    python bench/make_segment_evalset.py --out /tmp/segment-hard --count 24 --hard 6  # + hard set

``--hard N`` adds N seeds of every category of :mod:`bench.segment_hard_set` (light products on
white and grey, backdrop-colored interiors, furry edges, thin parts, glass, non-studio photos).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SS = 4  # supersampling factor for exact fractional alpha
PALETTE = [  # product base colors: saturated, dark, neutral and light-but-not-white
    (200, 30, 40), (30, 60, 150), (20, 20, 22), (90, 90, 95), (150, 110, 70), (40, 130, 70),
    (230, 180, 40), (120, 40, 130), (190, 150, 120), (60, 160, 190), (160, 160, 165), (225, 90, 40),
]
SHAPES = ["bottle", "mug", "ring", "bag", "box", "ball", "shoe", "earrings"]


def _draw_shape(kind: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Binary mask (uint8 0/255) of the product at supersampled size ``h x w``."""
    m = np.zeros((h, w), np.uint8)
    cx, cy, s = w // 2, int(h * 0.52), min(w, h)
    jitter = rng.uniform(0.85, 1.1)
    if kind == "bottle":
        bw, bh = int(s * 0.16 * jitter), int(s * 0.3)
        cv2.rectangle(m, (cx - bw, cy - bh // 2), (cx + bw, cy + bh), 255, -1)
        cv2.ellipse(m, (cx, cy - bh // 2), (bw, bw // 2), 0, 180, 360, 255, -1)
        cv2.rectangle(m, (cx - bw // 3, cy - bh), (cx + bw // 3, cy - bh // 2), 255, -1)
    elif kind == "mug":
        bw, bh = int(s * 0.18 * jitter), int(s * 0.22)
        cv2.rectangle(m, (cx - bw, cy - bh), (cx + bw, cy + bh), 255, -1)
        cv2.ellipse(m, (cx + bw, cy), (int(bh * 0.55), int(bh * 0.6)), 0, -90, 90, 255, int(s * 0.035))
    elif kind == "ring":
        r = int(s * 0.24 * jitter)
        cv2.circle(m, (cx, cy), r, 255, -1)
        cv2.circle(m, (cx, cy), int(r * 0.62), 0, -1)
    elif kind == "bag":
        bw, bh = int(s * 0.24 * jitter), int(s * 0.17)
        pts = np.array([[cx - bw, cy + bh], [cx + bw, cy + bh], [cx + int(bw * 0.8), cy - bh],
                        [cx - int(bw * 0.8), cy - bh]], np.int32)
        cv2.fillPoly(m, [pts], 255)
        cv2.ellipse(m, (cx, cy - bh), (int(bw * 0.55), int(bh * 1.3)), 0, 180, 360, 255, int(s * 0.03))
    elif kind == "box":
        rect = ((cx, cy), (s * 0.42 * jitter, s * 0.34), float(rng.uniform(-20, 20)))
        cv2.fillPoly(m, [cv2.boxPoints(rect).astype(np.int32)], 255)
    elif kind == "ball":
        cv2.circle(m, (cx, cy), int(s * 0.27 * jitter), 255, -1)
    elif kind == "shoe":
        cv2.ellipse(m, (cx, cy + int(s * 0.08)), (int(s * 0.32 * jitter), int(s * 0.11)), 0, 0, 360, 255, -1)
        cv2.ellipse(m, (cx - int(s * 0.14), cy - int(s * 0.02)), (int(s * 0.15), int(s * 0.16)), 0, 0, 360,
                    255, -1)
    elif kind == "earrings":
        for dx in (-1, 1):
            x = cx + dx * int(s * 0.17)
            cv2.circle(m, (x, cy - int(s * 0.12)), int(s * 0.025), 255, -1)
            cv2.ellipse(m, (x, cy + int(s * 0.06)), (int(s * 0.08 * jitter), int(s * 0.14)), 0, 0, 360, 255,
                        int(s * 0.03))
            cv2.line(m, (x, cy - int(s * 0.12)), (x, cy - int(s * 0.08)), 255, int(s * 0.008))
    return m


def _product_colors(h: int, w: int, rng: np.random.Generator, base: tuple[int, int, int]) -> np.ndarray:
    """Shaded, textured product colors ``h x w x 3`` float32 in [0, 255]."""
    x = np.linspace(-1, 1, w)[None, :, None]
    shade = 0.75 + 0.35 * np.cos(x * 1.3) + 0.08 * np.linspace(-1, 1, h)[:, None, None]
    col = np.array(base, np.float32)[None, None] * shade
    col = col + rng.normal(0, 4.0, (h, w, 1)).astype(np.float32)
    if rng.random() < 0.6:  # a label or a stripe in a second color
        y0 = int(h * rng.uniform(0.4, 0.55))
        col[y0 : y0 + h // 10] = np.array(PALETTE[rng.integers(len(PALETTE))], np.float32) * 0.9 + 20
    if rng.random() < 0.5:  # specular highlight
        hx, hy = int(w * rng.uniform(0.35, 0.45)), int(h * 0.45)
        spot = np.zeros((h, w), np.float32)
        cv2.ellipse(spot, (hx, hy), (w // 40 + 1, h // 6), 0, 0, 360, 1.0, -1)
        spot = cv2.GaussianBlur(spot, (0, 0), w / 120)
        col = col * (1 - 0.6 * spot[..., None]) + 250 * 0.6 * spot[..., None]
    return np.clip(col, 0, 255)


def _background(h: int, w: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    if kind == "white":
        level = rng.uniform(244, 254)
        return np.full((h, w, 3), level, np.float32)
    if kind == "grey":
        level = rng.uniform(212, 232)
        tint = rng.uniform(-3, 3, 3)
        return np.full((h, w, 3), level, np.float32) + tint
    top, bottom = rng.uniform(200, 225), rng.uniform(240, 252)
    ramp = np.linspace(top, bottom, h, dtype=np.float32)[:, None, None]
    vignette = 1 - 0.05 * (np.linspace(-1, 1, w)[None, :, None] ** 2)
    return np.broadcast_to(ramp * vignette * np.array([1.0, 0.995, 0.985]), (h, w, 3)).astype(np.float32)


def make_sample(seed: int, size: tuple[int, int] = (960, 720)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (photo RGB uint8 after JPEG, alpha uint8, product colors RGB uint8), each ``HxW``."""
    rng = np.random.default_rng(seed)
    w, h = size
    kind = SHAPES[seed % len(SHAPES)]
    big = _draw_shape(kind, w * SS, h * SS, rng)
    alpha = cv2.resize(big.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)
    fg = _product_colors(h, w, rng, PALETTE[seed % len(PALETTE)])
    bg = _background(h, w, rng, ["white", "grey", "gradient"][seed % 3])
    ys, xs = np.nonzero(alpha > 0.5)
    bottom, cx, half = ys.max(), (xs.min() + xs.max()) // 2, (xs.max() - xs.min()) // 2
    shadow = np.zeros((h, w), np.float32)
    cv2.ellipse(shadow, (int(cx), int(bottom)), (int(half * 0.95), max(4, h // 60)), 0, 0, 360, 1.0, -1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), h / 90) * rng.uniform(0.3, 0.55)
    bg = bg * (1 - shadow[..., None])
    photo = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    photo = np.clip(photo + 0.5, 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(82, 94))])
    assert ok
    photo = cv2.imdecode(jpg, cv2.IMREAD_COLOR)[..., ::-1]
    alpha8 = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)
    return photo, alpha8, np.clip(fg + 0.5, 0, 255).astype(np.uint8)


def write_evalset(
    out: Path, count: int, size: tuple[int, int] = (960, 720), hard_per_category: int = 0,
    categories: list[str] | None = None, first_seed: int = 0,
) -> list[str]:
    """Write ``count`` studio samples and ``hard_per_category`` seeds of every hard category.

    ``first_seed`` shifts every seed: a held-out set (``--first-seed 100``) has the same kinds of
    photo as the calibration set but none of its pictures.

    Names start with their category (``studio_003_ring``, ``furry_001_plush``); see
    :func:`category_of`.
    """
    from bench.segment_hard_set import CATEGORIES, make_hard_sample

    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    samples = [(f"studio_{seed:03d}_{SHAPES[seed % len(SHAPES)]}", lambda seed=seed: make_sample(seed, size))
               for seed in range(first_seed, first_seed + count)]
    for category in categories or CATEGORIES:
        for seed in range(first_seed, first_seed + hard_per_category):
            kind, photo, alpha, fg = make_hard_sample(category, seed, size)
            samples.append((f"{category}_{seed:03d}_{kind}", lambda r=(photo, alpha, fg): r))
    names = []
    for name, make in samples:
        photo, alpha, fg = make()
        Image.fromarray(photo).save(out / "images" / f"{name}.png")
        Image.fromarray(alpha).save(out / "truth" / f"{name}_alpha.png")
        Image.fromarray(fg).save(out / "truth" / f"{name}_fg.png")
        names.append(name)
    return names


def category_of(name: str) -> str:
    """The category a sample name starts with (``studio`` or one of the hard set's)."""
    from bench.segment_hard_set import CATEGORIES

    return max((c for c in ["studio", *CATEGORIES] if name.startswith(c + "_")), key=len, default="other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/segment-eval"))
    parser.add_argument("--count", type=int, default=24, help="studio samples")
    parser.add_argument("--hard", type=int, default=0, help="seeds per hard category (0: studio set only)")
    parser.add_argument("--hard-categories", nargs="*", help="only these hard categories (default: all)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (a held-out set: e.g. 100)")
    args = parser.parse_args()
    names = write_evalset(args.out, args.count, hard_per_category=args.hard, categories=args.hard_categories,
                          first_seed=args.first_seed)
    print(f"wrote {len(names)} samples to {args.out}")


if __name__ == "__main__":
    main()
