"""WooCommerce's product export: variable products with variation rows pointing at their Parent."""

from __future__ import annotations

import re

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

_WOO_LIST_SPLIT = re.compile(r"(?<!\\),")  # WooCommerce escapes commas inside values as "\,"


def _parse_woocommerce(rows: list[Row], intake: Intake) -> list[Product]:
    """Simple/variable/external/grouped rows are products; variation rows attach to their Parent."""
    parents: list[Row] = []
    variations: list[Row] = []
    for row in rows:
        kinds = {k.strip().lower() for k in row.get("Type").split(",") if k.strip()}
        if "variation" in kinds:
            variations.append(row)
        elif kinds & {"simple", "variable", "external", "grouped"}:
            parents.append(row)
        else:
            what = f"Type {row.get('Type')!r} is unknown" if kinds else "Type is empty"
            intake.error(row.line, "Type", f"{what}; expected simple, variable or variation", row.get("SKU"))

    by_id: dict[str, Row] = {}
    by_sku: dict[str, Row] = {}
    unique: list[Row] = []
    for row in parents:
        if row.get("ID") in by_id:
            intake.error(
                row.line,
                "ID",
                f"ID {row.get('ID')} is already used on line "
                f"{by_id[row.get('ID')].line}; each product needs its own ID",
                row.get("SKU"),
            )
            continue
        if row.get("ID"):
            by_id[row.get("ID")] = row
        if row.get("SKU"):
            by_sku.setdefault(row.get("SKU"), row)
        unique.append(row)

    children: dict[int, list[Row]] = {}
    for row in variations:
        ref = row.get("Parent")
        if ref.lower().startswith("id:"):
            parent = by_id.get(ref[3:].strip())
        else:  # the parent's SKU; a bare number is tried as an ID too
            parent = by_sku.get(ref, by_id.get(ref))
        if not ref:
            intake.error(
                row.line,
                "Parent",
                "variation has no Parent; write the parent's 'id:<ID>' or SKU",
                row.get("SKU"),
            )
        elif parent is None:
            intake.error(
                row.line,
                "Parent",
                f"the parent {ref!r} of this variation is not in this file; "
                "export the variable product together with its variations",
                row.get("SKU"),
            )
        else:
            children.setdefault(parent.line, []).append(row)

    products = []
    for row in unique:
        product = _woo_product(row, children.get(row.line, []), intake)
        if product:
            products.append(product)
    return products


def _woo_product(row: Row, variations: list[Row], intake: Intake) -> Product | None:
    fatal = len(intake.errors)
    sku = row.get("SKU") or (f"id-{row.get('ID')}" if row.get("ID") else "")
    if not sku:
        intake.error(row.line, "SKU", "product has neither SKU nor ID; give it a SKU")
    elif problem := sku_problem(sku, strict=False):
        intake.error(row.line, "SKU", problem, sku)
    title = row.get("Name")
    if not title:
        intake.error(row.line, "Name", "Name is empty; give the product a name", sku)
    if len(intake.errors) > fatal:
        return None

    images: list[str] = []
    variation_image: dict[int, str] = {}  # a variation row's line -> its own photo (its first image)
    for source in (row, *variations):
        for ref in filter(None, (normalize_reference(r.strip()) for r in source.get("Images").split(","))):
            if problem := reference_problem(ref):
                intake.error(source.line, "Images", problem, sku)
            else:
                images.append(ref)
                if source is not row:
                    variation_image.setdefault(source.line, ref)
    images = dedupe(images)

    colors = Colors()
    for source in (row, *variations):
        for name_column in _attribute_name_columns(intake.header):
            if not is_color_option(source.get(name_column)):
                continue
            value_column = name_column.replace(" name", " value(s)")
            for value in _WOO_LIST_SPLIT.split(source.get(value_column)):
                value = value.replace("\\,", ",").strip()
                if value and (problem := colors.add(value)):
                    intake.error(
                        source.line,
                        _canonical(value_column),
                        f"{problem}; this color variant is skipped",
                        sku,
                    )
                elif value:  # a variation with its own image: that color is photographed
                    colors.photographed(value, variation_image.get(source.line))
    if not images:
        intake.error(row.line, "Images", "product has no usable image; add its photo URL in 'Images'", sku)
        return None
    if not intake.claim_sku(sku, row.line, "SKU"):
        return None
    first_category = row.get("Categories").split(",")[0]
    category = first_category.rpartition(">")[2].strip()
    return build_product(
        intake,
        row.line,
        {"sku": "SKU", "title": "Name", "images": "Images"},
        sku=sku,
        title=title,
        images=images,
        category=category,
        colors=colors.as_list(),
    )


def _attribute_name_columns(header: dict[str, int]) -> list[str]:
    return [name for name in header if re.fullmatch(r"attribute \d+ name", name)]


def _canonical(column: str) -> str:
    """'attribute 1 value(s)' -> 'Attribute 1 value(s)', as WooCommerce spells it."""
    return column[:1].upper() + column[1:]


FORMAT = CatalogFormatSpec(
    name="woocommerce",
    label="WooCommerce product export",
    required=("Type", "Name", "Images"),
    expected=(
        "WooCommerce product export: ID, Type, SKU, Name, Images, Parent (optional: Categories, "
        "Attribute 1 name, Attribute 1 value(s), ...)"
    ),
    detect=lambda header: {"type", "name"} <= header.keys()
    and bool(header.keys() & {"images", "parent", "sku", "id"}),
    parse=_parse_woocommerce,
)
