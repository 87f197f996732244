"""Recolor accuracy and speed on synthetic shaded objects with known materials.

Run: ``.venv/bin/python bench/recolor_accuracy.py`` (prints markdown for docs/benchmarks.md).

Objects: a lit, textured sphere (diffuse + fill light, fabric texture, noise, a specular
highlight) with a flat off-white label, rendered in linear light for several base materials and
two lightings. Accuracy: delta-E 2000 (colour-science) between the target and the median CIELAB
color of (a) the whole known material and (b) the recolored pixels (auto mask = 255 inside the
known material); shading: SSIM (scikit-image) of L* / median(L*) before vs after, over the
recolored pixels. Speed: 2048 x 2048, OpenCV limited to one thread, best and median of 21 runs.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from packshot.colors import parse_color  # noqa: E402
from packshot.types import Rendered  # noqa: E402
from stages.recolor import find_main_material, recolor, recolor_rgb  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import colour

BASES = {"red cotton": (178, 40, 40), "blue denim": (40, 60, 150), "beige canvas": (200, 180, 140),
         "grey felt": (128, 128, 128), "olive nylon": (95, 105, 50)}
LIGHTINGS = {"studio (fill 0.35)": 0.35, "harsh (fill 0.15)": 0.15}
MID = ["Navy", "Forest Green", "Burgundy", "Mustard", "Sage", "Dusty Rose", "Camel", "Teal", "Charcoal",
       "Heather Grey", "Coral", "Royal Blue", "Terracotta", "Olive", "Lilac"]
EXTREMES = ["Black", "Jet Black", "White", "Off-White"]


def _lin(c):
    c = np.asarray(c, np.float64) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb(x):
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055) * 255


def shaded_object(base, size, fill, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    r = 0.4
    d2 = ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / r**2
    inside = d2 < 1
    nz = np.sqrt(np.clip(1 - d2, 0, 1))
    light = np.array([-0.4, -0.5, 0.77]) / np.linalg.norm([-0.4, -0.5, 0.77])
    nx, ny = (xx - 0.5) / r, (yy - 0.5) / r
    diffuse = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
    freq = 160.0
    texture = 1 + 0.05 * np.sin(xx * freq) * np.sin(yy * freq) + rng.normal(0, 0.02, (size, size))
    shade = (fill + (1 - fill) * diffuse) * texture
    lin = _lin(base) * shade[..., None]
    half = (light + [0, 0, 1]) / np.linalg.norm(light + [0, 0, 1])
    lin = lin + (np.clip(nx * half[0] + ny * half[1] + nz * half[2], 0, 1) ** 60 * 0.5)[..., None]
    label = inside & (np.abs(xx - 0.5) < 0.1) & (np.abs(yy - 0.65) < 0.06)
    lin[label] = _lin((240, 238, 230)) * shade[label][:, None]
    rgb = np.where(inside[..., None], _srgb(lin), 255).round().astype(np.uint8)
    return rgb, inside.astype(np.uint8) * 255, inside & ~label, label


def _lab(rgb):
    return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.asarray(rgb, np.float64) / 255))


def _de(rgb, region, target):
    return float(colour.delta_E(np.median(_lab(rgb[region]), axis=0), _lab(target), method="CIE 2000"))


def _ssim(before, after, region):
    lb, la = _lab(before)[..., 0], _lab(after)[..., 0]
    rb = np.where(region, lb / np.median(lb[region]), 0)
    ra = np.where(region, la / np.median(la[region]), 0)
    _, full = structural_similarity(rb, ra, data_range=max(rb.max(), ra.max()), full=True)
    return float(full[region].mean())


def accuracy(size=256):
    rows = {}
    for light_name, fill in LIGHTINGS.items():
        for base_name, base in BASES.items():
            rgb, alpha, material, label = shaded_object(base, size, fill)
            mask = find_main_material(rgb, alpha)
            recolored = material & (mask == 255)
            coverage = recolored.sum() / material.sum()
            leak = int((mask[label] > 0).sum())
            for name in MID + EXTREMES:
                color = parse_color(name)
                out = recolor(Rendered(rgb, alpha, kind="packshot", preset="x"), color)
                rows[(light_name, base_name, name)] = dict(
                    de_material=_de(out.rgb, material, color.rgb),
                    de_recolored=_de(out.rgb, recolored, color.rgb),
                    ssim=_ssim(rgb, out.rgb, recolored), coverage=coverage, label_leak=leak,
                    label_same=bool(np.array_equal(out.rgb[label], rgb[label])),
                )
    return rows


def speed(repeats=21):
    cv2.setNumThreads(1)
    rgb, alpha, _, _ = shaded_object((178, 40, 40), 2048, 0.35)
    item = Rendered(rgb, alpha, kind="packshot", preset="x")
    navy = parse_color("Navy")
    mask = find_main_material(rgb, alpha)

    def best(fn):
        # Wall time, and the process's CPU time: on a shared machine the wall time includes waiting
        # for a core, the CPU time of this single-threaded work does not.
        times, cpu = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            fn()
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        return min(times), statistics.median(times), statistics.median(cpu)

    return {
        "recolor, material mask known (per extra variant)": best(lambda: recolor_rgb(rgb, mask, navy.rgb)),
        "find main material (once per image)": best(lambda: find_main_material(rgb, alpha)),
        "recolor, automatic (find + recolor)": best(lambda: recolor(item, navy)),
    }


def main():
    rows = accuracy()
    print("### Accuracy (256 x 256 objects; delta-E 2000 of the median color, colour-science)\n")
    print("| lighting | targets | n | median dE (material) | max dE (material) | median dE (recolored) "
          "| max dE (recolored) | min SSIM | median SSIM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for light in LIGHTINGS:
        for group, names in (("mid-lightness", MID), ("Black, Jet Black", EXTREMES[:2]),
                             ("White, Off-White", EXTREMES[2:])):
            sel = [v for (lt, _, n), v in rows.items() if lt == light and n in names]
            dm = [v["de_material"] for v in sel]
            dr = [v["de_recolored"] for v in sel]
            ss = [v["ssim"] for v in sel]
            print(f"| {light} | {group} | {len(sel)} | {statistics.median(dm):.2f} | {max(dm):.2f} | "
                  f"{statistics.median(dr):.2f} | {max(dr):.2f} | {min(ss):.3f} | "
                  f"{statistics.median(ss):.3f} |")
    print("\n### Per material (studio lighting, mid-lightness targets)\n")
    print("| material | mask coverage of material | label pixels in mask | label unchanged | max dE "
          "| min SSIM |")
    print("|---|---|---|---|---|---|")
    for base in BASES:
        sel = [v for (lt, b, n), v in rows.items() if lt == next(iter(LIGHTINGS)) and b == base and n in MID]
        same = all(v["label_same"] for v in sel)
        print(f"| {base} | {sel[0]['coverage']:.1%} | {sel[0]['label_leak']} | {same} | "
              f"{max(v['de_recolored'] for v in sel):.2f} | {min(v['ssim'] for v in sel):.3f} |")
    worst = sorted(((v["de_recolored"], k) for k, v in rows.items() if k[2] in MID), reverse=True)[:3]
    print("\nWorst mid-lightness cases (dE recolored):", ", ".join(f"{k[1]} -> {k[2]} ({k[0]}): {d:.2f}"
                                                               for d, k in worst))
    print("\n### Speed (2048 x 2048, one OpenCV thread, seconds: best / median of 21)\n")
    print("| step | best | median | median CPU time |")
    print("|---|---|---|---|")
    for name, (b, m, c) in speed().items():
        print(f"| {name} | {b:.3f} | {m:.3f} | {c:.3f} |")


if __name__ == "__main__":
    main()
