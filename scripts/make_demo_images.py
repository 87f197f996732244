"""Render the demo catalog's product photos (catalogs/demo/images/).

Every image is a deterministic studio "packshot" render made with numpy/OpenCV/Pillow: analytic
surfaces of revolution and inflated soft goods, a key/fill light setup, an environment reflection
for metal and glass, soft contact shadows, camera noise and JPEG compression. The one real photo
(the espresso cup) comes from scikit-image's bundled sample data (CC0). Fixed seeds and Pillow's
embedded font make the output identical on every run of the same library versions.

Usage: ``python scripts/make_demo_images.py [--out catalogs/demo/images]``
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "catalogs" / "demo" / "images"
MAX_BYTES = 350_000


def unit(*v: float) -> np.ndarray:
    a = np.array(v, np.float32)
    return a / np.linalg.norm(a)


# Camera looks along -z; x right, y down (image axes), z toward the camera.
KEY = unit(-0.55, -0.7, 0.55)  # softbox upper left, in front of the product
FILL = unit(0.8, -0.25, 0.45)  # weaker bounce card on the right
VIEW = unit(0, 0, 1)
HALF = unit(*(KEY + VIEW))


# ---------------------------------------------------------------------------------------------
# Small geometry helpers. Images are float32 HxWx3 in [0, 1]; masks/alpha are float32 HxW in [0, 1].


def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


def coverage(signed_dist: np.ndarray) -> np.ndarray:
    """Antialiased coverage from a signed distance in pixels (positive inside)."""
    return np.clip(signed_dist + 0.5, 0, 1).astype(np.float32)


def ellipse_sd(xs, ys, cx, cy, a, b) -> np.ndarray:
    """Approximate signed distance to an ellipse in pixels, positive inside."""
    dx, dy = xs - cx, ys - cy
    q = (dx / a) ** 2 + (dy / b) ** 2
    grad = 2 * np.sqrt((dx / a**2) ** 2 + (dy / b**2) ** 2) + 1e-6
    return (1 - q) / grad


def normalize(n: np.ndarray) -> np.ndarray:
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)


def tilt_normals(n: np.ndarray, elevation: float) -> np.ndarray:
    """Rotate object-space normals for a camera looking down by ``elevation`` radians."""
    c, s = np.cos(elevation), np.sin(elevation)
    out = np.empty_like(n)
    out[..., 0] = n[..., 0]
    out[..., 1] = n[..., 1] * c + n[..., 2] * s
    out[..., 2] = n[..., 2] * c - n[..., 1] * s
    return out


def poly_mask(h: int, w: int, points, scale: float = 1.0, offset=(0.0, 0.0)) -> np.ndarray:
    """Antialiased polygon coverage; ``points`` in pixels (sub-pixel precision kept)."""
    pts = np.asarray(points, np.float64) * scale + np.asarray(offset)
    img = np.zeros((h, w), np.uint8)
    cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return img.astype(np.float32) / 255


def smooth_curve(points, samples: int = 400, closed: bool = True) -> np.ndarray:
    """Catmull-Rom spline through control points, so outlines look drawn, not polygonal."""
    p = np.asarray(points, np.float64)
    if closed:
        p = np.vstack([p[-1], p, p[0], p[1]])
    else:
        p = np.vstack([p[0], p, p[-1]])
    out = []
    per = max(2, samples // (len(p) - 3))
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        t = np.linspace(0, 1, per, endpoint=False)[:, None]
        out.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    return np.vstack(out)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(a, (0, 0), sigma) if sigma > 0 else a


def value_noise(h: int, w: int, rng: np.random.Generator, cell: float, octaves: int = 3) -> np.ndarray:
    """Smooth fractal noise in [-1, 1] (bicubic-upsampled random grids)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
        g = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
        out += amp * cv2.resize(g, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)[:h, :w]
        total += amp
        amp *= 0.5
        cell /= 2
    return out / total


def fabric_texture(h: int, w: int, rng: np.random.Generator, pitch: float, angle: float = 0.0) -> np.ndarray:
    """Woven-canvas height pattern in [-1, 1]: two crossing thread families with slub noise."""
    xs, ys = grid(h, w)
    c, s = np.cos(angle), np.sin(angle)
    u, v = xs * c + ys * s, -xs * s + ys * c
    slub = value_noise(h, w, rng, pitch * 6, 2)
    warp = np.sin(2 * np.pi * u / pitch + 0.8 * slub)
    weft = np.sin(2 * np.pi * v / pitch + 0.8 * slub)
    checker = np.sign(np.sin(np.pi * u / pitch) * np.sin(np.pi * v / pitch))
    return (0.5 * (warp * (checker > 0) + weft * (checker <= 0)) + 0.25 * slub).astype(np.float32)


def height_normals(height: np.ndarray, strength: float = 1.0) -> np.ndarray:
    gy, gx = np.gradient(height.astype(np.float32))
    n = np.stack([-gx * strength, -gy * strength, np.ones_like(height)], -1)
    return normalize(n)


def inflate(mask: np.ndarray, depth: float, softness: float = 0.0) -> np.ndarray:
    """Height field of a pillow-like object from its silhouette (higher in the middle)."""
    binary = (mask > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(binary, cv2.DIST_L2, 5).astype(np.float32)
    t = np.clip(dist / depth, 0, 1)
    height = depth * np.sqrt(1 - (1 - t) ** 2)
    return blur(height, softness) if softness else height


# ---------------------------------------------------------------------------------------------
# Lighting


def shade(
    normal: np.ndarray,
    albedo,
    *,
    ambient: float = 0.32,
    diffuse: float = 0.72,
    fill: float = 0.16,
    spec: float = 0.25,
    shininess: float = 30.0,
    occlusion: np.ndarray | None = None,
) -> np.ndarray:
    """Key + fill + hemispheric ambient + Blinn-Phong; ``albedo`` RGB triple or HxWx3."""
    ndl = np.clip(normal @ KEY, 0, 1)
    ndf = np.clip(normal @ FILL, 0, 1)
    ndh = np.clip(normal @ HALF, 0, 1)
    sky = 0.8 + 0.2 * np.clip(-normal[..., 1], -1, 1)  # facing up sees the bright studio ceiling
    light = ambient * sky + diffuse * ndl + fill * ndf
    highlight = spec * ndh**shininess
    if occlusion is not None:
        light = light * occlusion
        highlight = highlight * occlusion
    return np.asarray(albedo, np.float32) * light[..., None] + highlight[..., None]


def studio_env(r: np.ndarray) -> np.ndarray:
    """Brightness a mirror sees in direction ``r`` (HxWx3 unit vectors): softboxes, flags, sweep."""
    phi = np.degrees(np.arctan2(r[..., 0], r[..., 2]))  # 0 = toward the camera, +-90 = sideways
    up = -r[..., 1]
    env = 0.16 + 0.10 * np.clip(up, 0, 1)  # dim studio around the photographer
    backdrop = smoothstep(70, 110, np.abs(phi))  # white paper sweep behind and beside the product
    env = env * (1 - backdrop) + 0.92 * backdrop
    key_box = smoothstep(18, 10, np.abs(phi + 42)) * smoothstep(-0.35, -0.05, up) * smoothstep(0.9, 0.6, up)
    strip = smoothstep(7, 3, np.abs(phi - 38)) * smoothstep(-0.6, -0.3, up)
    flags = smoothstep(10, 3, np.abs(np.abs(phi) - 66))  # black cards that draw the edges
    floor = smoothstep(-0.15, -0.55, up) * 0.55
    env = env + 1.25 * key_box + 0.85 * strip + floor
    env = env * (1 - 0.85 * flags)
    return np.clip(env, 0, 1.6)[..., None].repeat(3, -1)


def reflect_view(normal: np.ndarray) -> np.ndarray:
    d = normal @ VIEW
    return 2 * d[..., None] * normal - VIEW


# ---------------------------------------------------------------------------------------------
# Studio set: background sweep, shadows, compositing, camera


def studio_background(h: int, w: int, top, floor, horizon: float, rng: np.random.Generator) -> np.ndarray:
    """Seamless paper sweep: wall colour blending into a brighter floor, light falloff to the corners."""
    xs, ys = grid(h, w)
    t = smoothstep(horizon - 0.3, horizon + 0.12, ys / h)
    bg = np.asarray(top, np.float32) * (1 - t)[..., None] + np.asarray(floor, np.float32) * t[..., None]
    r2 = ((xs - 0.42 * w) / w) ** 2 + ((ys - 0.45 * h) / h) ** 2
    bg *= (1.02 - 0.09 * r2)[..., None]
    bg *= (1 + 0.004 * value_noise(h, w, rng, 300, 2))[..., None]  # paper is never perfectly even
    return bg


def cast_shadow(mask: np.ndarray, base_y: float, lean: float = 0.55, squash: float = 0.28) -> np.ndarray:
    """Project a standing object's silhouette onto the floor behind it, away from the key light."""
    m = np.array([[1, lean * squash, -lean * squash * base_y], [0, squash, base_y * (1 - squash)]], np.float32)
    return cv2.warpAffine(mask, m, (mask.shape[1], mask.shape[0]), flags=cv2.INTER_LINEAR)


def apply_shadow(bg: np.ndarray, shadow: np.ndarray, tint=(0.96, 0.97, 1.0)) -> np.ndarray:
    """Darken the set by ``shadow`` opacity (HxW), slightly cool like a real bounce-lit shadow."""
    s = np.clip(shadow, 0, 0.95)[..., None]
    return bg * (1 - s * np.asarray(tint, np.float32))


def standing_shadow(
    bg: np.ndarray, mask: np.ndarray, cx: float, base_y: float, half_width: float, depth: float, strength=1.0
) -> np.ndarray:
    """Contact shadow (dark, tight) + soft cast shadow for an object standing on the floor."""
    h, w = mask.shape
    xs, ys = grid(h, w)
    contact = coverage(ellipse_sd(xs, ys, cx + 0.03 * half_width, base_y - 0.2 * depth, half_width * 1.02, depth))
    cast = cast_shadow(mask, base_y)
    shadow = 0.55 * blur(contact, 4) + 0.22 * blur(contact, 22) + 0.30 * blur(cast, 28)
    return apply_shadow(bg, strength * shadow)


def over(dst: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = np.clip(alpha, 0, 1)[..., None]
    return dst * (1 - a) + color * a


def camera(img: np.ndarray, rng: np.random.Generator, noise: float = 0.006, soften: float = 0.55) -> np.ndarray:
    """Lens softness, a touch of vignetting and sensor noise; returns uint8 RGB."""
    img = blur(img, soften)
    lum_noise = rng.normal(0, noise, img.shape[:2]).astype(np.float32)[..., None]
    chroma = rng.normal(0, noise * 0.35, img.shape).astype(np.float32)
    img = img + lum_noise + blur(chroma, 1.2)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def save_jpeg(path: Path, rgb: np.ndarray, quality: int = 88) -> int:
    """Write a JPEG under MAX_BYTES, lowering quality if needed; returns the byte size."""
    img = Image.fromarray(rgb)
    while True:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, optimize=True, subsampling=2)
        if buf.tell() <= MAX_BYTES or quality <= 60:
            break
        quality -= 4
    path.write_bytes(buf.getvalue())
    return buf.tell()


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's embedded font: same glyphs everywhere


# ---------------------------------------------------------------------------------------------
# Surfaces of revolution (bottles, mugs, candles)


class Revolved:
    """A vertical surface of revolution seen from slightly above.

    ``radius(y)`` gives the radius (px) of the horizontal section at section row ``y``. The
    section rows run from ``y_top`` to ``y_bot``; on screen every section is an ellipse whose
    front edge is ``tilt * r`` below its centre row.
    """

    def __init__(self, h, w, cx, y_top, y_bot, radius: Callable[[np.ndarray], np.ndarray], tilt=0.16):
        self.h, self.w, self.cx, self.y_top, self.y_bot, self.tilt = h, w, cx, y_top, y_bot, tilt
        self.radius = radius
        xs, ys = grid(h, w)
        sec = ys.copy()
        for _ in range(4):  # solve screen_y = section_y + tilt * r(section_y) * cos(theta)
            r = radius(np.clip(sec, y_top, y_bot))
            u = np.clip((xs - cx) / np.maximum(r, 1e-3), -1, 1)
            sec = ys - tilt * r * np.sqrt(1 - u**2)
        r = radius(np.clip(sec, y_top, y_bot))
        self.u = np.clip((xs - cx) / np.maximum(r, 1e-3), -1, 1)
        self.cos = np.sqrt(1 - self.u**2)
        self.section = sec
        self.r = r
        self.mask = coverage(r - np.abs(xs - cx)) * coverage(sec - y_top) * coverage(y_bot - sec)
        dr = (radius(np.clip(sec + 1, y_top, y_bot)) - radius(np.clip(sec - 1, y_top, y_bot))) / 2
        n = np.stack([self.u, -dr * self.cos, self.cos], -1)
        self.normal = tilt_normals(normalize(n), np.arcsin(tilt))
        self.xs, self.ys = xs, ys

    def top_ellipse(self, y: float | None = None, shrink: float = 0.0) -> np.ndarray:
        """Signed distance to the (optionally shrunk) section ellipse at row ``y`` (default: top)."""
        y = self.y_top if y is None else y
        r = float(self.radius(np.array([y], np.float32))[0]) - shrink
        return ellipse_sd(self.xs, self.ys, self.cx, y, r, self.tilt * r)

    def wrap(self, label: np.ndarray, y0: float, y1: float, span: float) -> tuple[np.ndarray, np.ndarray]:
        """Map a flat RGBA label (covering ``span`` radians around the front) onto the surface."""
        theta = np.arcsin(self.u)
        lh, lw = label.shape[:2]
        map_x = ((theta / span + 0.5) * lw).astype(np.float32)
        map_y = ((self.section - y0) / (y1 - y0) * lh).astype(np.float32)
        warped = cv2.remap(label, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return warped[..., :3], warped[..., 3] * self.mask * (self.cos > 0.05)


def label_image(lw: int, lh: int, paper, lines, ink=(0.1, 0.1, 0.1), border=True) -> np.ndarray:
    """Flat RGBA float label with centred lines ``(text, size, dy)``."""
    img = Image.new("RGB", (lw, lh), tuple(int(c * 255) for c in paper))
    draw = ImageDraw.Draw(img)
    inkc = tuple(int(c * 255) for c in ink)
    if border:
        draw.rectangle([lh * 0.06, lh * 0.06, lw - lh * 0.06, lh - lh * 0.06], outline=inkc, width=2)
    for text, size, y in lines:
        f = font(size)
        x0, _, x1, _ = draw.textbbox((0, 0), text, font=f)
        draw.text(((lw - (x1 - x0)) / 2, y * lh), text, font=f, fill=inkc)
    rgba = np.dstack([np.asarray(img, np.float32) / 255, np.ones((lh, lw), np.float32)])
    return rgba


def tube(xs, ys, cx, cy, a, b, half: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A round tube bent along an ellipse (handles, loops, headbands).

    Returns (coverage, normal HxWx3, angle): ``angle`` is the polar angle around the centre
    (0 = right, -pi/2 = up) so callers can keep only part of the ring.
    """
    dx, dy = xs - cx, ys - cy
    q = np.sqrt((dx / a) ** 2 + (dy / b) ** 2) + 1e-6
    scale = 1 / np.sqrt((dx / (q * a * a)) ** 2 + (dy / (q * b * b)) ** 2 + 1e-9) * q
    d = (q - 1) * scale / q  # signed distance to the centre line, >0 outside the ring
    t = np.clip(d / half, -1, 1)
    gx, gy = dx / (a * a), dy / (b * b)
    gn = np.sqrt(gx * gx + gy * gy) + 1e-9
    n = np.stack([gx / gn * t, gy / gn * t, np.sqrt(np.clip(1 - t * t, 0, 1))], -1)
    return coverage(half - np.abs(d)), normalize(n), np.arctan2(dy, dx)


# ---------------------------------------------------------------------------------------------
# Products


def profile(knots: list[tuple[float, float]]) -> Callable[[np.ndarray], np.ndarray]:
    """Radius as a smooth function of the section row through ``(row, radius)`` knots."""
    ys = np.array([k[0] for k in knots], np.float32)
    rs = np.array([k[1] for k in knots], np.float32)

    def radius(y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, np.float32)
        i = np.clip(np.searchsorted(ys, y) - 1, 0, len(ys) - 2)
        t = smoothstep(0, 1, (y - ys[i]) / (ys[i + 1] - ys[i]))
        return rs[i] + (rs[i + 1] - rs[i]) * t

    return radius


def steel_bottle(rng: np.random.Generator) -> np.ndarray:
    """Polished stainless vacuum bottle with a matte black cap and carry loop: mirror reflections."""
    h, w, cx = 1600, 1200, 590
    bg = studio_background(h, w, (0.86, 0.865, 0.875), (0.955, 0.955, 0.955), 0.6, rng)
    xs, ys = grid(h, w)
    body = Revolved(h, w, cx, 500, 1345, profile(
        [(500, 118), (535, 122), (610, 168), (660, 176), (1310, 176), (1338, 171), (1345, 160)]), tilt=0.17)
    cap = Revolved(h, w, cx, 330, 505, profile([(330, 112), (345, 118), (495, 120), (505, 119)]), tilt=0.17)
    loop_cov, loop_n, ang = tube(xs, ys, cx, 330, 78, 92, 15)
    loop_cov *= (ys < 322).astype(np.float32)

    silhouette = np.maximum(np.maximum(body.mask, cap.mask), loop_cov)
    bg = standing_shadow(bg, silhouette, cx, 1345, 176, 30)

    # Metal: the environment in the mirror direction, circumferential brushing, a slight cool tint.
    env = studio_env(reflect_view(body.normal))
    brushing = blur(rng.normal(0, 1, (h, 1)).astype(np.float32), 0.8).repeat(w, 1)
    steel = env * np.array([0.80, 0.82, 0.85], np.float32) * (1 + 0.035 * brushing)[..., None]
    steel += 0.9 * (np.clip(body.normal @ HALF, 0, 1) ** 220)[..., None]
    # Laser-etched logo: matte, lighter and flatter than the polished steel around it.
    logo = label_image(600, 160, (0, 0, 0), [("NORD", 84, 0.12), ("insulated  500 ml", 30, 0.7)], border=False)
    logo_rgb, _ = body.wrap(logo, 880, 1010, 1.6)
    etched = logo_rgb.mean(-1) * body.mask * (np.abs(body.u) < 0.8)
    steel = over(steel, 0.55 + 0.15 * env.clip(0, 1), etched * 0.85)
    # Dark seam where cap meets the body.
    seam = coverage(3 - np.abs(body.section - 503)) * body.mask
    steel *= (1 - 0.6 * seam)[..., None]

    black = 0.045
    cap_col = shade(cap.normal, (black, black, black * 1.08), spec=0.22, shininess=14, ambient=0.5)
    top_sd = cap.top_ellipse()
    cap_top = coverage(top_sd)
    top_col = shade(tilt_normals(np.dstack([np.zeros((h, w, 2), np.float32), np.ones((h, w, 1), np.float32)])
                                 [..., [0, 2, 1]] * np.array([1, -1, 1], np.float32), np.arcsin(0.17)) * 0 +
                    np.array([0, -0.95, 0.3], np.float32), (black, black, black * 1.08), spec=0.1, ambient=0.5)
    grip = (np.sin(body.u * 0 + np.arcsin(cap.u) * 60) > 0.2) & (cap.section > 360) & (cap.section < 480)
    cap_col *= (1 - 0.25 * grip.astype(np.float32))[..., None]
    loop_col = shade(loop_n, (black, black, black), spec=0.2, shininess=16, ambient=0.5)

    img = over(bg, loop_col, loop_cov)
    img = over(img, cap_col, cap.mask)
    img = over(img, top_col, cap_top)
    img = over(img, steel, body.mask)
    return img

PRODUCTS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "steel_bottle": steel_bottle,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", nargs="*", help="render only these images (names without .jpg)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for seed, (name, render) in enumerate(PRODUCTS.items()):
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        rng = np.random.default_rng(1000 + seed)
        rgb = camera(render(rng), rng)
        size = save_jpeg(args.out / f"{name}.jpg", rgb)
        print(f"{name}.jpg  {rgb.shape[1]}x{rgb.shape[0]}  {size / 1000:.0f} KB  {time.perf_counter() - t0:.1f}s")
    print(f"total {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
