"""``shopify://SHOP``: a Shopify store as a catalog source, read through :class:`ShopifyClient`.

Mapping: handle -> sku (as the Shopify CSV export), title, productType -> category, READY image
media -> images (media packshot itself published, named ``packshot-*``, are left out), a variant's
image -> its color's own photo (one of the media), variants' color option values -> colors,
``id`` -> source_ref, ``updatedAt`` -> source_version.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from packshot.catalog.fields import is_color_option, sku_problem
from packshot.sources.base import Source, SourceSettings
from packshot.sources.mapping import ColorList, Problems, build_product
from packshot.sources.shopify.client import (
    PAGE_MEDIA,
    PAGE_VARIANTS,
    PUBLISHED_PREFIX,
    ShopifyClient,
    shop_domain,
)
from packshot.types import Catalog


class ShopifySource(Source):
    """``shopify://SHOP``: every product of the store, read through the Admin API."""

    def __init__(self, uri: str, settings: SourceSettings):
        self.settings = settings
        self.uri = f"shopify://{shop_domain(uri).removesuffix('.myshopify.com')}"

    def read(self) -> Catalog:
        client = ShopifyClient(self.uri, self.settings)
        problems = Problems(file=self.uri)
        products, truncated = [], []
        try:
            for position, node in enumerate(client.products(), start=1):
                product = shopify_product(node, position, problems)
                if product is not None:
                    products.append(product)
                if any((node[c].get("pageInfo") or {}).get("hasNextPage") for c in ("variants", "media")):
                    truncated.append(node.get("handle") or node["id"])
        finally:
            client.close()
        notes = []
        if truncated:
            notes.append(
                f"{len(truncated)} product(s) have more than {PAGE_VARIANTS} variants or {PAGE_MEDIA} images "
                f"(first: {truncated[0]}); their first ones were read"
            )
        return Catalog(
            path=self.uri, format="shopify-store", products=products, errors=problems.errors, notes=notes
        )


def shopify_product(node: dict[str, Any], position: int, problems: Problems):
    """One product node -> Product (or None with RowErrors; ``line`` is the product's position)."""
    handle = node.get("handle") or ""
    if problem := sku_problem(handle, strict=False):
        problems.add(position, "handle", problem.replace("sku", "handle", 1), handle)
        return None
    images = [
        media["image"]["url"]
        for media in node["media"]["nodes"]
        if media.get("status") == "READY"
        and (media.get("image") or {}).get("url")
        and not is_published_by_packshot(media["image"]["url"])
    ]
    if not images:
        problems.add(
            position,
            "media",
            "product has no ready image (its own, not one packshot published); "
            "add a photo in the Shopify admin",
            handle,
        )
        return None
    colors = ColorList()
    for variant in node["variants"]["nodes"]:
        for option in variant.get("selectedOptions") or []:
            if is_color_option(option["name"]) and (problem := colors.add(option["value"])):
                problems.add(
                    position, f"option {option['name']}", f"{problem}; this color variant is skipped", handle
                )
            elif is_color_option(option["name"]):  # the variant's own image shows its color
                colors.photographed(option["value"], _media_url(variant, images))
    return build_product(
        problems,
        position,
        {"images": "media"},
        sku=handle,
        title=node.get("title") or "",
        images=images,
        category=node.get("productType") or "",
        colors=colors.as_list(),
        source_ref=node["id"],
        source_version=node.get("updatedAt"),
    )


def _media_url(variant: dict[str, Any], images: list[str]) -> str | None:
    """The variant's image as one of the product's media URLs (the CDN may add another ``?v=``), or
    None: a variant image that is not among the product's ready media is not used."""
    url = (variant.get("image") or {}).get("url") or ""
    by_path = {u.split("?")[0]: u for u in images}
    return by_path.get(url.split("?")[0]) if url else None


def is_published_by_packshot(url: str) -> bool:
    return PurePosixPath(urlsplit(url).path).name.startswith(PUBLISHED_PREFIX)
