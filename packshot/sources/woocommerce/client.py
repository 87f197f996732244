"""The WooCommerce client (REST API v3): reading products and sending images, for the catalog source
(:mod:`packshot.sources.woocommerce.source`) and ``packshot publish``.

``https://HOST[/path]/wp-json/wc/v3``; the consumer key and secret go as HTTP Basic auth, which
WooCommerce accepts over HTTPS only (plain http would need OAuth 1.0a, not implemented: packshot
refuses http). Keys come from ``WOOCOMMERCE_CONSUMER_KEY`` / ``_SECRET`` or a Prefect Secret block
holding ``KEY:SECRET``, and are registered for redaction. Pages: ``per_page`` (≤ 100) and ``page``
until ``X-WP-TotalPages``, an empty or short page, or ``sources.max_pages`` (a page repeated is an
error); 429/503 wait for ``Retry-After``, other 5xx back off (tenacity). Every request ends within
``sources.request_deadline_s``; every answer is checked against :mod:`.models`; a redirect or an
HTML page (a login, a cache, a moved site) is one error naming the store and what it sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from pydantic import TypeAdapter

from packshot.secrets import get_secret, redact, remember_secret
from packshot.sources.base import SourceError, SourceSettings, store_uri
from packshot.sources.retry import call_with_retries, raise_if_busy
from packshot.sources.transport import (
    Model,
    deadline_error,
    parse_answer,
    past_deadline,
    shown,
    store_http,
    within,
)
from packshot.sources.woocommerce.models import WooError, WooImage, WooProduct

_JSON_LIST = TypeAdapter(list[dict[str, Any]])


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
    """REST v3 calls with Basic auth over HTTPS, retries, deadlines, answer checks and redaction: reading
    products (:meth:`pages`, :meth:`product`, :meth:`product_by_sku`) and sending images
    (:meth:`put_images`)."""

    def __init__(
        self,
        uri: str,
        settings: SourceSettings,
        *,
        credentials: tuple[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.uri = store_uri(uri)
        address = self.uri.partition("://")[2]
        if not address or address.startswith("/"):
            raise SourceError(f"{uri!r} does not name a store; write woocommerce://HOST (or HOST/path)")
        self.base = f"https://{address}/wp-json/wc/v3"
        self.settings = settings
        self._credentials = credentials or woo_credentials(settings)
        self._sleep = sleep
        self.http = store_http(settings.ca_bundle, settings.timeout_s, auth=self._credentials)

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
        with within(self.settings.request_deadline_s):
            try:
                response = self.http.request(method, self.base + path, params=params, json=json)
            except httpx.TimeoutException:
                if past_deadline():
                    seconds = self.settings.request_deadline_s
                    raise deadline_error(self.uri, f"{method} {path}", seconds) from None
                raise
        raise_if_busy(response, "the store")
        status = response.status_code
        if status in (401, 403):
            raise SourceError(
                f"{self.uri}: the store refused the API keys (HTTP {status}); check "
                f"{self.settings.woocommerce_key_env}/{self.settings.woocommerce_secret_env} and "
                "that the key has Read (Read/Write to publish) permission"
            )
        if response.is_redirect:
            raise SourceError(self._redact(
                f"{self.uri}: {method} {path} answered a redirect (HTTP {status} to "
                f"{shown(response.headers.get('location', ''))}); write the store's final address in "
                "woocommerce://HOST[/path] (packshot does not send API keys on to another address)"
            ))
        if status >= 400:
            raise SourceError(self._redact(f"{self.uri}: {method} {path} failed: {self._message(response)}"))
        return response

    def _redact(self, text: str) -> str:
        return redact(text, self._credentials)

    def _message(self, response: httpx.Response) -> str:
        try:
            body = WooError.model_validate(response.json())
            return f"HTTP {response.status_code} {body.code}: {body.message}"
        except ValueError:  # not JSON, or not an error object (pydantic's ValidationError is a ValueError)
            return f"HTTP {response.status_code}: {shown(response.content)}"

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SourceError(self._redact(
                f"{self.uri}: {what} did not answer JSON ({shown(response.content)}); check that HOST is "
                "the WordPress site with WooCommerce (and that pretty permalinks are on, for /wp-json/)"
            )) from None

    def _parse(self, model: type[Model], response: httpx.Response, what: str) -> Model:
        return parse_answer(model, self._json(response, what), uri=self.uri, what=what,
                            raw=response.content, secrets=self._credentials)

    def pages(self, path: str, model: type[Model]) -> Iterator[dict[str, Any]]:
        """Every object of a paged collection, checked as ``model`` and given back as a dict. Stops at
        ``X-WP-TotalPages`` or at an empty page or one shorter than the first (a store may cap
        ``per_page`` below what was asked: the first page shows its real size), whichever comes first;
        a page that repeats the previous one, or more than ``sources.max_pages`` pages, is a SourceError."""
        per_page = min(self.settings.page_size, 100)
        previous: list[Any] | None = None
        full = per_page
        for page in range(1, self.settings.max_pages + 1):
            response = self.request("GET", path, params={"page": page, "per_page": per_page})
            raw = self._json(response, path)
            listing = parse_answer(_JSON_LIST, raw, uri=self.uri, what=path, raw=response.content,
                                   secrets=self._credentials)
            items = [parse_answer(model, item, uri=self.uri, what=f"{path} (page {page})", raw=repr(item),
                                  secrets=self._credentials).model_dump() for item in listing]
            ids = [item.get("id") for item in items]
            if items and ids == previous:
                raise SourceError(f"{self.uri}: {path} sent page {page} the same as page {page - 1}; stopped "
                                  "reading (the store pages in a loop)")
            previous = ids
            yield from items
            total = response.headers.get("X-WP-TotalPages", "1")
            if page == 1:
                full = len(items)
            if not items or len(items) < full or page >= (int(total) if total.isdigit() else 1):
                return
        raise SourceError(f"{self.uri}: {path} did not end within sources.max_pages = "
                          f"{self.settings.max_pages} pages; stopped reading (raise "
                          "PACKSHOT_SOURCES__MAX_PAGES for a store this large)")

    def product(self, product_id: str) -> WooProduct:
        return self._parse(WooProduct, self.request("GET", f"/products/{product_id}"), "GET /products/{id}")

    def product_by_sku(self, sku: str) -> WooProduct | None:
        response = self.request("GET", "/products", params={"sku": sku})
        found = parse_answer(_JSON_LIST, self._json(response, "GET /products?sku="), uri=self.uri,
                             what="GET /products?sku=", raw=response.content, secrets=self._credentials)
        match = next((p for p in found if p.get("sku") == sku), None)
        if match is None:
            return None
        return parse_answer(WooProduct, match, uri=self.uri, what="GET /products?sku=", raw=repr(match),
                            secrets=self._credentials)

    def put_images(self, product_id: str, images: list[dict[str, Any]]) -> list[WooImage]:
        """Set the product's images (``{"id"}`` keeps one, ``{"src", "name", "alt"}`` makes the store
        download a new one); returns the product's images as the store now lists them. Not retried
        unless the store certainly did nothing: the caller looks the result up after a failure."""
        response = self.request("PUT", f"/products/{product_id}", json={"images": images}, idempotent=False)
        return self._parse(WooProduct, response, "PUT /products/{id}").images
