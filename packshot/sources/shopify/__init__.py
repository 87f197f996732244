"""Shopify in one place: the Admin GraphQL client (reading products, uploading media) and the
catalog source."""

from packshot.sources.shopify.client import (
    PAGE_MEDIA,
    PAGE_PRODUCTS,
    PAGE_VARIANTS,
    PUBLISHED_PREFIX,
    ShopifyClient,
    shop_domain,
    shopify_token,
)
from packshot.sources.shopify.source import ShopifySource, is_published_by_packshot, shopify_product

__all__ = [
    "PAGE_MEDIA",
    "PAGE_PRODUCTS",
    "PAGE_VARIANTS",
    "PUBLISHED_PREFIX",
    "ShopifyClient",
    "ShopifySource",
    "is_published_by_packshot",
    "shop_domain",
    "shopify_product",
    "shopify_token",
]
