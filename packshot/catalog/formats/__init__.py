"""The catalog formats, one module each; detection tries them in this order (Shopify's Handle first,
since its exports also carry Title and SKU-like columns)."""

from __future__ import annotations

from packshot.catalog.base import CatalogFormatSpec
from packshot.catalog.formats import packshot, shopify, woocommerce

FORMATS: dict[str, CatalogFormatSpec] = {
    f.name: f for f in (shopify.FORMAT, woocommerce.FORMAT, packshot.FORMAT)
}


def expected_headers() -> str:
    """The header each format needs, one line each, for "cannot tell which format" messages."""
    return "\n".join(f"  - {f.expected}" for f in FORMATS.values())
