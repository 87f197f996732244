"""``woocommerce://HOST``: a WooCommerce store as a catalog source, read through :class:`WooClient`.

Mapping (as the WooCommerce CSV export): SKU (else ``id-<ID>``) -> sku, name -> title, first
category -> category, product images then each variation's image -> images, the color attribute's
options -> colors, ``id`` -> source_ref, the newest ``date_modified_gmt`` of the product and its
variations -> source_version.
"""

from __future__ import annotations

from typing import Any

from packshot.catalog.fields import is_color_option, sku_problem
from packshot.sources.base import Source, SourceSettings, store_uri
from packshot.sources.mapping import ColorList, Problems, build_product
from packshot.sources.woocommerce.client import WooClient
from packshot.sources.woocommerce.models import WooProduct, WooVariation
from packshot.types import Catalog


class WooCommerceSource(Source):
    """``woocommerce://HOST``: every product (and its variations) of the store."""

    def __init__(self, uri: str, settings: SourceSettings):
        self.settings = settings
        self.uri = store_uri(uri)

    def read(self) -> Catalog:
        client = WooClient(self.uri, self.settings)
        problems = Problems(file=self.uri)
        products = []
        try:
            for position, node in enumerate(client.pages("/products", WooProduct), start=1):
                variations = (
                    list(client.pages(f"/products/{node['id']}/variations", WooVariation))
                    if node.get("type") == "variable"
                    else []
                )
                product = woo_product(node, variations, position, problems)
                if product is not None:
                    products.append(product)
        finally:
            client.close()
        return Catalog(path=self.uri, format="woocommerce-store", products=products, errors=problems.errors)


def woo_product(node: dict[str, Any], variations: list[dict[str, Any]], position: int, problems: Problems):
    """A product object and its variations -> Product (or None with RowErrors at its position)."""
    sku = node.get("sku") or f"id-{node['id']}"
    if problem := sku_problem(sku, strict=False):
        problems.add(position, "sku", problem, sku)
        return None
    images = [i["src"] for i in node.get("images") or [] if i.get("src")]
    images += [v["image"]["src"] for v in variations if (v.get("image") or {}).get("src")]
    if not images:
        problems.add(position, "images", "product has no image; add one in WooCommerce > Products", sku)
        return None
    colors = ColorList()
    for attribute in node.get("attributes") or []:
        if is_color_option(attribute.get("name", "")):
            for option in attribute.get("options") or []:
                if problem := colors.add(option):
                    problems.add(
                        position,
                        f"attribute {attribute['name']}",
                        f"{problem}; this color variant is skipped",
                        sku,
                    )
    for variation in variations:  # a variation's own image shows its color: that variant is photographed
        for attribute in variation.get("attributes") or []:
            if is_color_option(attribute.get("name", "")):
                colors.photographed(attribute.get("option") or "", (variation.get("image") or {}).get("src"))
    categories = node.get("categories") or []
    modified = max(
        [node.get("date_modified_gmt") or ""] + [v.get("date_modified_gmt") or "" for v in variations]
    )
    return build_product(
        problems,
        position,
        {"title": "name"},
        sku=sku,
        title=node.get("name") or "",
        images=list(dict.fromkeys(images)),
        category=categories[0]["name"] if categories else "",
        colors=colors.as_list(),
        source_ref=str(node["id"]),
        source_version=modified or None,
    )
