"""WooCommerce in one place: the REST client (reading products, sending images) and the catalog source."""

from packshot.sources.woocommerce.client import WooClient, woo_credentials
from packshot.sources.woocommerce.source import WooCommerceSource, woo_product

__all__ = ["WooClient", "WooCommerceSource", "woo_credentials", "woo_product"]
