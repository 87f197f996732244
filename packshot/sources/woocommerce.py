"""WooCommerce stores through the REST API v3: the catalog source and the client ``publish`` uses.

``https://HOST[/path]/wp-json/wc/v3``; the consumer key and secret go as HTTP Basic auth, which
WooCommerce accepts over HTTPS only (plain http would need OAuth 1.0a, not implemented: packshot
refuses http). Keys come from ``WOOCOMMERCE_CONSUMER_KEY`` / ``_SECRET`` or a Prefect Secret block
holding ``KEY:SECRET``, and are registered for redaction. Pages: ``per_page`` (≤ 100) and ``page``
until ``X-WP-TotalPages``; 429/503 wait for ``Retry-After``, other 5xx back off (tenacity).

Mapping (as the WooCommerce CSV export): SKU (else ``id-<ID>``) -> sku, name -> title, first
category -> category, product images then each variation's image -> images, the color attribute's
options -> colors, ``id`` -> source_ref, the newest ``date_modified_gmt`` of the product and its
variations -> source_version.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from packshot import __version__
from packshot.catalog.fields import is_color_option, sku_problem
from packshot.secrets import get_secret, redact, remember_secret
from packshot.sources.base import Source, SourceError, SourceSettings
from packshot.sources.mapping import ColorList, Problems, build_product
from packshot.sources.retry import call_with_retries, raise_if_busy
from packshot.types import Catalog


def woo_credentials(settings: SourceSettings) -> tuple[str, str]:
    key = get_secret(settings.woocommerce_key_env)
    secret = get_secret(settings.woocommerce_secret_env)
    if not (key and secret) and settings.woocommerce_secret_block:
        pair = (
            get_secret("", settings.woocommerce_secret_block, setting="sources.woocommerce_secret_block")
            or ""
        )
        key, _, secret = pair.partition(":")
        remember_secret(key)
        remember_secret(secret)
    if not (key and secret):
        raise SourceError(
            f"no WooCommerce API keys: set {settings.woocommerce_key_env} and "
            f"{settings.woocommerce_secret_env} "
            "(WooCommerce > Settings > Advanced > REST API; Read for sources, Read/Write for publish), or "
            "name a Prefect Secret block holding 'KEY:SECRET' in PACKSHOT_SOURCES__WOOCOMMERCE_SECRET_BLOCK"
        )
    return key, secret


class WooClient:
    """REST v3 calls with Basic auth over HTTPS, retries and redaction."""

    def __init__(
        self,
        uri: str,
        settings: SourceSettings,
        *,
        credentials: tuple[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        parts = urlsplit(uri)
        if not parts.netloc:
            raise SourceError(f"{uri!r} does not name a store; write woocommerce://HOST (or HOST/path)")
        self.uri = f"woocommerce://{parts.netloc}{parts.path.rstrip('/')}"
        self.base = f"https://{parts.netloc}{parts.path.rstrip('/')}/wp-json/wc/v3"
        self.settings = settings
        self._credentials = credentials or woo_credentials(settings)
        self._sleep = sleep
        verify: Any = str(settings.ca_bundle) if settings.ca_bundle else True
        self.http = httpx.Client(
            timeout=settings.timeout_s,
            verify=verify,
            auth=self._credentials,
            headers={"User-Agent": f"packshot/{__version__}"},
        )

    def close(self) -> None:
        self.http.close()

    def request(
        self, method: str, path: str, *, params: dict | None = None, json: Any = None, idempotent: bool = True
    ) -> httpx.Response:
        """One call; SourceError with the store's message. ``idempotent=False`` (a PUT adding image
        URLs): sent again only when the store certainly did nothing (see :mod:`packshot.sources.retry`)."""
        try:
            return call_with_retries(self._send, method, path, params, json, uri=self.uri,
                                     settings=self.settings, idempotent=idempotent, sleep=self._sleep)
        except httpx.TransportError as exc:
            raise SourceError(
                self._redact(
                    f"{self.uri}: no answer from {self.base} ({exc}); check the host, "
                    "its HTTPS certificate and the network"
                )
            ) from None

    def _send(self, method: str, path: str, params: dict | None, json: Any) -> httpx.Response:
        response = self.http.request(method, self.base + path, params=params, json=json)
        raise_if_busy(response, "the store")
        status = response.status_code
        if status in (401, 403):
            raise SourceError(
                f"{self.uri}: the store refused the API keys (HTTP {status}); check "
                f"{self.settings.woocommerce_key_env}/{self.settings.woocommerce_secret_env} and "
                "that the key has Read (Read/Write to publish) permission"
            )
        if status >= 400:
            raise SourceError(self._redact(f"{self.uri}: {method} {path} failed: {_woo_message(response)}"))
        return response

    def _redact(self, text: str) -> str:
        return redact(text, self._credentials)

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every object of a paged collection (``page``/``per_page`` until ``X-WP-TotalPages``)."""
        page, per_page = 1, min(self.settings.page_size, 100)
        while True:
            response = self.request("GET", path, params={"page": page, "per_page": per_page})
            try:
                items = response.json()
            except ValueError:
                raise SourceError(
                    f"{self.uri}: {path} did not answer JSON; check that HOST is the WordPress site with "
                    "WooCommerce (and that pretty permalinks are on, for /wp-json/)"
                ) from None
            yield from items
            total = response.headers.get("X-WP-TotalPages", "1")
            if page >= (int(total) if total.isdigit() else 1):
                return
            page += 1


def _woo_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"HTTP {response.status_code} {body.get('code')}: {body.get('message')}"
    except ValueError:
        return f"HTTP {response.status_code}"


class WooCommerceSource(Source):
    """``woocommerce://HOST``: every product (and its variations) of the store."""

    def __init__(self, uri: str, settings: SourceSettings):
        self.settings = settings
        parts = urlsplit(uri)
        self.uri = f"woocommerce://{parts.netloc}{parts.path.rstrip('/')}"

    def read(self) -> Catalog:
        client = WooClient(self.uri, self.settings)
        problems = Problems(file=self.uri)
        products = []
        try:
            for position, node in enumerate(client.pages("/products"), start=1):
                variations = (
                    list(client.pages(f"/products/{node['id']}/variations"))
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
