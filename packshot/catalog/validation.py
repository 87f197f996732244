"""The one validation of a catalog's products beyond parsing, and the reports a merchant reads.

``product_problems`` is used by ``packshot validate``, by the intake flow before it starts a run, and
by the run itself once a product's image is loaded, so a row that ``validate`` passes does not fail
at run time for a reason validate could have seen. It checks:

- every local image: a regular file inside the catalog folder (no FIFO, folder, device, symlink out),
  an image whose header Pillow reads, within ``max_pixels`` (decompression and PNG chunk bombs);
- the bbox lies inside the main image (EXIF rotation applied, as the pipeline sees it);
- the recolor mask: a readable image inside the catalog folder, drawn on the photo (same size or
  the same aspect ratio);
- the brand style (the row's, else the run's default) exists and is valid, looked for in every
  folder of :func:`packshot.schemas.brand.brand_style_dirs`.

URLs and ``s3://`` images are checked when they are loaded (the run does, with the same function).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packshot.catalog.fields import plural
from packshot.catalog.formats import FORMATS
from packshot.errors import PackshotError
from packshot.types import Catalog, Product, RowError


@dataclass
class ValidationContext:
    """What the checks need: the catalog's folder, the pixel limit and where brand styles live.

    ``brands`` caches each brand name's problem (None when fine), so a catalog reads each style once."""

    base_dir: Path
    max_pixels: int
    brand_dirs: list[Path] = field(default_factory=list)
    default_brand: str | None = None
    brands: dict[str, str | None] = field(default_factory=dict)

    def brand_problem(self, name: str) -> str | None:
        if name not in self.brands:
            from packshot.schemas.brand import load_brand_style

            try:
                load_brand_style(name, self.brand_dirs)
                self.brands[name] = None
            except PackshotError as exc:
                self.brands[name] = str(exc)
        return self.brands[name]


def validation_context(catalog_path: str | Path, max_pixels: int,
                       brand_styles_dir: Path | str = "brand_styles",
                       default_brand: str | None = None) -> ValidationContext:
    """The checks' context for the catalog at ``catalog_path`` (brand styles: see brand_style_dirs)."""
    from packshot.schemas.brand import brand_style_dirs

    base = Path(catalog_path).resolve().parent
    return ValidationContext(base, max_pixels, brand_style_dirs(brand_styles_dir, base), default_brand)


def product_problems(product: Product, vc: ValidationContext, image_size: tuple[int, int] | None = None,
                     probe_images: bool = True) -> list[RowError]:
    """Every problem of ``product`` (empty: it can run). ``image_size``: (width, height) of the main
    image when already known (the run passes the loaded image's); ``probe_images=False`` skips the
    image file checks (the run has just decoded the image)."""
    from packshot.errors import ImageLoadError
    from packshot.imageio import probe_file, resolve_local

    problems: list[RowError] = []

    def problem(column: str, message: str) -> None:
        problems.append(RowError(file=product.source_file, line=product.source_line, column=column,
                                 sku=product.sku, message=message))

    for index, ref in enumerate(product.images if probe_images else []):
        if "://" in ref:
            continue
        try:
            size = probe_file(ref, resolve_local(ref, vc.base_dir), vc.max_pixels)
        except ImageLoadError as exc:
            problem("image", str(exc))
            return problems  # the other checks need the image
        if index == 0:
            image_size = image_size or size
    if product.bbox and image_size:
        x0, y0, x1, y1 = product.bbox
        width, height = image_size
        if x1 > width or y1 > height:
            where = "wholly" if x0 >= width or y0 >= height else "partly"
            problem("bbox", f"bbox {x0},{y0},{x1},{y1} lies {where} outside the {width}x{height} image; "
                            "give it in the photo's pixels (x1 <= width, y1 <= height)")
    if product.recolor_mask and (message := _mask_problem(product.recolor_mask, image_size, vc)):
        problem("recolor_mask", message)
    brand = product.brand_style or vc.default_brand
    if brand and (message := vc.brand_problem(brand)):
        problem("brand_style", message)
    return problems


def _mask_problem(ref: str, image_size: tuple[int, int] | None, vc: ValidationContext) -> str | None:
    from packshot.errors import ImageLoadError
    from packshot.imageio import probe_file, resolve_local

    try:
        mw, mh = probe_file(ref, resolve_local(ref, vc.base_dir), vc.max_pixels)
    except ImageLoadError as exc:
        return f"recolor mask: {exc}".replace("Image ", "", 1)
    if image_size is None or (mw, mh) == tuple(image_size):
        return None
    w, h = image_size
    if abs(mw / mh - w / h) > 0.01 * (w / h):
        return (f"recolor mask {ref!r} is {mw}x{mh} px but the photo is {w}x{h}; draw the mask on the "
                "product photo itself (same size or the same aspect ratio)")
    return None


def validate_catalog(catalog: Catalog, vc: ValidationContext) -> Catalog:
    """``catalog`` with every product that has a problem moved into its errors (see the module doc)."""
    keep, errors = [], list(catalog.errors)
    for product in catalog.products:
        problems = product_problems(product, vc)
        errors += problems
        if not problems:
            keep.append(product)
    return catalog.model_copy(update={"products": keep, "errors": sorted(errors, key=lambda e: e.line)})


def check_local_images(catalog: Catalog, max_pixels: int) -> Catalog:
    """:func:`validate_catalog` with brand styles looked up in their default folders."""
    return validate_catalog(catalog, validation_context(catalog.path, max_pixels))


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
