"""Incremental at the source: skip a product the store reports unchanged without downloading it.

A product read from a store or feed carries ``source_version`` (Shopify ``updatedAt``, WooCommerce
``date_modified_gmt``, a feed item's hash with its images' ETag/Last-Modified). Its ``.done.json``
records the version and the hash of the image bytes its outputs were made from. When tonight's
version equals last night's, the image is taken to be the same bytes: the content key is computed
with the recorded image hash, and if it still matches (same settings, presets, brand style, models)
the product is skipped without a download. Any difference falls back to the normal path (download,
hash, compare), which is always right, only slower.

When a product was skipped by the normal path although its version changed (a price edit, or
packshot's own publish touching ``updatedAt``), :func:`refresh_version` records the new version,
so the next run skips it without a download again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from orchestrator.keys import load_previous_result, product_key
from packshot.schemas.results import ProductResult
from packshot.storage import Storage
from packshot.types import Product

if TYPE_CHECKING:
    from orchestrator.context import RunContext

DONE_NAME = ".done.json"


def key_from_source(product: Product, folder: str, ctx: RunContext, extra: dict | None = None) -> str | None:
    """The load phase's check before any download: the content key to reuse, or None to go on
    (``product``, ``folder``, ``extra``: one photo's, see :mod:`orchestrator.photos`)."""
    if not product.source_version:
        return None
    # Damaged state counts as absent (the load phase then redoes the product and notes it).
    previous = load_previous_result(ctx.storage, f"{folder}/{DONE_NAME}", [])
    return key_if_unchanged(product, previous, lambda sha: product_key(product, sha, ctx, extra))


def key_if_unchanged(
    product: Product, previous: ProductResult | None, key_for_image: Callable[[str], str]
) -> str | None:
    """The content key to reuse when the store says ``product`` did not change since ``previous``
    (its last ``ProductResult``), else None. ``key_for_image(sha256)`` computes the product's key."""
    version = product.source_version
    if not version or previous is None or previous.source_version != version or not previous.image_sha256:
        return None
    key = key_for_image(previous.image_sha256)
    return key if key == previous.key else None


def refresh_version(storage: Storage, folder: str, result: ProductResult, product: Product) -> None:
    """Rewrite ``folder/.done.json`` with the product's current source version when a reused result
    carries an older one (the outputs are unchanged; only the marker moves on)."""
    if not product.source_version or result.source_version == product.source_version:
        return
    result.source_version = product.source_version
    stored = result.model_copy(
        update={
            "status": "done",
            "notes": [n for n in result.notes if not n.startswith("unchanged since the last run")],
        }
    )
    storage.write_bytes(
        f"{folder}/{DONE_NAME}", stored.model_dump_json(indent=1).encode(), "application/json"
    )
