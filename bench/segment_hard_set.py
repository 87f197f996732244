"""The harder segmentation evaluation set: the photos on which the classic cutout used to fail.

Categories (``CATEGORIES``), each drawn for several seeds, all with exact alpha (drawn at 4x and
area-averaged) like the studio set, then lit, blurred a little like a lens, given sensor noise and
JPEG-compressed:

- ``light_on_white``: off-white, cream and pale products on white backdrops;
- ``light_grey``: light products on light-grey backdrops of almost the same level;
- ``backdrop_interior``: products whose middle is the backdrop's color (a white cushion with a
  piped seam, a white sneaker with a dark sole, a white box with printed edges): only fabric
  texture and soft shading tell them apart from a hole;
- ``furry``: pom-poms, plush and knitted edges: thousands of sub-pixel hairs or a bumpy outline;
- ``thin``: lamps on thin stems, glasses, a pendant on a thin chain (its loop is a real hole), hangers;
- ``glass``: clear glasses and bottles that show the refracted backdrop (not in the IoU target);
- ``non_studio``: products on wood tables, tiled floors, shelves and carpet that reach the frame's
  edges; the honest answer there is "needs review".

``make_hard_sample(category, seed)`` returns (photo, alpha, product colors), like
``make_segment_evalset.make_sample``.
"""

from __future__ import annotations

import cv2
import numpy as np

from bench.make_segment_evalset import SHAPES, SS, _draw_shape, _product_colors

CATEGORIES = ["light_on_white", "light_grey", "backdrop_interior", "furry", "thin", "glass", "non_studio"]
LIGHT_PALETTE = [(236, 232, 222), (228, 226, 230), (240, 228, 205), (222, 228, 232), (232, 222, 226),
                 (214, 214, 210), (245, 240, 232), (226, 232, 220)]
FUR_PALETTE = [(150, 110, 75), (226, 214, 192), (120, 120, 125), (200, 170, 130), (70, 55, 45)]


def _flat_or_gradient(h: int, w: int, rng: np.random.Generator, level: tuple[float, float]) -> np.ndarray:
    """A studio backdrop around ``level`` (min, max): flat, or a soft top-to-bottom ramp and vignette."""
    base = rng.uniform(*level)
    tint = rng.uniform(-2.5, 2.5, 3)
    if rng.random() < 0.5:
        return np.full((h, w, 3), base, np.float32) + tint.astype(np.float32)
    ramp = np.linspace(base - rng.uniform(4, 12), min(base + 4, 254), h, dtype=np.float32)[:, None, None]
    vignette = 1 - rng.uniform(0.01, 0.04) * (np.linspace(-1, 1, w)[None, :, None] ** 2)
    return (ramp * vignette + tint).astype(np.float32) * np.ones((1, 1, 3), np.float32)


def _shadow(alpha: np.ndarray, rng: np.random.Generator, strength: tuple[float, float] = (0.2, 0.45)):
    """A soft contact shadow under the product (``HxW`` float32, share of light removed)."""
    h, w = alpha.shape
    ys, xs = np.nonzero(alpha > 0.5)
    bottom, cx, half = ys.max(), (xs.min() + xs.max()) // 2, (xs.max() - xs.min()) // 2
    shadow = np.zeros((h, w), np.float32)
    cv2.ellipse(shadow, (int(cx), int(bottom)), (int(half * 0.9), max(4, h // 60)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(shadow, (0, 0), h / 90) * rng.uniform(*strength)


def _downsample(big: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(big.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)


def _fabric(h: int, w: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Fine weave texture ``HxW`` float32 (zero mean), ``amount`` levels of standard deviation."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(2.5, 4.5)
    weave = np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.8)
    texture = 0.6 * weave + grain / max(float(grain.std()), 1e-6)
    return texture * (amount / max(float(texture.std()), 1e-6))


def _puffy_shading(mask: np.ndarray, depth: float) -> np.ndarray:
    """Darkening ``HxW`` float32 in levels: 0 in the middle of ``mask``, ``depth`` at its outline."""
    dist = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 5)
    norm = dist / max(float(dist.max()), 1.0)
    return depth * (1 - np.sqrt(np.clip(norm, 0, 1)))


def _light_products(h, w, rng, seed, backdrop_level, shift):
    kind = SHAPES[(3 * seed + shift) % len(SHAPES)]  # 6 seeds: six different shapes
    alpha = _downsample(_draw_shape(kind, w * SS, h * SS, rng), w, h)
    base = LIGHT_PALETTE[seed % len(LIGHT_PALETTE)]
    bg = _flat_or_gradient(h, w, rng, backdrop_level)
    level = float(bg.mean())
    # light products sit close to their backdrop: their lit middle (shading peaks at 1.1x the base)
    # is the backdrop's level give or take a few, their sides fall off darker
    peak = level + rng.uniform(-8, 2)
    base = np.array(base, np.float32) * peak / 1.1 / max(np.mean(base), 1)
    fg = _product_colors(h, w, rng, tuple(np.clip(base, 0, 255)))
    return kind, alpha, fg, bg


def _backdrop_interior(h, w, rng, seed):
    kinds = ["cushion", "sneaker", "white_box"]
    kind = kinds[seed % len(kinds)]
    bg = _flat_or_gradient(h, w, rng, (236, 252))
    level = float(bg[h // 2, w // 2].mean())
    big = np.zeros((h * SS, w * SS), np.uint8)
    s, cx, cy = min(w, h) * SS, w * SS // 2, int(h * SS * 0.52)
    fg = np.zeros((h, w, 3), np.float32)
    fg[:] = level + rng.uniform(-2, 2)
    if kind == "cushion":
        half = int(s * rng.uniform(0.28, 0.34))
        pts = np.array([[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half],
                        [cx - half, cy + half]], np.float32)
        pts += rng.uniform(-0.04, 0.04, (4, 2)).astype(np.float32) * s
        cv2.fillPoly(big, [pts.astype(np.int32)], 255)
        big = cv2.GaussianBlur(big, (0, 0), s * 0.02)  # rounded corners
        big = np.where(big > 127, 255, 0).astype(np.uint8)
        alpha = _downsample(big, w, h)
        body = alpha > 0.5
        fg -= _puffy_shading(body, rng.uniform(8, 18))[..., None]
        piping = body & ~(cv2.erode(body.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)
        fg[piping] = rng.uniform(150, 205, 3)
        if rng.random() < 0.5:  # tufting buttons
            for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
                bx, by = w // 2 + dx * half // (SS * 3), int(h * 0.52) + dy * half // (SS * 3)
                cv2.circle(fg, (bx, by), max(3, w // 160), tuple(float(level - 40) for _ in range(3)), -1)
    elif kind == "sneaker":
        cv2.ellipse(big, (cx, cy + int(s * 0.08)), (int(s * 0.33), int(s * 0.11)), 0, 0, 360, 255, -1)
        cv2.ellipse(big, (cx - int(s * 0.12), cy - int(s * 0.03)), (int(s * 0.17), int(s * 0.17)), 0, 0, 360,
                    255, -1)
        alpha = _downsample(big, w, h)
        body = alpha > 0.5
        fg -= _puffy_shading(body, rng.uniform(5, 12))[..., None]
        sole = body & (np.arange(h)[:, None] > int(h * 0.52) + int(min(w, h) * 0.13))
        fg[sole] = rng.choice([(40, 40, 42), (170, 120, 70), (120, 120, 125)])
        edge = body & ~(cv2.erode(body.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
        fg[edge & ~sole] = level - rng.uniform(35, 70)  # stitched outline of the upper
        lx = w // 2 - int(min(w, h) * 0.12)
        for i in range(5):  # laces
            y = int(h * 0.40) + i * h // 45
            cv2.line(fg, (lx - w // 30, y), (lx + w // 30, y + 2), (90.0, 90.0, 95.0), 2)
    else:
        rect = ((cx, cy), (s * 0.4, s * 0.34), float(rng.uniform(-15, 15)))
        cv2.fillPoly(big, [cv2.boxPoints(rect).astype(np.int32)], 255)
        alpha = _downsample(big, w, h)
        body = alpha > 0.5
        fg -= _puffy_shading(body, rng.uniform(3, 8))[..., None]
        rim = body & ~(cv2.erode(body.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0)
        fg[rim] = rng.uniform(120, 200, 3)
        for i in range(5):  # a printed logo: a row of dark letters
            x = w // 2 - w // 12 + i * w // 60
            cv2.rectangle(fg, (x, int(h * 0.5)), (x + w // 90, int(h * 0.54)), (60.0, 60.0, 70.0), -1)
    fg += _fabric(h, w, rng, rng.uniform(1.2, 2.5))[..., None]
    return kind, alpha, fg, bg


def _furry(h, w, rng, seed):
    kinds = ["pompom", "plush", "knit"]
    kind = kinds[seed % len(kinds)]
    s, cx, cy = min(w, h) * SS, w * SS // 2, int(h * SS * 0.52)
    big = np.zeros((h * SS, w * SS), np.uint8)
    radius = int(s * rng.uniform(0.2, 0.26))
    if kind == "knit":  # a knitted beanie: a bumpy outline of stitches
        angles = np.linspace(0, 2 * np.pi, 720, endpoint=False)
        bumps = 1 + 0.025 * np.sin(angles * rng.integers(40, 70)) + 0.01 * rng.normal(0, 1, angles.size)
        ry = radius * bumps * np.where(np.sin(angles) > 0, 0.6, 1.0)  # flat brim below
        pts = np.stack([cx + radius * 1.1 * bumps * np.cos(angles), cy + ry * np.sin(angles)], axis=1)
        cv2.fillPoly(big, [pts.astype(np.int32)], 255)
    else:
        if kind == "plush":  # a teddy-like body: head plus ears
            cv2.circle(big, (cx, cy + radius // 3), radius, 255, -1)
            for dx in (-1, 1):
                cv2.circle(big, (cx + dx * int(radius * 0.8), cy - int(radius * 0.55)), radius // 3, 255, -1)
        else:
            cv2.circle(big, (cx, cy), radius, 255, -1)
        body = big > 0
        edge_y, edge_x = np.nonzero(body & ~(cv2.erode(big, np.ones((3, 3), np.uint8)) > 0))
        pick = rng.choice(edge_x.size, size=min(edge_x.size, 9000), replace=False)
        moments = cv2.moments(big, binaryImage=True)
        mx, my = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
        for i in pick:  # hairs pointing outwards, a little curled
            x, y = edge_x[i], edge_y[i]
            direction = np.arctan2(y - my, x - mx) + rng.normal(0, 0.35)
            length = rng.uniform(0.01, 0.045) * s
            bend = rng.normal(0, 0.3)
            x1, y1 = x + length * 0.5 * np.cos(direction), y + length * 0.5 * np.sin(direction)
            x2 = x1 + length * 0.5 * np.cos(direction + bend)
            y2 = y1 + length * 0.5 * np.sin(direction + bend)
            thick = int(rng.integers(1, 4))
            cv2.line(big, (int(x), int(y)), (int(x1), int(y1)), 255, thick)
            cv2.line(big, (int(x1), int(y1)), (int(x2), int(y2)), 255, max(1, thick - 1))
    alpha = _downsample(big, w, h)
    base = FUR_PALETTE[seed % len(FUR_PALETTE)]
    fg = _product_colors(h, w, rng, base)
    fg += _fabric(h, w, rng, 6.0)[..., None]
    bg = _flat_or_gradient(h, w, rng, (214, 252))
    return kind, alpha, fg, bg


def _thin(h, w, rng, seed):
    kinds = ["lamp", "glasses", "pendant", "hanger"]
    kind = kinds[seed % len(kinds)]
    s, cx, cy = min(w, h) * SS, w * SS // 2, int(h * SS * 0.52)
    big = np.zeros((h * SS, w * SS), np.uint8)
    t = int(SS * rng.uniform(2.0, 5.0))  # the thin part's width in supersampled pixels (2-5 px final)
    if kind == "lamp":
        cv2.ellipse(big, (cx, cy - int(s * 0.22)), (int(s * 0.16), int(s * 0.1)), 0, 180, 360, 255, -1)
        cv2.line(big, (cx, cy - int(s * 0.22)), (cx + int(s * 0.05), cy + int(s * 0.3)), 255, t)
        cv2.ellipse(big, (cx + int(s * 0.05), cy + int(s * 0.31)), (int(s * 0.12), int(s * 0.025)), 0, 0, 360,
                    255, -1)
    elif kind == "glasses":
        for dx in (-1, 1):
            cv2.ellipse(big, (cx + dx * int(s * 0.15), cy), (int(s * 0.12), int(s * 0.09)), 0, 0, 360, 255,
                        max(t, SS * 3))
            cv2.line(big, (cx + dx * int(s * 0.27), cy - int(s * 0.03)),
                     (cx + dx * int(s * 0.42), cy - int(s * 0.06)), 255, t)
        cv2.ellipse(big, (cx, cy - int(s * 0.02)), (int(s * 0.035), int(s * 0.025)), 0, 180, 360, 255, t)
    elif kind == "pendant":
        ax, ay, top = int(s * 0.2), int(s * 0.3), cy - int(s * 0.05)
        cv2.ellipse(big, (cx, top), (ax, ay), 0, 200, 340, 255, t)
        end_x, end_y = int(ax * np.cos(np.radians(20))), top - int(ay * np.sin(np.radians(20)))
        for dx in (-1, 1):  # the chain closes into a loop: its middle is a real hole
            cv2.line(big, (cx + dx * end_x, end_y), (cx, cy + int(s * 0.22)), 255, t)
        cv2.circle(big, (cx, cy + int(s * 0.27)), int(s * 0.05), 255, -1)
    else:
        cv2.line(big, (cx - int(s * 0.35), cy + int(s * 0.2)), (cx, cy - int(s * 0.1)), 255, t)
        cv2.line(big, (cx + int(s * 0.35), cy + int(s * 0.2)), (cx, cy - int(s * 0.1)), 255, t)
        bar = cy + int(s * 0.2)
        cv2.line(big, (cx - int(s * 0.35), bar), (cx + int(s * 0.35), bar), 255, t)
        cv2.ellipse(big, (cx + int(s * 0.03), cy - int(s * 0.16)), (int(s * 0.04), int(s * 0.06)), 0, 90, 400,
                    255, t)
    alpha = _downsample(big, w, h)
    palette = [(30, 30, 32), (180, 150, 60), (150, 150, 155), (120, 60, 40), (200, 200, 205)]
    fg = _product_colors(h, w, rng, palette[seed % len(palette)])
    bg = _flat_or_gradient(h, w, rng, (214, 252))
    return kind, alpha, fg, bg


def _glass(h, w, rng, seed):
    kinds = ["wine_glass", "bottle", "tumbler"]
    kind = kinds[seed % len(kinds)]
    s, cx, cy = min(w, h) * SS, w * SS // 2, int(h * SS * 0.52)
    big = np.zeros((h * SS, w * SS), np.uint8)
    if kind == "wine_glass":
        cv2.ellipse(big, (cx, cy - int(s * 0.15)), (int(s * 0.13), int(s * 0.17)), 0, 0, 180, 255, -1)
        cv2.rectangle(big, (cx - int(s * 0.13), cy - int(s * 0.32)), (cx + int(s * 0.13), cy - int(s * 0.15)),
                      255, -1)
        cv2.line(big, (cx, cy), (cx, cy + int(s * 0.28)), 255, SS * 6)
        cv2.ellipse(big, (cx, cy + int(s * 0.29)), (int(s * 0.1), int(s * 0.02)), 0, 0, 360, 255, -1)
    elif kind == "bottle":
        bw, bh = int(s * 0.13), int(s * 0.3)
        cv2.rectangle(big, (cx - bw, cy - bh // 2), (cx + bw, cy + bh), 255, -1)
        cv2.ellipse(big, (cx, cy - bh // 2), (bw, bw // 2), 0, 180, 360, 255, -1)
        cv2.rectangle(big, (cx - bw // 3, cy - bh), (cx + bw // 3, cy - bh // 2), 255, -1)
    else:
        pts = np.array([[cx - int(s * 0.15), cy - int(s * 0.25)], [cx + int(s * 0.15), cy - int(s * 0.25)],
                        [cx + int(s * 0.12), cy + int(s * 0.28)], [cx - int(s * 0.12), cy + int(s * 0.28)]],
                       np.int32)
        cv2.fillPoly(big, [pts], 255)
    alpha = _downsample(big, w, h)
    bg = _flat_or_gradient(h, w, rng, (214, 252))
    body = alpha > 0.5
    # what the glass shows: the backdrop, mirrored and dimmed, a tint, dark rims, bright streaks
    fg = np.ascontiguousarray(bg[::-1]) * rng.uniform(0.8, 0.95) + rng.uniform(-6, 6, 3).astype(np.float32)
    dist = cv2.distanceTransform(body.astype(np.uint8), cv2.DIST_L2, 5)
    fg -= (rng.uniform(50, 110) * np.exp(-dist / rng.uniform(1.5, 3.5)))[..., None]
    xs = np.nonzero(body.any(axis=0))[0]
    for frac in (0.25, 0.7):
        x = int(xs.min() + frac * (xs.max() - xs.min()))
        fg[:, max(x - 2, 0) : x + 3] += 35
    return kind, alpha, np.clip(fg, 0, 255), bg


def _surface(h, w, rng, kind):
    """A non-studio background ``HxWx3`` float32 that reaches every edge of the frame."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1 + 0.12 * np.linspace(-1, 1, w)[None, :] * rng.choice([-1, 1])
    if kind in ("wood", "shelf"):
        warp = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 25) * 60
        grain = np.sin((yy + warp) * rng.uniform(0.15, 0.35)) + 0.5 * rng.normal(0, 1, (h, w))
        grain = cv2.GaussianBlur(grain.astype(np.float32), (0, 0), 1.2)
        woods = [(150, 100, 60), (185, 145, 100), (110, 70, 45), (200, 170, 130)]
        base = np.array(woods[rng.integers(len(woods))], np.float32)
        out = base * (1 + 0.08 * grain)[..., None]
        seams = (yy % rng.integers(140, 240)) < 2  # planks
        out[seams] *= 0.6
        if kind == "shelf":  # a painted wall above the shelf board
            board = int(h * rng.uniform(0.6, 0.72))
            wall = np.array(rng.uniform(190, 235, 3), np.float32)
            out[:board] = wall + rng.normal(0, 2.0, (board, w, 1)).astype(np.float32)
            out[board : board + 6] *= 0.55
    elif kind == "tiles":
        base = np.array(rng.uniform(150, 215, 3), np.float32)
        tile = int(rng.integers(110, 200))
        ty, tx = (yy // tile).astype(int), (xx // tile).astype(int)
        per_tile = rng.uniform(0.9, 1.08, (ty.max() + 1, tx.max() + 1))
        out = base * per_tile[ty, tx][..., None] + rng.normal(0, 4, (h, w, 1)).astype(np.float32)
        grout = ((yy % tile) < 4) | ((xx % tile) < 4)
        out[grout] = base * 0.55
    else:  # carpet: fibres
        carpets = [(120, 90, 80), (90, 100, 120), (160, 150, 130)]
        base = np.array(carpets[rng.integers(len(carpets))], np.float32)
        fibres = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.9)
        out = base * (1 + 0.25 * fibres / max(float(fibres.std()), 1e-6))[..., None]
    return np.clip(out * light[..., None], 0, 255).astype(np.float32)


def _non_studio(h, w, rng, seed):
    from bench.make_segment_evalset import PALETTE

    surfaces = ["wood", "tiles", "shelf", "carpet"]
    kind = f"{SHAPES[seed % len(SHAPES)]}_on_{surfaces[seed % len(surfaces)]}"
    alpha = _downsample(_draw_shape(SHAPES[seed % len(SHAPES)], w * SS, h * SS, rng), w, h)
    fg = _product_colors(h, w, rng, PALETTE[(seed * 5) % len(PALETTE)])
    bg = _surface(h, w, rng, surfaces[seed % len(surfaces)])
    if rng.random() < 0.5:  # clutter: another object partly in the frame
        x0 = int(rng.choice([0, w - w // 5]))
        cv2.rectangle(bg, (x0, int(h * 0.2)), (x0 + w // 5, int(h * 0.7)), tuple(rng.uniform(40, 220, 3)), -1)
    return kind, alpha, fg, bg


def make_hard_sample(category: str, seed: int, size: tuple[int, int] = (960, 720)):
    """(name suffix, photo RGB ``HxWx3 uint8`` after JPEG, alpha ``HxW uint8``, colors ``HxWx3 uint8``)."""
    rng = np.random.default_rng(1000 * (CATEGORIES.index(category) + 1) + seed)
    w, h = size
    if category == "light_on_white":
        kind, alpha, fg, bg = _light_products(h, w, rng, seed, (242, 254), 0)
    elif category == "light_grey":
        kind, alpha, fg, bg = _light_products(h, w, rng, seed, (200, 228), 1)
    elif category == "backdrop_interior":
        kind, alpha, fg, bg = _backdrop_interior(h, w, rng, seed)
    elif category == "furry":
        kind, alpha, fg, bg = _furry(h, w, rng, seed)
    elif category == "thin":
        kind, alpha, fg, bg = _thin(h, w, rng, seed)
    elif category == "glass":
        kind, alpha, fg, bg = _glass(h, w, rng, seed)
    elif category == "non_studio":
        kind, alpha, fg, bg = _non_studio(h, w, rng, seed)
    else:
        raise ValueError(f"unknown category {category!r}: use one of {', '.join(CATEGORIES)}")
    fg = np.clip(fg, 0, 255)
    bg = bg * (1 - _shadow(alpha, rng)[..., None])
    photo = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.4, 0.8))  # lens softness
    photo += rng.normal(0, rng.uniform(0.8, 2.5), photo.shape).astype(np.float32)  # sensor noise
    photo = np.clip(photo + 0.5, 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(75, 93))])
    assert ok
    photo = cv2.imdecode(jpg, cv2.IMREAD_COLOR)[..., ::-1]
    alpha8 = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)
    return kind, photo, alpha8, np.clip(fg + 0.5, 0, 255).astype(np.uint8)
