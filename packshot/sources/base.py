"""Where a catalog comes from: one small interface over CSV files, Merchant Center feeds and stores.

``open_source(uri)`` picks the source from the URI; ``source.read()`` returns the same
:class:`~packshot.types.Catalog` a CSV gives, so validation, runs and reports do not care where the
products came from. Store sources also fill ``Product.source_ref`` (the store's id, used by
``packshot publish``) and ``Product.source_version`` (the store's own change marker, so a run can
skip an unchanged product without downloading its images).

URIs: a file path (``.csv`` exports, ``.xml``/``.tsv``/``.txt`` feeds), ``https://...`` (a feed fetched
on each run), ``shopify://SHOP`` (``SHOP`` or ``SHOP.myshopify.com``), ``woocommerce://HOST[/path]``.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from packshot.errors import PackshotError
from packshot.imageio.refs import display_ref
from packshot.types import Catalog

SNAPSHOT_NAME = "catalog.snapshot.json"


class SourceError(PackshotError):
    """The source as a whole cannot be read: unreachable store, bad credentials, unreadable feed."""


class SourceSettings(BaseModel):
    """How store and feed sources are reached. Secrets are never stored here: only where to find them."""

    shopify_api_version: str = Field(
        "2025-10", description="Admin API version (YYYY-MM), supported ≥ 12 months"
    )
    shopify_token_env: str = Field("SHOPIFY_ACCESS_TOKEN", description="env var holding the Admin API token")
    shopify_secret_block: str | None = Field(None, description="Prefect Secret block with the token")
    shopify_base_url: str | None = Field(
        None, description="base URL instead of https://SHOP.myshopify.com (a proxy; the tests' fake)"
    )
    woocommerce_key_env: str = Field("WOOCOMMERCE_CONSUMER_KEY", description="env var: consumer key (ck_...)")
    woocommerce_secret_env: str = Field(
        "WOOCOMMERCE_CONSUMER_SECRET", description="env var: consumer secret (cs_...)"
    )
    woocommerce_secret_block: str | None = Field(
        None, description="Prefect Secret block holding 'KEY:SECRET' (instead of the two env vars)"
    )
    ca_bundle: Path | None = Field(None, description="PEM file of extra CAs trusted for the store's HTTPS")
    timeout_s: float = Field(60.0, description="timeout of one network operation of an API request")
    request_deadline_s: float = Field(
        120.0, gt=0, description="total time of one API request or upload, however slowly the store answers"
    )
    max_pages: int = Field(
        10_000, ge=1, description="most pages read of one store listing (a store paging for ever is an error)"
    )
    page_size: int = Field(100, ge=1, le=250, description="products per API page (WooCommerce caps at 100)")
    max_attempts: int = Field(6, ge=1, description="tries of one API request (429, 503, 5xx, throttling)")
    max_wait_s: float = Field(
        60.0, description="longest single wait asked for by Retry-After or the throttle"
    )
    feed_max_bytes: int = Field(512_000_000, description="largest feed accepted from a URL")
    feed_timeout_s: float = Field(600.0, description="total time allowed to download a feed")
    check_feed_images: bool = Field(
        True, description="HEAD each feed image for its ETag/Last-Modified (skips unchanged products)"
    )


class Source(ABC):
    """A catalog source. ``uri`` is for display and never holds a secret."""

    uri: str

    @abstractmethod
    def read(self) -> Catalog:
        """The whole catalog; bad products are ``catalog.errors``; a dead source raises SourceError."""

    @property
    def base_dir(self) -> Path | None:
        """Folder that relative image paths are read from (file sources), None for remote ones."""
        return None


class CsvSource(Source):
    """Today's CSV formats (packshot, Shopify export, WooCommerce export) through ``load_catalog``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.uri = str(path)

    def read(self) -> Catalog:
        from packshot.catalog import load_catalog

        return load_catalog(self.path)

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent


display_uri = display_ref  # the same rule for every reference shown to people


def store_uri(uri: str) -> str:
    """The one spelling of a store's address, so a publish ledger or a snapshot matches however it was
    typed: ``woocommerce://Shop.Example.COM.:443//wp/`` -> ``woocommerce://shop.example.com/wp``. Host
    lowercased, no trailing dot, no default port (stores are reached over HTTPS: 443), no user part,
    no trailing or doubled slashes; a Shopify store is its shop name (``shopify://SHOP``)."""
    parts = urlsplit(uri.strip())
    scheme = parts.scheme.lower()
    try:
        host, port = (parts.hostname or "").rstrip("."), parts.port
    except ValueError:
        raise SourceError(f"{display_uri(uri)!r} is not a store address (bad port)") from None
    if scheme == "shopify":
        return f"shopify://{host.removesuffix('.myshopify.com')}"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, 443) else f"{host}:{port}"
    path = re.sub("/{2,}", "/", parts.path).rstrip("/")
    return f"{scheme}://{netloc}{path}"


def snapshot_json(catalog: Catalog, source_uri: str) -> bytes:
    """Exactly what a run read: every parsed product (with its store id and version), errors and notes."""
    payload = {
        "source": display_uri(source_uri),
        "read_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **json.loads(catalog.model_dump_json()),
    }
    return json.dumps(payload, indent=1, ensure_ascii=False).encode()


def load_snapshot(data: bytes) -> Catalog:
    """The catalog back from ``snapshot_json`` (a shard or ``publish`` reading what the run read)."""
    payload = json.loads(data)
    payload.pop("source", None)
    payload.pop("read_at", None)
    payload.pop("run_id", None)
    return Catalog.model_validate(payload)


def write_snapshot(storage, catalog: Catalog, source_uri: str) -> str:
    """Write ``catalog.snapshot.json`` at the root of a run's ``storage`` (beside the manifest)."""
    return storage.write_bytes(SNAPSHOT_NAME, snapshot_json(catalog, source_uri), "application/json")
