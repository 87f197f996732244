"""Where ``publish`` sends images: a Shopify store (:mod:`orchestrator.publish.shopify`) or a
WooCommerce store (:mod:`orchestrator.publish.woocommerce`).

Both follow the ledger protocol of :mod:`orchestrator.publish.ledger`: ``uploading`` is recorded
before the remote call, the store's id after it; an image the ledger does not list as done is first
looked up in the store (by its file name, which holds its checksum; an ``uploading`` one also by alt
text among media that were not there before its call).
"""

from __future__ import annotations

from orchestrator.publish.plan import PublishError
from orchestrator.publish.shopify import ShopifyTarget
from orchestrator.publish.woocommerce import WooTarget
from packshot.config import LoadSettings
from packshot.sources.base import SourceSettings
from packshot.storage import Storage


def open_target(uri: str, settings: SourceSettings, storage: Storage, load: LoadSettings | None = None):
    """The target ``uri`` names; ``load``: the SSRF rules an upload target named by the store is held to."""
    scheme = uri.partition("://")[0].lower()
    if scheme == "shopify":
        return ShopifyTarget(uri, settings, storage, load=load)
    if scheme == "woocommerce":
        return WooTarget(uri, settings, storage)
    raise PublishError(f"cannot publish to {uri!r}: use shopify://SHOP or woocommerce://HOST")
