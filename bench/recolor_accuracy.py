"""Recolor accuracy and speed on synthetic shaded objects with known materials.

Run: ``.venv/bin/python bench/recolor_accuracy.py`` (prints markdown for docs/benchmarks.md). With
``PYTHONPATH`` pointing at another checkout it measures that code: the baseline's recolor takes no
``product`` or ``mode`` (detected), so its "relative" rows show what it does instead.

Relative colors (issue 22): each object is "photographed" in its base material, which is also the
product's own color (``photo_color``); its variants are compared with the photographed product
shifted to the target (:func:`shifted`, written out here from the model in
``stages/recolor/transform.py``: ``D = L* + 16`` scaled by ``D_target / D_own``, chroma rotated and
scaled by ``ab_target / ab_own``, or shifted for a neutral own color). Mean CIEDE2000 (colour-science)
over the lit mid-tones (material pixels between the median and the 90th percentile of L*); the own
color's variant against the photo over the whole product; SSIM of the light pattern
``(L* + 16) / median`` over the recolored pixels.

Objects: a lit, textured sphere (diffuse + fill light, fabric texture, noise, a specular
highlight) with a flat off-white label, rendered in linear light for several base materials and
two lightings. Accuracy: delta-E 2000 (colour-science) between the target and the median CIELAB
color of (a) the whole known material and (b) the recolored pixels (auto mask = 255 inside the
known material); shading: SSIM (scikit-image) of L* / median(L*) before vs after, over the
recolored pixels. Speed: 2048 x 2048, OpenCV limited to one thread, best and median of 21 runs.
"""

from __future__ import annotations

import inspect
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
from packshot.types import ColorVariant, Product, Rendered  # noqa: E402
from stages.recolor import find_main_material, recolor, recolor_rgb, recolor_variants  # noqa: E402

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


def shifted(lab, base, target):
    """The photographed product (CIELAB ``...x3``) moved from its own color ``base`` to ``target``."""
    d = lab[..., 0] + 16
    k = (target[0] + 16) / (base[0] + 16)
    zb = complex(base[1], base[2]) / (base[0] + 16)
    zt = complex(target[1], target[2]) / (target[0] + 16)
    t = float(np.clip((abs(zb) - 0.05) / 0.15, 0, 1))
    z = (lab[..., 1] + 1j * lab[..., 2]) / d
    z2 = t * z * (zt / zb if zb else 0) + (1 - t) * (z + zt - zb)
    ab = z2 * d * k
    return np.stack([d * k - 16, ab.real, ab.imag], axis=-1)


def relative(size=256):
    """Per (lighting, base, target): dE of the lit mid-tones to the shifted photo, SSIM of the light
    pattern; per (lighting, base): dE of the own color's variant to the photo."""
    takes_product = "product" in inspect.signature(recolor_variants).parameters
    rows, own = {}, {}
    for light_name, fill in LIGHTINGS.items():
        for base_name, base in BASES.items():
            rgb, alpha, material, _ = shaded_object(base, size, fill)
            own_color = ColorVariant(name="Own", rgb=base)
            colors = [own_color, *[parse_color(n) for n in MID]]
            product = Product(sku="b", title="bench", images=["x.jpg"], colors=colors, photo_color=own_color,
                              source_file="bench", source_line=2)
            item = Rendered(rgb, alpha, kind="packshot", preset="x")
            kw = {"product": product, "mode": "relative"} if takes_product else {}
            outs = recolor_variants(item, colors, **kw)
            lab = _lab(rgb)
            region = material & (find_main_material(rgb, alpha) == 255)
            lo, hi = np.percentile(lab[..., 0][region], [50, 90])
            lit = region & (lab[..., 0] >= lo) & (lab[..., 0] <= hi)
            product_px = alpha > 0
            own[(light_name, base_name)] = float(np.mean(colour.delta_E(_lab(outs[0].rgb[product_px]),
                                                                        lab[product_px], method="CIE 2000")))
            for color, out in zip(colors[1:], outs[1:], strict=True):
                reference = shifted(lab[lit], _lab(base), _lab(color.rgb))
                de = float(np.mean(colour.delta_E(_lab(out.rgb[lit]), reference, method="CIE 2000")))
                ssim = _ssim_light(rgb, out.rgb, region)
                rows[(light_name, base_name, color.name)] = dict(de=de, ssim=ssim)
    return rows, own


def _ssim_light(before, after, region):
    lb, la = _lab(before)[..., 0] + 16, _lab(after)[..., 0] + 16
    rb = np.where(region, lb / np.median(lb[region]), 0)
    ra = np.where(region, la / np.median(la[region]), 0)
    _, full = structural_similarity(rb, ra, data_range=max(rb.max(), ra.max()), full=True)
    return float(full[region].mean())


def accuracy(size=256):
    rows = {}
    exact = {"mode": "exact-swatch"} if "mode" in inspect.signature(recolor).parameters else {}
    for light_name, fill in LIGHTINGS.items():
        for base_name, base in BASES.items():
            rgb, alpha, material, label = shaded_object(base, size, fill)
            mask = find_main_material(rgb, alpha)
            recolored = material & (mask == 255)
            coverage = recolored.sum() / material.sum()
            leak = int((mask[label] > 0).sum())
            for name in MID + EXTREMES:
                color = parse_color(name)
                out = recolor(Rendered(rgb, alpha, kind="packshot", preset="x"), color, **exact)
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
    rel, own = relative()
    print("### Relative colors (256 x 256 objects; the own color is each object's base material)\n")
    print("| lighting | own color's variant: max mean dE to the photo | variants: median / max mean dE of "
          "lit mid-tones to the shifted photo | min / median SSIM of the light pattern |")
    print("|---|---|---|---|")
    for light in LIGHTINGS:
        sel = [v for (lt, _, _), v in rel.items() if lt == light]
        de, ss = [v["de"] for v in sel], [v["ssim"] for v in sel]
        print(f"| {light} | {max(v for (lt, _), v in own.items() if lt == light):.2f} | "
              f"{statistics.median(de):.2f} / {max(de):.2f} | {min(ss):.3f} / {statistics.median(ss):.3f} |")
    worst = sorted(((v["de"], k) for k, v in rel.items()), reverse=True)[:3]
    print("\nWorst (dE to the shifted photo):",
          ", ".join(f"{k[1]} -> {k[2]} ({k[0]}): {d:.2f}" for d, k in worst))
    rows = accuracy()
    print("\n### Exact-swatch mode: accuracy (256 x 256 objects; delta-E 2000 of the median color, "
          "colour-science)\n")
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
