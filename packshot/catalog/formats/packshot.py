"""packshot's own CSV format: one row per product (see catalogs/README.md)."""

from __future__ import annotations

import re

from packshot.catalog.base import CatalogFormatSpec, Intake, Row
from packshot.catalog.fields import (
    Colors,
    build_product,
    normalize_reference,
    parse_bbox,
    reference_problem,
    sku_problem,
)
from packshot.colors import parse_color
from packshot.types import Product, slugify

PACKSHOT_COLUMNS = ("sku", "title", "image", "category", "brand_style", "colors", "bbox", "recolor_mask",
                    "photo_color")
_BRAND_STYLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _parse_packshot(rows: list[Row], intake: Intake) -> list[Product]:
    products = []
    for row in rows:
        before = len(intake.errors)
        sku, title = row.get("sku"), row.get("title")
        if not sku:
            intake.error(row.line, "sku", "sku is empty; every product needs a unique sku")
        elif problem := sku_problem(sku, strict=True):
            intake.error(row.line, "sku", problem, sku)
        else:
            intake.claim_sku(sku, row.line, "sku")
        if not title:
            intake.error(row.line, "title", "title is empty; give the product a name", sku)
        images = [normalize_reference(r.strip()) for r in row.get("image").split("|") if r.strip()]
        if not images:
            intake.error(row.line, "image", "image is empty; give the main photo's path or URL", sku)
        for ref in images:
            if problem := reference_problem(ref):
                intake.error(row.line, "image", problem, sku)
        colors = Colors()
        for text in filter(None, (c.strip() for c in row.get("colors").split("|"))):
            if problem := colors.add(text):
                intake.error(row.line, "colors", problem, sku)
        photo_color = None
        if row.get("photo_color"):
            try:
                text = row.get("photo_color")
                photo_color = colors.by_slug.get(slugify(text)) or parse_color(text)
            except ValueError as exc:
                intake.error(row.line, "photo_color", f"{exc} (photo_color: the color the product has in its "
                             "photo, one of its colors or a hex value)", sku)
        bbox = None
        if row.get("bbox"):
            try:
                bbox = parse_bbox(row.get("bbox"))
            except ValueError as exc:
                intake.error(row.line, "bbox", str(exc), sku)
        mask = normalize_reference(row.get("recolor_mask")) or None
        if mask and (problem := reference_problem(mask)):
            intake.error(row.line, "recolor_mask", problem.replace("images must", "masks must"), sku)
        brand = row.get("brand_style").removesuffix(".yaml").removesuffix(".yml") or None
        if brand and (not _BRAND_STYLE.match(brand) or ".." in brand):
            intake.error(
                row.line,
                "brand_style",
                f"brand_style {brand!r} must be the name of a file in "
                "brand_styles/ (letters, digits, '-', '_'), like 'minimal' for "
                "brand_styles/minimal.yaml",
                sku,
            )
        if len(intake.errors) > before:
            continue
        product = build_product(
            intake,
            row.line,
            {"images": "image"},
            sku=sku,
            title=title,
            images=images,
            category=row.get("category"),
            brand_style=brand,
            colors=colors.as_list(),
            bbox=bbox,
            recolor_mask=mask,
            photo_color=photo_color,
        )
        if product:
            products.append(product)
    return products


FORMAT = CatalogFormatSpec(
    name="packshot",
    label="packshot catalog",
    required=("sku", "title", "image"),
    expected=f"packshot: sku, title, image (optional: {', '.join(PACKSHOT_COLUMNS[3:])})",
    detect=lambda header: "sku" in header and bool(header.keys() & {"title", "image"}),
    parse=_parse_packshot,
)
