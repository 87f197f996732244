"""Catalog reading: a merchant's CSV (packshot, Shopify or WooCommerce export) into a :class:`Catalog`.

``load_catalog(path)`` detects the format (one module per format in :mod:`packshot.catalog.formats`),
reports every bad row with its line and a fix, and raises :class:`CatalogError` only when the file as
a whole is unusable. ``validate_catalog`` is the one validation beyond parsing (images, bbox,
recolor mask, brand style) shared by ``validate``, intake and the run; ``validation_report`` and
``report_json`` are the merchant's and the machines' reports.
"""

from packshot.catalog.base import CatalogError
from packshot.catalog.fields import normalize_reference, parse_bbox, reference_problem, sku_problem
from packshot.catalog.reading import load_catalog
from packshot.catalog.validation import (
    ValidationContext,
    check_local_images,
    product_problems,
    report_json,
    validate_catalog,
    validation_context,
    validation_report,
)

__all__ = [
    "CatalogError", "ValidationContext", "check_local_images", "load_catalog", "normalize_reference",
    "parse_bbox", "product_problems", "reference_problem", "report_json", "sku_problem",
    "validate_catalog", "validation_context", "validation_report",
]
