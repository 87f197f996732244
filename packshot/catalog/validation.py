"""Validation beyond parsing (local image headers) and the reports a merchant reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from packshot.catalog.fields import plural
from packshot.catalog.formats import FORMATS
from packshot.types import Catalog, RowError


def check_local_images(catalog: Catalog, max_pixels: int) -> Catalog:
    """Probe every local image's header (cheap: no pixels are decoded) and move products whose
    file is missing, not an image, or too large into the catalog's errors. URLs and s3:// keys are
    left to load time, where their fetch is checked anyway."""
    from PIL import Image, UnidentifiedImageError

    from packshot.errors import ImageLoadError
    from packshot.imageio import resolve_local

    base = Path(catalog.path).resolve().parent
    keep, errors = [], list(catalog.errors)
    for product in catalog.products:
        problem = None
        for ref in product.images:
            if "://" in ref:
                continue
            try:
                path = resolve_local(ref, base)
            except ImageLoadError as exc:
                problem = str(exc)
                break
            if not path.is_file():
                problem = (
                    f"image file {ref!r} does not exist (looked for {path}); check the path and its case"
                )
            else:
                try:
                    with Image.open(path) as img:
                        width, height = img.size
                except (UnidentifiedImageError, OSError) as exc:
                    kind = type(exc).__name__
                    problem = f"{ref!r} is not an image Pillow can read ({kind}); export it as JPEG or PNG"
                else:
                    if width * height > max_pixels:
                        problem = (
                            f"{ref!r} is {width}x{height} pixels, above the limit of {max_pixels:,}; "
                            "downscale it or raise PACKSHOT_LOAD__MAX_PIXELS"
                        )
            if problem:
                break
        if problem:
            errors.append(
                RowError(
                    file=product.source_file,
                    line=product.source_line,
                    column="image",
                    sku=product.sku,
                    message=problem,
                )
            )
        else:
            keep.append(product)
    return catalog.model_copy(update={"products": keep, "errors": sorted(errors, key=lambda e: e.line)})


def validation_report(catalog: Catalog) -> str:
    """Plain-text report for a merchant: counts, then one line per problem and what to do."""
    bad_rows = len({(e.file, e.line) for e in catalog.errors})
    lines = [
        f"{catalog.path}: {_label(catalog.format)}",
        f"  {plural(len(catalog.products), 'product')} ready, "
        f"{plural(len(catalog.errors), 'problem')} in {plural(bad_rows, 'row')}",
    ]
    if catalog.notes:
        lines.append("Notes:")
        lines += [f"  - {note}" for note in catalog.notes]
    if catalog.errors:
        lines.append("Problems:")
        lines += [f"  {error}" for error in catalog.errors]
        lines.append(_WHAT_TO_DO.get(catalog.format, _WHAT_TO_DO["csv"]))
    else:
        lines.append("No problems found.")
    return "\n".join(lines)


# Catalogs read by packshot.sources rather than from a CSV format
_SOURCE_LABELS = {
    "gmc": "Google Merchant Center feed",
    "shopify-store": "Shopify store (Admin API)",
    "woocommerce-store": "WooCommerce store (REST API)",
}
_STORE_FIX = (
    "What to do: fix the products above in the store's admin (the number after the store is the product's "
    "position in its listing) and run `packshot validate` again. Products with problems are skipped; the "
    "other products are processed."
)
_WHAT_TO_DO = {
    "csv": "What to do: fix the rows above in the CSV (line numbers count the header as line 1) and run "
    "`packshot validate` again. Rows with problems are skipped; the other products are processed.",
    "gmc": "What to do: fix the items above in the feed (the line is where the item starts in the file) and "
    "run `packshot validate` again. Items with problems are skipped; the other products are processed.",
    "shopify-store": _STORE_FIX,
    "woocommerce-store": _STORE_FIX,
}


def _label(fmt: str) -> str:
    return FORMATS[fmt].label if fmt in FORMATS else _SOURCE_LABELS.get(fmt, fmt)


def report_json(catalog: Catalog) -> dict[str, Any]:
    """The same report for machines (CI, dashboards)."""
    return {
        "file": catalog.path,
        "format": catalog.format,
        "ok": not catalog.errors,
        "products": len(catalog.products),
        "bad_rows": len({(e.file, e.line) for e in catalog.errors}),
        "skus": [p.sku for p in catalog.products],
        "errors": [e.model_dump() for e in catalog.errors],
        "notes": list(catalog.notes),
    }
