"""JPEG blocking and file size of the demo's packshots and color variants, per preset.

Run: ``.venv/bin/python bench/encode_blocking.py RUN_DIR`` where ``RUN_DIR`` is a finished demo run
(``packshot run catalogs/demo/catalog.csv --out RUN_DIR``): its ``cutout.png`` files are the inputs, so
the same cutouts feed every version of the code. With ``PYTHONPATH`` pointing at another checkout the
same script measures that code (copy ``stages/export/blocking.py`` there first: it only measures;
the recolor API of the baseline takes no ``product``, which is detected). Prints markdown for
docs/benchmarks.md.

Blockiness: :func:`stages.export.blocking.blockiness` (block-edge impairment ratio after Wu & Yuen
1997, worst of Y'CbCr; 1.0 = no blocking) of the decoded file over the product (matte >= 250, eroded
by 4 px so the outline does not count).
"""

from __future__ import annotations

import csv
import inspect
import io
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packshot.colors import parse_color  # noqa: E402
from packshot.types import Cutout, Product  # noqa: E402
from stages.export import compose_packshot, encode, load_presets  # noqa: E402
from stages.export.blocking import blockiness, chroma_blockiness  # noqa: E402
from stages.recolor import load_material_mask, recolor_variants  # noqa: E402

PRESETS = ["amazon-main", "shopify"]


def products(catalog: Path):
    with catalog.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["colors"]:
                colors = [parse_color(c) for c in row["colors"].split("|")]
                yield row, Product(sku=row["sku"], title=row["title"], images=row["image"].split("|"),
                                   colors=colors, source_file=str(catalog), source_line=2)


def main(run_dir: str, catalog: str = "catalogs/demo/catalog.csv") -> None:
    presets = load_presets()
    takes_product = "product" in inspect.signature(recolor_variants).parameters
    rows, seconds = [], 0.0
    for row, product in products(Path(catalog)):
        rgba = np.asarray(Image.open(Path(run_dir) / row["sku"] / "cutout.png").convert("RGBA"))
        cutout = Cutout(np.ascontiguousarray(rgba), backend="bench")
        photo = Image.open(Path(catalog).parent / product.images[0])
        for name in PRESETS:
            item = compose_packshot(cutout, presets[name])
            mask = None
            if row["recolor_mask"]:
                mask = item.placement.warp(load_material_mask(Path(catalog).parent / row["recolor_mask"],
                                                              photo.size))
            kw = {"product": product} if takes_product else {}
            region = cv2.erode((item.product_alpha >= 250).view(np.uint8), np.ones((9, 9), np.uint8)) > 0
            for one in [item, *recolor_variants(item, product.colors, mask, **kw)]:
                t = time.perf_counter()
                data = encode(one, presets[name])
                seconds += time.perf_counter() - t
                decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                rows.append(dict(sku=row["sku"], preset=name, variant=one.variant or "(photo)",
                                 bytes=len(data), limit=presets[name].max_bytes,
                                 block=blockiness(decoded, region), chroma=chroma_blockiness(decoded, region),
                                 source_block=blockiness(one.rgb, region)))
    print("| sku | preset | variant | KB | blockiness (file) | of its pixels | chroma blockiness (file) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sku']} | {r['preset']} | {r['variant']} | {r['bytes'] / 1000:.0f} | {r['block']:.3f} | "
              f"{r['source_block']:.3f} | {r['chroma']:.3f} |")
    print("\n| preset | files | median KB | max KB | median blockiness | max blockiness | max chroma "
          "blockiness | variants blockier than their photo's file (+0.02) | over the byte limit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in PRESETS:
        sel = [r for r in rows if r["preset"] == name]
        photo = {r["sku"]: r["block"] for r in sel if r["variant"] == "(photo)"}
        worse = sum(r["block"] > photo[r["sku"]] + 0.02 for r in sel if r["variant"] != "(photo)")
        over = sum(r["limit"] is not None and r["bytes"] > r["limit"] for r in sel)
        kb = [r["bytes"] / 1000 for r in sel]
        block = [r["block"] for r in sel]
        print(f"| {name} | {len(sel)} | {statistics.median(kb):.0f} | {max(kb):.0f} | "
              f"{statistics.median(block):.3f} | {max(block):.3f} | {max(r['chroma'] for r in sel):.3f} | "
              f"{worse} of {len(sel) - len(photo)} | {over} |")
    print(f"\nencode + validate time, all files: {seconds:.1f} s")


if __name__ == "__main__":
    main(*sys.argv[1:])
