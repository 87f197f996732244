"""Render the demo catalog's product photos (catalogs/demo/images/).

Every image is a deterministic studio "packshot" render made with numpy/OpenCV/Pillow: analytic
surfaces of revolution and inflated soft goods, a key/fill light setup, an environment reflection
for metal and glass, soft contact shadows, camera noise and JPEG compression. The one real photo
(the espresso cup) comes from scikit-image's bundled sample data (CC0). Fixed seeds and Pillow's
embedded font make the output identical on every run of the same library versions.

Beside the images, ``truth/<image>.png`` holds each render's exact alpha (the product's layers as
they were laid over the set, softened like the lens): the ground truth that tests/test_demo_truth.py
holds every demo cutout to. The real photo has none.

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
TRUTH_DIR = "truth"  # beside the images folder: <out>/../truth/<image>.png, each render's exact alpha
MAX_BYTES = 350_000


Render = tuple[np.ndarray, np.ndarray]  # (HxWx3 float32 image in [0, 1], HxW float32 product alpha)


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


def flat_normal(h: int, w: int, direction, elevation: float) -> np.ndarray:
    """A constant normal (object space) seen by a camera ``elevation`` radians above, as HxWx3."""
    n = np.broadcast_to(unit(*direction), (h, w, 3)).copy()
    return tilt_normals(n, elevation)


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
    p = np.vstack([p[-1], p, p[0], p[1]]) if closed else np.vstack([p[0], p, p[-1]])
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
    """Gaussian blur; wide ones run on a quarter-size copy (shadows do not need the detail)."""
    if sigma <= 0:
        return a
    if sigma < 10:
        return cv2.GaussianBlur(a, (0, 0), sigma)
    h, w = a.shape[:2]
    small = cv2.resize(a, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 4)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


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
    env = 0.3 + 0.12 * np.clip(up, 0, 1)  # dim studio around the photographer
    backdrop = smoothstep(125, 165, np.abs(phi))  # white paper sweep behind and beside the product
    env = env * (1 - backdrop) + 0.92 * backdrop
    key_box = smoothstep(20, 11, np.abs(phi + 42)) * smoothstep(-0.75, -0.45, up) * smoothstep(0.9, 0.6, up)
    strip = smoothstep(7, 3, np.abs(phi - 38)) * smoothstep(-0.6, -0.3, up)
    flags = smoothstep(14, 4, np.abs(np.abs(phi) - 108))  # black cards that draw the edges
    floor = smoothstep(-0.15, -0.55, up) * 0.55
    env = env + 1.25 * key_box + 0.85 * strip + floor
    env = env * (1 - 0.85 * flags)
    return np.clip(env, 0, 1.6)[..., None]  # grey: broadcasts over RGB


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


def cast_shadow(mask: np.ndarray, base_y: float, lean: float = 0.22, squash: float = 0.25) -> np.ndarray:
    """Project a standing object's silhouette onto the floor behind it, away from the key light."""
    m = np.array([[1, -lean, lean * base_y], [0, squash, base_y * (1 - squash)]], np.float32)
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
    contact = coverage(
        ellipse_sd(xs, ys, cx + 0.03 * half_width, base_y - 0.2 * depth, half_width * 1.02, depth)
    )
    cast = cast_shadow(mask, base_y)
    shadow = 0.55 * blur(contact, 4) + 0.22 * blur(contact, 22) + 0.30 * blur(cast, 28)
    return apply_shadow(bg, strength * shadow)


def over(dst: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = np.clip(alpha, 0, 1)[..., None]
    return dst * (1 - a) + color * a


def stacked(*alphas: np.ndarray) -> np.ndarray:
    """The product's exact alpha (HxW float32) after its layers were laid ``over`` the set in order."""
    total = np.zeros_like(alphas[0], np.float32)
    for a in alphas:
        a = np.clip(a, 0, 1)
        total = total * (1 - a) + a
    return total


def camera(
    img: np.ndarray, rng: np.random.Generator, noise: float = 0.006, soften: float = 0.55
) -> np.ndarray:
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


def save_truth(path: Path, alpha: np.ndarray, soften: float = 0.55) -> None:
    """Write a render's exact alpha (HxW float in [0, 1]) as an 8-bit PNG, softened like :func:`camera`."""
    a = np.clip(blur(alpha.astype(np.float32), soften), 0, 1)
    Image.fromarray((a * 255 + 0.5).astype(np.uint8), "L").save(path, optimize=True)


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
        warped = cv2.remap(
            label, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
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


def steel_bottle(rng: np.random.Generator) -> Render:
    """Polished stainless vacuum bottle with a matte black cap and carry loop: mirror reflections."""
    h, w, cx = 1600, 1200, 590
    bg = studio_background(h, w, (0.86, 0.865, 0.875), (0.955, 0.955, 0.955), 0.6, rng)
    xs, ys = grid(h, w)
    body = Revolved(
        h,
        w,
        cx,
        500,
        1345,
        profile([(500, 118), (535, 122), (610, 168), (660, 176), (1310, 176), (1338, 171), (1345, 160)]),
        tilt=0.17,
    )
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
    logo = label_image(
        600, 160, (0, 0, 0), [("NORD", 64, 0.15), ("insulated  500 ml", 26, 0.68)], border=False
    )
    logo_rgb, _ = body.wrap(logo, 880, 1010, 1.6)
    etched = logo_rgb.mean(-1) * body.mask * (np.abs(body.u) < 0.8)
    steel = over(steel, 0.62 + 0.12 * env.clip(0, 1), etched * 0.9)
    # Dark seam where cap meets the body.
    seam = coverage(3 - np.abs(body.section - 503)) * body.mask
    steel *= (1 - 0.6 * seam)[..., None]

    black = 0.045
    cap_col = shade(cap.normal, (black, black, black * 1.08), spec=0.22, shininess=14, ambient=0.5)
    top_sd = cap.top_ellipse()
    cap_top = coverage(top_sd)
    top_col = shade(flat_normal(h, w, (0, -1, 0), 0.17), (black, black, black * 1.08), spec=0.1, ambient=0.5)
    grip = (np.sin(body.u * 0 + np.arcsin(cap.u) * 60) > 0.2) & (cap.section > 360) & (cap.section < 480)
    cap_col *= (1 - 0.25 * grip.astype(np.float32))[..., None]
    loop_col = shade(loop_n, (black, black, black), spec=0.2, shininess=16, ambient=0.5)

    img = over(bg, loop_col, loop_cov)
    img = over(img, cap_col, cap.mask)
    img = over(img, top_col, cap_top)
    img = over(img, steel, body.mask)
    return img, stacked(loop_cov, cap.mask, cap_top, body.mask)


def ceramic_mug(rng: np.random.Generator, *, mask_out: list | None = None) -> Render:
    """Glazed stoneware mug with a handle (background visible through it) and a raw clay foot."""
    h, w, cx = 1300, 1560, 700
    bg = studio_background(h, w, (0.93, 0.93, 0.925), (0.975, 0.975, 0.97), 0.55, rng)
    xs, ys = grid(h, w)
    tilt = 0.22
    body = Revolved(
        h, w, cx, 380, 1000, profile([(380, 262), (420, 262), (940, 250), (985, 246), (1000, 232)]), tilt=tilt
    )
    handle, handle_n, _ = tube(xs, ys, cx + 262, 655, 150, 190, 34)
    handle *= coverage(xs - (cx + 200))
    top_outer = coverage(body.top_ellipse())
    inner_sd = body.top_ellipse(shrink=16)
    inner = coverage(inner_sd)

    silhouette = np.maximum(np.maximum(body.mask, top_outer), handle)
    bg = standing_shadow(bg, silhouette, cx, 1000, 248, 48)

    glaze = np.array([0.33, 0.45, 0.56], np.float32)  # slate-blue reactive glaze
    speckle = (rng.random((h, w)) > 0.9985).astype(np.float32)
    speckle = blur(speckle, 0.9) * 6
    variation = 1 + 0.05 * value_noise(h, w, rng, 120, 3)
    albedo = glaze * variation[..., None] * (1 - 0.5 * speckle.clip(0, 1))[..., None]
    env = studio_env(reflect_view(body.normal))
    fresnel = 0.04 + 0.5 * (1 - body.cos) ** 4
    outside = shade(body.normal, albedo, spec=0.55, shininess=90) + (fresnel * 0.35)[..., None] * env
    foot = smoothstep(962, 968, body.section)
    clay = (
        shade(body.normal, (0.72, 0.62, 0.5), spec=0.03, shininess=6)
        * (1 + 0.06 * value_noise(h, w, rng, 4, 1))[..., None]
    )
    outside = over(outside, clay, foot * body.mask)
    handle_env = studio_env(reflect_view(handle_n))
    handle_col = shade(handle_n, albedo, spec=0.55, shininess=90) + 0.06 * handle_env
    # Handle sits in the body's shadow side less than the front: occlude where it meets the body.
    handle_col *= (0.75 + 0.25 * smoothstep(cx + 250, cx + 320, xs))[..., None]

    # Opening: glazed off-white inside, back wall lit, front wall shadows it.
    r_top = 262 - 16
    v = np.clip((ys - (380 - tilt * r_top)) / (2 * tilt * r_top), 0, 1)
    inside_light = 0.55 + 0.4 * smoothstep(0.85, 0.1, v) * smoothstep(-0.9, 0.2, (xs - cx) / r_top)
    inside = np.array([0.93, 0.92, 0.89], np.float32) * inside_light[..., None]
    rim_n = flat_normal(h, w, (0, -1, 0), np.arcsin(tilt))
    rim = shade(rim_n, albedo * 1.05, spec=0.6, shininess=60)

    img = over(bg, handle_col, handle)
    img = over(img, outside, body.mask)
    img = over(img, rim, top_outer)
    img = over(img, inside, inner)
    if mask_out is not None:
        main_glaze = np.maximum(np.maximum(body.mask * (1 - foot), handle), top_outer * (1 - inner))
        mask_out.append(main_glaze)
    return img, stacked(handle, body.mask, top_outer, inner)


def glass_bottle(rng: np.random.Generator) -> Render:
    """Clear glass carafe with a cork and a kraft label: the set shows through, refracted."""
    h, w, cx = 1600, 1200, 600
    bg = studio_background(h, w, (0.83, 0.84, 0.85), (0.94, 0.94, 0.945), 0.6, rng)
    xs, ys = grid(h, w)
    tilt = 0.15
    body = Revolved(
        h,
        w,
        cx,
        330,
        1340,
        profile(
            [
                (330, 64),
                (352, 64),
                (356, 56),
                (470, 54),
                (640, 188),
                (700, 196),
                (1305, 196),
                (1332, 190),
                (1340, 176),
            ]
        ),
        tilt=tilt,
    )
    cork = Revolved(h, w, cx, 250, 345, profile([(250, 52), (262, 55), (345, 50)]), tilt=tilt)
    silhouette = np.maximum(body.mask, cork.mask)
    bg = standing_shadow(bg, silhouette, cx, 1340, 196, 30, strength=0.55)
    # Light focused by the bottle: a caustic in its shadow.
    caustic = coverage(ellipse_sd(xs, ys, cx + 90, 1318, 110, 16))
    bg = bg + 0.06 * blur(caustic, 12)[..., None]

    # Through the glass: the set, slightly magnified and pulled toward the centre.
    theta = np.arcsin(body.u)
    map_x = (cx + body.r * np.sin(theta * 0.82)).astype(np.float32)
    map_y = (ys + 6 * (1 - body.cos)).astype(np.float32)
    seen = cv2.remap(bg, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    path = 1 / np.maximum(body.cos, 0.12)
    transmit = np.exp(-0.06 * path)[..., None] * np.array([0.95, 0.985, 0.965], np.float32)
    glass = seen * transmit
    env_front = studio_env(reflect_view(body.normal))
    back_n = body.normal * np.array([-1, 1, 1], np.float32)
    env_back = studio_env(reflect_view(back_n))
    fresnel = (0.04 + 0.96 * (1 - body.cos) ** 5)[..., None]
    glass = glass * (1 - fresnel) + fresnel * env_front * 0.8
    glass += 0.45 * np.clip(env_front - 0.95, 0, None) + 0.15 * np.clip(env_back - 0.95, 0, None)
    walls = smoothstep(0.9, 0.985, np.abs(body.u))  # glass walls seen edge-on
    glass *= (1 - 0.45 * walls)[..., None]
    base = smoothstep(1300, 1320, body.section)  # thick punted base: greener, darker
    glass = over(glass, glass * np.array([0.72, 0.82, 0.76], np.float32), base * 0.9)
    glass += (0.25 * coverage(2 - np.abs(body.section - 1312)) * body.cos)[..., None]

    label = label_image(
        900,
        360,
        (0.78, 0.66, 0.5),
        [("NORDIC HOME", 66, 0.17), ("glass carafe", 44, 0.47), ("750 ml  \u00b7  mouth-blown", 30, 0.74)],
        ink=(0.2, 0.15, 0.1),
    )
    paper_rgb, paper_a = body.wrap(label, 860, 1060, 2.0)
    paper = shade(body.normal, paper_rgb, spec=0.05, shininess=8)

    cork_tex = 1 + 0.12 * value_noise(h, w, rng, 3, 2) + 0.1 * (rng.random((h, w)) > 0.97)
    cork_col = shade(cork.normal, (0.72, 0.56, 0.38), spec=0.04) * cork_tex[..., None]
    cork_top = coverage(cork.top_ellipse())
    top_col = (
        shade(flat_normal(h, w, (0, -1, 0), np.arcsin(tilt)), (0.7, 0.55, 0.38), spec=0.03)
        * cork_tex[..., None]
    )

    img = over(bg, glass, body.mask)
    img = over(img, paper, paper_a)
    img = over(img, cork_col, cork.mask)
    img = over(img, top_col, cork_top)
    return img, stacked(body.mask, paper_a, cork.mask, cork_top)  # clear glass is product: alpha 1


def ellipsoid_normals(xs, ys, cx, cy, a, b, flat: float = 1.0) -> np.ndarray:
    dx, dy = (xs - cx) / a, (ys - cy) / b
    z = np.sqrt(np.clip(1 - dx * dx - dy * dy, 0, 1)) * flat
    return normalize(np.stack([dx, dy, z + 1e-3], -1))


def headphones(rng: np.random.Generator) -> Render:
    """Black over-ear headphones, front view: satin plastic, leather pads, open headband."""
    h, w, cx = 1500, 1500, 750
    bg = studio_background(h, w, (0.9, 0.9, 0.905), (0.965, 0.965, 0.965), 0.58, rng)
    xs, ys = grid(h, w)
    black = np.array([0.04, 0.04, 0.045], np.float32)
    band, band_n, band_ang = tube(xs, ys, cx, 820, 415, 560, 30)
    band *= coverage(760 - ys)
    pad, pad_n, pad_ang = tube(xs, ys, cx, 835, 392, 545, 26)
    pad *= coverage((pad_ang + 2.45) * 470) * coverage((-0.69 - pad_ang) * 470)  # pad ends: crisp cuts
    layers = []
    for side in (-1, 1):
        hx = cx + side * 415
        slider = coverage(9 - np.abs(xs - hx)) * coverage(ys - 700) * coverage(900 - ys)
        cup_cx = hx + side * 28
        cushion_cx = cup_cx - side * 70
        cushion = coverage(ellipse_sd(xs, ys, cushion_cx, 1040, 92, 188))
        shell = coverage(ellipse_sd(xs, ys, cup_cx, 1030, 78, 178))
        yoke = coverage(ellipse_sd(xs, ys, cup_cx, 880, 30, 34))
        layers.append((slider, yoke, cushion, cushion_cx, shell, cup_cx))

    silhouette = np.maximum(band, pad)
    for slider, yoke, cushion, _, shell, _ in layers:
        silhouette = np.maximum.reduce([silhouette, slider, yoke, cushion, shell])
    shadow = cast_shadow(silhouette, 1222)
    contact = sum(coverage(ellipse_sd(xs, ys, c, 1218, 120, 16)) for *_, c in layers)
    bg = apply_shadow(bg, 0.6 * blur(contact, 5) + 0.25 * blur(contact, 25) + 0.3 * blur(shadow, 30))

    def satin(n: np.ndarray) -> np.ndarray:
        env = studio_env(reflect_view(n))
        fres = (0.05 + 0.5 * (1 - np.clip(n[..., 2], 0, 1)) ** 3)[..., None]
        return shade(n, black, spec=0.35, shininess=22, ambient=0.6) + fres * env * 0.35

    wrinkles = value_noise(h, w, rng, 14, 3)
    img = bg.copy()
    top = np.s_[200:800, :]  # work on crops: the parts are small next to the frame
    leather_n = normalize(
        pad_n[top]
        + 0.06 * np.stack([wrinkles[top], np.roll(wrinkles[top], 7, 1), np.zeros_like(wrinkles[top])], -1)
    )
    img[top] = over(img[top], satin(band_n[top]), band[top])
    img[top] = over(img[top], shade(leather_n, black * 1.2, spec=0.3, shininess=35, ambient=0.6), pad[top])
    # Stitching along the pad's edges.
    ring_dist = (np.sqrt(((xs[top] - cx) / 392) ** 2 + ((ys[top] - 835) / 545) ** 2) - 1) * 470
    stitch = coverage(2.2 - np.abs(np.abs(ring_dist) - 19)) * pad[top]
    stitch *= (np.sin(pad_ang[top] * 260) > 0).astype(np.float32)
    img[top] = over(img[top], np.full_like(img[top], 0.2), stitch * 0.6)
    for slider, yoke, cushion, cushion_cx, shell, cup_cx in layers:
        sl = np.s_[640:1260, int(cup_cx) - 230 : int(cup_cx) + 230]
        x, y, wr = xs[sl], ys[sl], wrinkles[sl]
        part = img[sl]
        hx = cup_cx - np.sign(cup_cx - cx) * 28
        u = np.clip((x - hx) / 9, -1, 1)
        n_slider = normalize(np.stack([u, np.zeros_like(u), np.sqrt(1 - u * u) + 1e-3], -1))
        chrome = studio_env(reflect_view(n_slider)) * 0.85
        # Fine markings on the slider (size scale), as on real headbands.
        marks = (np.abs(((y - 712) % 22) - 11) < 1.2) & (y < 860)
        chrome = chrome * (1 - 0.5 * marks.astype(np.float32))[..., None]
        part = over(part, chrome, slider[sl])
        part = over(part, satin(ellipsoid_normals(x, y, cup_cx, 880, 30, 34)), yoke[sl])
        cush_n = ellipsoid_normals(x, y, cushion_cx, 1040, 92, 188, 0.7)
        cush_n = normalize(cush_n + np.stack([wr * 0.05, wr * 0.05, np.zeros_like(wr)], -1))
        part = over(part, shade(cush_n, black * 1.3, spec=0.25, shininess=30, ambient=0.6), cushion[sl])
        part *= (1 - 0.5 * blur(shell[sl], 14) * (1 - shell[sl]))[..., None]
        part = over(part, satin(ellipsoid_normals(x, y, cup_cx, 1030, 78, 178, 0.55)), shell[sl])
        # A glossy chamfer ring where the outer plate meets the shell.
        ring = coverage(2.5 - np.abs(ellipse_sd(x, y, cup_cx, 1030, 60, 150)))
        img[sl] = over(part, np.full_like(part, 0.32), ring * 0.8)
    port = coverage(ellipse_sd(xs, ys, cx - 415 - 28 + 10, 1195, 10, 6))
    img = over(img, np.full_like(img, 0.005), port)
    cups = [a for slider, yoke, cushion, _, shell, _ in layers for a in (slider, yoke, cushion, shell)]
    return img, stacked(band, pad, *cups, port)


def sneaker(rng: np.random.Generator) -> Render:
    """White leather low-top sneaker on a white sweep: the hard white-on-white case."""
    h, w = 1200, 1600
    bg = studio_background(h, w, (0.945, 0.945, 0.945), (0.985, 0.985, 0.983), 0.55, rng)
    xs, ys = grid(h, w)
    sole_pts = smooth_curve(
        [
            (236, 862),
            (262, 915),
            (330, 945),
            (560, 958),
            (950, 958),
            (1300, 952),
            (1372, 932),
            (1394, 880),
            (1386, 838),
            (1200, 842),
            (900, 850),
            (560, 852),
            (330, 838),
            (250, 820),
        ]
    )
    upper_pts = smooth_curve(
        [
            (248, 822),
            (262, 770),
            (330, 728),
            (450, 690),
            (600, 640),
            (720, 585),
            (830, 530),
            (905, 492),
            (945, 470),
            (975, 488),
            (1050, 523),
            (1150, 540),
            (1240, 512),
            (1300, 494),
            (1345, 520),
            (1378, 610),
            (1390, 740),
            (1380, 845),
            (1100, 850),
            (700, 852),
            (400, 846),
        ]
    )
    sole = poly_mask(h, w, sole_pts)
    upper = poly_mask(h, w, upper_pts)
    lining = poly_mask(
        h,
        w,
        smooth_curve(
            [
                (952, 478),
                (1040, 508),
                (1150, 524),
                (1240, 497),
                (1300, 482),
                (1310, 500),
                (1240, 520),
                (1150, 548),
                (1040, 535),
                (960, 500),
            ]
        ),
    )
    silhouette = np.maximum.reduce([sole, upper, lining])
    contact = coverage(ellipse_sd(xs, ys, 815, 954, 560, 12))
    bg = apply_shadow(
        bg, 0.55 * blur(contact, 4) + 0.2 * blur(contact, 22) + 0.22 * blur(cast_shadow(silhouette, 956), 26)
    )

    grain = value_noise(h, w, rng, 3, 2)
    height = inflate(upper, 120, 6) + 0.25 * grain
    # Panel seams: toe cap, eyestay, heel counter; each is a groove with stitching beside it.
    seams = np.zeros((h, w), np.uint8)
    stitches = np.zeros((h, w), np.uint8)
    for curve in (
        [(262, 760), (380, 745), (470, 760), (520, 810), (540, 850)],
        [(600, 640), (640, 700), (760, 720), (930, 640), (1010, 560)],
        [(1390, 700), (1250, 700), (1170, 760), (1140, 850)],
        [(1080, 528), (1110, 600), (1150, 660), (1250, 700)],
    ):
        pts = np.round(smooth_curve(curve, 200, closed=False) * 16).astype(np.int32)
        cv2.polylines(seams, [pts], False, 255, 3, cv2.LINE_AA, shift=4)
        shifted = pts + np.array([[0, 14 * 16]], np.int32)
        cv2.polylines(stitches, [shifted], False, 255, 2, cv2.LINE_AA, shift=4)
    seam = blur(seams.astype(np.float32) / 255, 1.2) * upper
    stitch = stitches.astype(np.float32) / 255 * (np.sin(xs * 0.55 + ys * 0.55) > 0.1) * upper
    height = height - 10 * seam
    n = height_normals(height, 0.55)
    leather = shade(n, (0.95, 0.948, 0.94), spec=0.14, shininess=25, ambient=0.62, diffuse=0.42)
    leather *= (1 - 0.3 * seam - 0.12 * stitch)[..., None]
    # Perforations on the toe box.
    perf = np.zeros((h, w), np.float32)
    for row in range(3):
        for col in range(7):
            x, y = 330 + col * 26 + row * 13, 770 + row * 20 - col * 4
            perf = np.maximum(perf, coverage(ellipse_sd(xs, ys, x, y, 3.2, 3.2)))
    leather *= (1 - 0.35 * perf)[..., None]
    # Laces: rounded flat bands crossing the eyestay, eyelets beside them.
    lace_cov = np.zeros((h, w), np.float32)
    lace_n = np.dstack([np.zeros((h, w, 2), np.float32), np.ones((h, w, 1), np.float32)])
    for k in range(6):
        t = k / 5
        x, y = 660 + t * 260, 612 - t * 108
        sd = ellipse_sd(xs, ys, x, y, 36, 11)
        cov = coverage(sd)
        lace_cov = np.maximum(lace_cov, cov)
        lace_n = np.where(cov[..., None] > 0, ellipsoid_normals(xs, ys, x, y, 36, 11), lace_n)
        eyelet = coverage(2.5 - np.abs(ellipse_sd(xs, ys, x + 40, y + 50, 7, 7)))
        leather *= (1 - 0.45 * eyelet)[..., None]
    lace_col = shade(lace_n, (0.97, 0.97, 0.965), spec=0.05, ambient=0.6, diffuse=0.42)
    heel_tab = poly_mask(
        h, w, smooth_curve([(1300, 494), (1345, 520), (1378, 610), (1385, 660), (1330, 640), (1300, 560)])
    )
    tab_col = shade(n, (0.8, 0.81, 0.79), spec=0.05, ambient=0.62, diffuse=0.42)

    sole_h = inflate(sole, 30, 3)
    rubber = shade(
        height_normals(sole_h, 0.6), (0.955, 0.95, 0.935), spec=0.08, shininess=12, ambient=0.62, diffuse=0.42
    )
    groove = coverage(1.8 - np.abs(ys - (905 + 0.02 * (xs - 800)))) * sole
    rubber *= (1 - 0.25 * groove - 0.18 * smoothstep(936, 950, ys))[..., None]
    ridge = ((np.sin(xs * 0.22) > 0.6) & (ys > 870) & (ys < 900)).astype(np.float32) * sole
    rubber *= (1 - 0.05 * ridge)[..., None]

    lining_col = shade(flat_normal(h, w, (0, -0.3, 1), 0.2), (0.55, 0.56, 0.57), spec=0.0, ambient=0.5)
    img = over(bg, lining_col * (0.6 + 0.4 * smoothstep(480, 535, ys))[..., None], lining)
    img = over(img, leather, upper)
    img = over(img, tab_col, heel_tab)
    img = over(img, lace_col, lace_cov * upper)
    ao = 1 - 0.35 * blur(upper, 6) * (1 - upper) * sole
    img = over(img, rubber * ao[..., None], sole)
    return img, stacked(lining, upper, heel_tab, lace_cov * upper, sole)


def candle(rng: np.random.Generator, lit: bool = False) -> Render:
    """Cream pillar candle: low-contrast wax against a pale set; optionally lit."""
    h, w, cx = 1500, 1200, 600
    bg = studio_background(h, w, (0.89, 0.885, 0.875), (0.955, 0.95, 0.94), 0.58, rng)
    if lit:
        bg *= 0.9
    xs, ys = grid(h, w)
    tilt = 0.2
    body = Revolved(
        h, w, cx, 600, 1250, profile([(600, 228), (612, 232), (1240, 232), (1250, 226)]), tilt=tilt
    )
    top = coverage(body.top_ellipse(600))
    silhouette = np.maximum(body.mask, top)
    bg = standing_shadow(bg, silhouette, cx, 1250, 232, 46)
    wax = np.array([0.98, 0.94, 0.84], np.float32)
    mottling = 1 + 0.025 * value_noise(h, w, rng, 60, 3)
    side = shade(body.normal, wax * mottling[..., None], spec=0.07, shininess=10, ambient=0.55, diffuse=0.6)
    # Light scattering through the wax: edges and the top rim glow a little warmer.
    glow = 0.08 * (1 - body.cos) ** 2 + 0.06 * smoothstep(700, 610, body.section)
    side += glow[..., None] * np.array([1.0, 0.8, 0.5], np.float32)
    drips = smoothstep(0.55, 0.95, value_noise(h, w, rng, 40, 1)) * smoothstep(760, 620, body.section)
    side *= (1 + 0.04 * drips)[..., None]
    r = 232.0
    v = (ys - 600) / (tilt * r)
    pool = coverage(body.top_ellipse(603, shrink=26))
    top_col = shade(
        flat_normal(h, w, (0, -1, 0), np.arcsin(tilt)),
        wax,
        spec=0.15,
        shininess=40,
        ambient=0.55,
        diffuse=0.45,
    )
    top_col *= (1 - 0.12 * pool * smoothstep(1.0, -0.6, v))[..., None]
    wick_cov = coverage(4.5 - np.abs(xs - (cx + 0.08 * (600 - ys)))) * coverage(ys - 548) * coverage(604 - ys)
    wick_col = np.where((ys < 566)[..., None], np.float32(0.04), np.float32(0.55) * np.ones(3, np.float32))

    img = over(bg, side, body.mask)
    img = over(img, top_col, top)
    img = over(img, wick_col * np.ones_like(img), wick_cov)
    alpha = stacked(body.mask, top, wick_cov)
    if lit:
        flame_x, flame_y = cx + 5, 505
        flame = coverage(ellipse_sd(xs, ys, flame_x, flame_y, 13 + 0.2 * np.clip(ys - 480, 0, 60), 48) * 1.0)
        core = coverage(ellipse_sd(xs, ys, flame_x, flame_y + 28, 7, 16))
        halo = np.exp(-(((xs - flame_x) / 170) ** 2 + ((ys - flame_y) / 190) ** 2))
        img += (0.22 * halo)[..., None] * np.array([1.0, 0.75, 0.4], np.float32)
        img = over(img, np.broadcast_to(np.array([1.0, 0.86, 0.52], np.float32), img.shape), flame * 0.97)
        img = over(img, np.broadcast_to(np.array([0.45, 0.5, 0.85], np.float32), img.shape), core * 0.5)
        img += (0.12 * top * smoothstep(1.2, -0.6, v))[..., None] * np.array([1.0, 0.7, 0.35], np.float32)
        alpha = stacked(alpha, flame * 0.97)  # the flame belongs to a lit candle's packshot
    return img, alpha


def cushion(rng: np.random.Generator) -> Render:
    """Linen cushion with piped edges: a soft, plump silhouette with woven texture."""
    h, w = 1500, 1500
    bg = studio_background(h, w, (0.9, 0.895, 0.885), (0.96, 0.955, 0.95), 0.62, rng)
    xs, ys = grid(h, w)
    c, half, bow = np.array([750.0, 700.0]), 410.0, 34.0
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    pts = []
    for i, (ax, ay) in enumerate(corners):
        bx, by = corners[(i + 1) % 4]
        for t in np.linspace(0, 1, 40, endpoint=False):
            x, y = ax + (bx - ax) * t, ay + (by - ay) * t
            inward = bow * np.sin(np.pi * t)
            px, py = c[0] + x * half, c[1] + y * half
            if ax == bx:
                px -= np.sign(ax) * inward
            else:
                py -= np.sign(ay) * inward
            pts.append((px, py))
    outline = np.array(pts)
    mask = poly_mask(h, w, outline)
    base_y = c[1] + half - 10
    bg = standing_shadow(bg, mask, c[0], base_y + 6, half * 0.85, 60)

    weave = fabric_texture(h, w, rng, 4.2, 0.05)
    folds = value_noise(h, w, rng, 160, 3)
    height = inflate(mask, 260, 20) + 14 * folds
    # Corner ears pucker: radial creases fading toward the centre.
    ang = np.arctan2(ys - c[1], xs - c[0])
    rad = np.hypot(xs - c[0], ys - c[1]) / half
    height += 6 * np.sin(ang * 24) * smoothstep(0.7, 1.3, rad)
    n = height_normals(height + 0.8 * weave, 0.9)
    slub = 1 + 0.05 * value_noise(h, w, rng, 30, 2) + 0.04 * weave
    fabric = shade(
        n,
        np.array([0.83, 0.62, 0.17], np.float32) * slub[..., None],
        spec=0.04,
        shininess=8,
        ambient=0.38,
        diffuse=0.66,
    )
    piping_layer = np.zeros((h, w), np.uint8)
    cv2.polylines(
        piping_layer, [np.round(outline * 16).astype(np.int32)], True, 255, 16, cv2.LINE_AA, shift=4
    )
    piping = blur(piping_layer.astype(np.float32) / 255, 1.0) * mask
    piping_n = height_normals(blur(piping, 4) * 40 + height, 0.7)
    piping_col = shade(piping_n, (0.78, 0.58, 0.16), spec=0.05, ambient=0.4)
    img = over(bg, fabric, mask)
    img = over(img, piping_col, piping)
    return img, stacked(mask, piping)


def tshirt(rng: np.random.Generator) -> Render:
    """Navy cotton t-shirt, flat lay from above, with ribbed collar and soft folds."""
    h, w = 1500, 1400
    bg = studio_background(h, w, (0.91, 0.91, 0.905), (0.93, 0.93, 0.925), 0.5, rng)
    xs, ys = grid(h, w)
    body = smooth_curve(
        [
            (560, 250),
            (620, 276),
            (700, 284),
            (780, 276),
            (840, 250),
            (980, 290),
            (1130, 380),
            (1205, 560),
            (1080, 625),
            (1010, 560),
            (1015, 900),
            (1020, 1230),
            (700, 1245),
            (380, 1230),
            (385, 900),
            (390, 560),
            (320, 625),
            (195, 560),
            (270, 380),
            (420, 290),
        ]
    )
    mask = poly_mask(h, w, body)
    front_neck = [(566, 256), (610, 330), (700, 372), (790, 330), (834, 256)]
    neck = poly_mask(h, w, smooth_curve([(834, 256), (780, 280), (700, 288), (620, 280)] + front_neck, 300))
    shadow = blur(np.roll(mask, (9, 7), (0, 1)), 8) * 0.28 + blur(mask, 24) * 0.12
    bg = apply_shadow(bg, shadow)
    knit = fabric_texture(h, w, rng, 2.6, 0.0)
    folds = value_noise(h, w, rng, 220, 3)
    crease = np.abs(value_noise(h, w, rng, 260, 2))
    height = inflate(mask, 14, 6) + 9 * folds - 5 * smoothstep(0.12, 0.0, crease) + 0.4 * knit
    n = height_normals(height, 1.0)
    navy = np.array([0.12, 0.16, 0.27], np.float32) * (1 + 0.05 * knit)[..., None]
    cotton = shade(n, navy, spec=0.03, shininess=6, ambient=0.45, diffuse=0.6)
    collar_layer = np.zeros((h, w), np.uint8)
    collar_pts = smooth_curve(front_neck, 200, closed=False) + np.array([0, 14])
    cv2.polylines(
        collar_layer, [np.round(collar_pts * 16).astype(np.int32)], False, 255, 30, cv2.LINE_AA, shift=4
    )
    back_pts = smooth_curve([(566, 256), (620, 280), (700, 288), (780, 280), (834, 256)], 200, closed=False)
    cv2.polylines(
        collar_layer,
        [np.round((back_pts + [0, 8]) * 16).astype(np.int32)],
        False,
        255,
        18,
        cv2.LINE_AA,
        shift=4,
    )
    collar = collar_layer.astype(np.float32) / 255 * mask
    rib = 1 - 0.15 * (np.sin(np.arctan2(ys - 150, xs - 700) * 420) > 0)
    cotton = over(cotton, cotton * 0.6, neck)  # the inside of the back panel, in the collar's shade
    cotton = over(cotton, cotton * 1.25 * rib[..., None], collar)
    hems = np.zeros((h, w), np.uint8)
    for curve in (
        [(395, 1195), (700, 1208), (1015, 1195)],
        [(205, 535), (320, 595), (388, 545)],
        [(1195, 535), (1080, 595), (1012, 545)],
    ):
        pts = np.round(smooth_curve(curve, 120, closed=False) * 16).astype(np.int32)
        cv2.polylines(hems, [pts], False, 255, 2, cv2.LINE_AA, shift=4)
    hem = hems.astype(np.float32) / 255 * (np.sin((xs + ys) * 0.5) > 0) * mask
    cotton *= (1 - 0.3 * hem)[..., None]
    label = coverage(np.minimum(20 - np.abs(xs - 700), 11 - np.abs(ys - 312)))
    img = over(bg, cotton, mask)
    img = over(img, np.broadcast_to(np.array([0.85, 0.83, 0.78], np.float32), img.shape), label * 0.95)
    return img, stacked(mask, label * 0.95)


BACKPACK_BODY = [
    (400, 430),
    (520, 360),
    (650, 345),
    (780, 360),
    (900, 430),
    (945, 600),
    (955, 900),
    (950, 1240),
    (900, 1330),
    (650, 1345),
    (400, 1330),
    (350, 1240),
    (345, 900),
    (355, 600),
]


def backpack(rng: np.random.Generator) -> Render:
    """Waxed-canvas backpack, front view, with grab loop, zips and a leather patch."""
    h, w = 1600, 1300
    cx = 650
    bg = studio_background(h, w, (0.9, 0.9, 0.9), (0.96, 0.96, 0.958), 0.6, rng)
    xs, ys = grid(h, w)
    body_pts = smooth_curve(BACKPACK_BODY)
    body = poly_mask(h, w, body_pts)
    pocket_pts = smooth_curve(
        [(430, 860), (650, 835), (870, 860), (895, 1050), (880, 1260), (650, 1280), (420, 1260), (405, 1050)]
    )
    pocket = poly_mask(h, w, pocket_pts)
    loop, loop_n, _ = tube(xs, ys, cx, 350, 78, 82, 13)
    loop *= coverage(336 - ys)
    straps = np.zeros((h, w), np.float32)
    for side in (-1, 1):
        straps = np.maximum(
            straps,
            poly_mask(
                h,
                w,
                smooth_curve(
                    [
                        (cx + side * 280, 520),
                        (cx + side * 330, 700),
                        (cx + side * 345, 1000),
                        (cx + side * 330, 1230),
                        (cx + side * 300, 1232),
                        (cx + side * 300, 1000),
                        (cx + side * 290, 700),
                        (cx + side * 250, 520),
                    ]
                ),
            ),
        )
    silhouette = np.maximum.reduce([body, loop, straps])
    bg = standing_shadow(bg, silhouette, cx, 1340, 300, 45)

    olive = np.array([0.33, 0.36, 0.22], np.float32)
    canvas = fabric_texture(h, w, rng, 3.6, 0.0)
    wear = value_noise(h, w, rng, 90, 3)
    height = inflate(body, 170, 12) + 10 * wear + 0.9 * canvas
    n = height_normals(height, 1.0)
    albedo = olive * (1 + 0.06 * canvas + 0.07 * wear)[..., None]
    shell = shade(n, albedo, spec=0.12, shininess=14, ambient=0.4, diffuse=0.62)
    p_height = inflate(pocket, 90, 8) + 0.9 * canvas + 6 * wear
    pocket_col = shade(
        height_normals(p_height, 1.0), albedo, spec=0.12, shininess=14, ambient=0.4, diffuse=0.62
    )
    strap_n = height_normals(inflate(straps, 25, 4), 1.0)
    strap_col = shade(strap_n, (0.07, 0.07, 0.065), spec=0.1, ambient=0.55)

    img = over(bg, strap_col, straps)
    img = over(img, shell, body)
    ao = 1 - 0.45 * (blur(pocket, 10) - pocket).clip(0, 1) * 2
    img *= ao[..., None]
    img = over(img, pocket_col, pocket)
    # Zips: dark tape with metal teeth across the pocket and around the top.
    zips = np.zeros((h, w), np.uint8)
    zip_curves = (
        [(440, 895), (650, 872), (860, 895)],
        [(372, 700), (430, 470), (650, 395), (870, 470), (928, 700)],
    )
    for curve in zip_curves:
        pts = np.round(smooth_curve(curve, 300, closed=False) * 16).astype(np.int32)
        cv2.polylines(zips, [pts], False, 255, 12, cv2.LINE_AA, shift=4)
    zip_cov = zips.astype(np.float32) / 255
    teeth = 0.1 + 0.25 * (np.sin(xs * 1.3 + ys * 1.3) > 0)
    img = over(
        img, np.broadcast_to(teeth[..., None] * np.array([1, 1, 0.95], np.float32), img.shape), zip_cov
    )
    pullers = []
    for x, y in ((860, 905), (928, 715)):
        puller = coverage(ellipse_sd(xs, ys, x, y + 30, 9, 30))
        pullers.append(puller)
        env = studio_env(reflect_view(ellipsoid_normals(xs, ys, x, y + 30, 9, 30)))
        img = over(img, env * np.array([0.7, 0.68, 0.6], np.float32), puller)
    patch = coverage(np.minimum(95 - np.abs(xs - cx), 48 - np.abs(ys - 1060)))
    patch_n = height_normals(blur(patch, 5) * 12, 1.0)
    tag = label_image(190, 96, (0.55, 0.36, 0.2), [("URBAN", 40, 0.22)], ink=(0.35, 0.21, 0.11), border=False)
    tag_full = np.zeros((h, w, 3), np.float32)
    tag_full[1012:1108, cx - 95 : cx + 95] = tag[..., :3]
    leather = shade(patch_n, tag_full, spec=0.2, shininess=20, ambient=0.45)
    img = over(img, leather, patch)
    loop_col = shade(loop_n, (0.07, 0.07, 0.065), spec=0.08, ambient=0.55)
    img = over(img, loop_col, loop)
    return img, stacked(straps, body, pocket, zip_cov, *pullers, patch, loop)


def espresso_cup_photo() -> np.ndarray:
    """The real photo: scikit-image's ``coffee`` sample (CC0, Rachel Michetti), unchanged."""
    from skimage import data  # dev dependency; only this image needs it

    return data.coffee()


PRODUCTS: dict[str, Callable[[np.random.Generator], Render]] = {
    "steel_bottle": steel_bottle,
    "mug": ceramic_mug,
    "glass_bottle": glass_bottle,
    "headphones": headphones,
    "sneaker": sneaker,
    "candle": candle,
    "candle_lit": lambda rng: candle(rng, lit=True),
    "cushion": cushion,
    "tshirt": tshirt,
    "backpack": backpack,
}


def bbox_of(mask: np.ndarray, margin: int = 12) -> tuple[int, int, int, int]:
    """x0,y0,x1,y1 (exclusive) around a product mask, as a merchant would draw it."""
    ys, xs = np.nonzero(mask > 0.5)
    h, w = mask.shape
    return (
        max(int(xs.min()) - margin, 0),
        max(int(ys.min()) - margin, 0),
        min(int(xs.max()) + 1 + margin, w),
        min(int(ys.max()) + 1 + margin, h),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", nargs="*", help="render only these images (names without .jpg)")
    args = parser.parse_args()
    out: Path = args.out
    truth = out.parent / TRUTH_DIR
    out.mkdir(parents=True, exist_ok=True)
    truth.mkdir(exist_ok=True)
    start = time.perf_counter()
    for seed, (name, render) in enumerate(PRODUCTS.items()):
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        rng = np.random.default_rng(1000 + seed)
        if name == "mug":  # the catalog's recolor_mask example: the glazed exterior, white = recolor
            masks: list[np.ndarray] = []
            image, alpha = ceramic_mug(rng, mask_out=masks)
            mask = (np.clip(masks[0], 0, 1) * 255 + 0.5).astype(np.uint8)
            Image.fromarray(mask, "L").save(out / "mug_recolor_mask.png", optimize=True)
        else:
            image, alpha = render(rng)
        rgb = camera(image, rng)
        size = save_jpeg(out / f"{name}.jpg", rgb)
        save_truth(truth / f"{name}.png", alpha)
        took = time.perf_counter() - t0
        print(f"{name}.jpg  {rgb.shape[1]}x{rgb.shape[0]}  {size / 1000:.0f} KB  {took:.1f}s")
        if name == "backpack":  # body, grab handle and side straps: the whole product
            print(f"  backpack bbox (catalog.csv): {','.join(map(str, bbox_of(alpha)))}")
    if not args.only or "espresso_cup" in args.only:
        size = save_jpeg(out / "espresso_cup.jpg", espresso_cup_photo(), quality=92)
        print(f"espresso_cup.jpg  600x400  {size / 1000:.0f} KB  (real photo)")
    # A file with an image extension that is not an image, for catalog_with_errors.csv.
    (out / "not_an_image.jpg").write_text("This is a text file pretending to be a JPEG.\n")
    print(f"total {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
