"""Shopify's product export: rows grouped by Handle, variants and images on follow-up rows."""

from __future__ import annotations

from packshot.catalog.base import CatalogFormatSpec, Intake, Row
from packshot.catalog.fields import (
    Colors,
    build_product,
    dedupe,
    is_color_option,
    normalize_reference,
    reference_problem,
    sku_problem,
)
from packshot.types import Product


def _parse_shopify(rows: list[Row], intake: Intake) -> list[Product]:
    """One product per Handle: its first row has the title, later rows add variants and images."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        if not row.get("Handle"):
            intake.error(
                row.line,
                "Handle",
                "row has no Handle; Shopify variant and image rows must repeat the product's handle",
            )
            continue
        groups.setdefault(row.get("Handle"), []).append(row)
    products = []
    for handle, group in groups.items():
        product = _shopify_product(handle, group, intake)
        if product:
            products.append(product)
    return products


def _shopify_product(handle: str, group: list[Row], intake: Intake) -> Product | None:
    first = group[0]
    fatal = len(intake.errors)
    if problem := sku_problem(handle, strict=False):
        intake.error(first.line, "Handle", problem.replace("sku", "Handle", 1), handle)
    title = first.get("Title")
    if not title:
        intake.error(
            first.line, "Title", "the product's first row has no Title; put the product name there", handle
        )
    if len(intake.errors) > fatal:
        return None
    rows = [first]
    for row in group[1:]:
        if row.get("Title") and row.get("Title") != title:
            intake.error(
                row.line,
                "Handle",
                f"Handle {handle!r} is already used by {title!r} on line "
                f"{first.line}; give each product its own handle (row skipped)",
                handle,
            )
        else:
            rows.append(row)

    positioned: list[tuple[float, int, str]] = []
    variant_images: list[str] = []
    variant_image_of: dict[int, str] = {}  # row line -> its variant's own photo
    for order, row in enumerate(rows):
        for column in ("Image Src", "Variant Image"):
            ref = normalize_reference(row.get(column))
            if not ref:
                continue
            if problem := reference_problem(ref):
                intake.error(row.line, column, problem, handle)
            elif column == "Variant Image":
                variant_images.append(ref)
                variant_image_of[row.line] = ref
            else:
                position = row.get("Image Position")
                rank = float(position) if position.isdigit() else float("inf")
                if position and not position.isdigit():
                    intake.error(
                        row.line,
                        "Image Position",
                        f"Image Position {position!r} is not a whole number; the image is placed last",
                        handle,
                    )
                positioned.append((rank, order, ref))
    images = dedupe([ref for _, _, ref in sorted(positioned)] + variant_images)

    colors = Colors()
    for n in (1, 2, 3):
        if is_color_option(first.get(f"Option{n} Name")):
            column = f"Option{n} Value"
            for row in rows:
                if row.get(column) and (problem := colors.add(row.get(column))):
                    intake.error(row.line, column, f"{problem}; this color variant is skipped", handle)
                elif row.get(column):  # a variant row with its own photo: that color is photographed
                    colors.photographed(row.get(column), variant_image_of.get(row.line))
            break
    if not images:
        intake.error(
            first.line, "Image Src", "product has no usable image; add its photo URL in 'Image Src'", handle
        )
        return None
    if not intake.claim_sku(handle, first.line, "Handle"):
        return None
    category = first.get("Type") or first.get("Product Category").rpartition(">")[2].strip()
    return build_product(
        intake,
        first.line,
        {"sku": "Handle", "title": "Title", "images": "Image Src"},
        sku=handle,
        title=title,
        images=images,
        category=category,
        colors=colors.as_list(),
    )


FORMAT = CatalogFormatSpec(
    name="shopify",
    label="Shopify product export",
    required=("Handle", "Title", "Image Src"),
    expected=(
        "Shopify product export: Handle, Title, Image Src (optional: Option1 Name, Option1 Value, ..., "
        "Variant Image, Image Position, Type)"
    ),
    detect=lambda header: "handle" in header,
    parse=_parse_shopify,
)
