"""Small synthetic studio shots with exact ground truth, for tests that need product photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def studio_shot(
    size: int = 160, shape: str = "bottle", color=(40, 90, 170), bg=(246, 246, 246), seed: int = 0
):
    """Return (rgb HxWx3 uint8, alpha HxW uint8): a shaded object on a light studio background."""
    rng = np.random.default_rng(seed)
    h = w = size
    alpha = np.zeros((h, w), np.uint8)
    if shape == "bottle":
        cv2.rectangle(alpha, (w * 2 // 5, h // 4), (w * 3 // 5, h * 5 // 6), 255, -1)
        cv2.rectangle(alpha, (w * 9 // 20, h // 8), (w * 11 // 20, h // 4), 255, -1)
    elif shape == "mug":
        cv2.rectangle(alpha, (w // 4, h // 3), (w * 3 // 5, h * 4 // 5), 255, -1)
        cv2.ellipse(alpha, (w * 3 // 5, h * 11 // 20), (w // 7, h // 8), 0, 0, 360, 255, max(3, w // 30))
    else:
        cv2.circle(alpha, (w // 2, h // 2), w // 4, 255, -1)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    xs = np.linspace(-1, 1, w)[None, :, None]
    shade = 0.75 + 0.25 * np.cos(xs * 1.4)
    fg = np.clip(np.array(color, np.float32) * shade + rng.normal(0, 2, (h, w, 3)), 0, 255)
    bgimg = np.empty((h, w, 3), np.float32)
    bgimg[:] = bg
    a = alpha[..., None] / 255.0
    rgb = (fg * a + bgimg * (1 - a)).round().astype(np.uint8)
    return rgb, alpha


def write_catalog(folder: Path, rows: list[dict], name: str = "catalog.csv") -> Path:
    """Write studio images and a packshot-format CSV; rows give sku, shape, and optional extras."""
    import csv

    (folder / "images").mkdir(parents=True, exist_ok=True)
    cols = ["sku", "title", "image", "category", "brand_style", "colors", "bbox", "recolor_mask"]
    with open(folder / name, "w", newline="") as fh:
        writer = csv.DictWriter(fh, cols)
        writer.writeheader()
        for i, row in enumerate(rows):
            image = row.get("image") or f"images/{row['sku'] or f'row{i}'}.jpg"
            if "image" not in row:
                rgb, _ = studio_shot(shape=row.get("shape", "bottle"), seed=i)
                Image.fromarray(rgb).save(folder / image, quality=92)
            writer.writerow(
                {
                    "sku": row["sku"],
                    "title": row.get("title", f"Product {row['sku']}"),
                    "image": image,
                    "category": row.get("category", "home"),
                    "brand_style": row.get("brand_style", ""),
                    "colors": row.get("colors", ""),
                    "bbox": row.get("bbox", ""),
                    "recolor_mask": row.get("recolor_mask", ""),
                }
            )
    return folder / name
