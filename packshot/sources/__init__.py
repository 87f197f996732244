"""Catalog sources: CSV files, Google Merchant Center feeds, Shopify and WooCommerce stores.

``open_source(uri).read()`` -> :class:`packshot.types.Catalog`; see :mod:`packshot.sources.base`.
"""

from packshot.sources.base import (
    SNAPSHOT_NAME,
    CsvSource,
    Source,
    SourceError,
    SourceSettings,
    load_snapshot,
    snapshot_json,
    write_snapshot,
)
from packshot.sources.dispatch import open_source

__all__ = [
    "SNAPSHOT_NAME",
    "CsvSource",
    "Source",
    "SourceError",
    "SourceSettings",
    "load_snapshot",
    "open_source",
    "snapshot_json", "write_snapshot",
]
