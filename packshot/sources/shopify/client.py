"""The Shopify client (Admin GraphQL API): reading products and uploading media, for the catalog
source (:mod:`packshot.sources.shopify.source`) and ``packshot publish``.

``POST https://{shop}.myshopify.com/admin/api/{version}/graphql.json`` with the header
``X-Shopify-Access-Token``. The token comes from ``SHOPIFY_ACCESS_TOKEN`` or a Prefect Secret
block (``packshot.secrets``) and is registered for redaction: it never reaches a log, an error or
a file. Rate limits are answered by waiting: the cost-based bucket (``extensions.cost.throttleStatus``)
is tracked so a query is sent only when the bucket holds its cost, a ``THROTTLED`` answer waits
until it would; HTTP 429/503 wait for ``Retry-After``; other 5xx and dropped connections back off
exponentially (tenacity), up to ``sources.max_attempts`` tries.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from packshot.config import LoadSettings
from packshot.secrets import get_secret, redact
from packshot.sources.base import SourceError, SourceSettings, store_uri
from packshot.sources.retry import RetryLater, call_with_retries, raise_if_busy
from packshot.sources.shopify.media import MediaWrites
from packshot.sources.shopify.models import (
    Envelope,
    ProductByIdAnswer,
    ProductRef,
    ProductsAnswer,
    ProductsByHandleAnswer,
)
from packshot.sources.transport import (
    Model,
    deadline_error,
    parse_answer,
    past_deadline,
    shown,
    store_http,
    within,
)

PUBLISHED_PREFIX = "packshot-"  # file names of media packshot uploads (left out when reading)
PAGE_PRODUCTS, PAGE_VARIANTS, PAGE_MEDIA = 16, 30, 20  # requested cost ~ 16 x (1 + 30 + 20) < 1000
_SHOP = re.compile(r"^[a-z0-9][a-z0-9-]*$")

PRODUCTS_QUERY = """
query Products($first: Int!, $after: String) {
  products(first: $first, after: $after, sortKey: ID) {
    nodes {
      id handle title productType updatedAt
      variants(first: {variants}) {
        nodes { sku selectedOptions { name value } image { url } } pageInfo { hasNextPage }
      }
      media(first: {media}) {
        nodes { ... on MediaImage { id status alt image { url } } } pageInfo { hasNextPage }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
""".replace("{variants}", str(PAGE_VARIANTS)).replace("{media}", str(PAGE_MEDIA))
PRODUCT_BY_ID = "query ProductById($id: ID!) { product(id: $id) { id handle title } }"
PRODUCT_BY_HANDLE = (
    "query ProductByHandle($q: String!) { products(first: 1, query: $q) { nodes { id handle title } } }"
)


@dataclass
class _Bucket:
    """The last throttle status Shopify reported, to wait before a query instead of being refused."""

    available: float = 0.0
    maximum: float = 0.0
    restore_rate: float = 0.0
    seen_at: float = 0.0

    def wait_for(self, cost: float, now: float) -> float:
        if not self.restore_rate:
            return 0.0
        have = min(self.maximum, self.available + (now - self.seen_at) * self.restore_rate)
        return max(0.0, (min(cost, self.maximum) - have) / self.restore_rate)


def shop_domain(uri: str) -> str:
    """``shopify://northwind`` or ``shopify://NorthWind.myshopify.com.`` -> ``northwind.myshopify.com``."""
    shop = store_uri(uri).partition("://")[2]
    if not _SHOP.match(shop):
        raise SourceError(
            f"{uri!r} does not name a Shopify store; write shopify://SHOP where SHOP.myshopify.com is the "
            "store's admin address"
        )
    return f"{shop}.myshopify.com"


def shopify_token(settings: SourceSettings) -> str:
    token = get_secret(
        settings.shopify_token_env, settings.shopify_secret_block, setting="sources.shopify_secret_block"
    )
    if not token:
        raise SourceError(
            f"no Shopify access token: set {settings.shopify_token_env} to an Admin API access token "
            "(scopes read_products, and write_products + write_files for publish), or name a Prefect "
            "Secret block holding it in PACKSHOT_SOURCES__SHOPIFY_SECRET_BLOCK"
        )
    return token


class ShopifyClient(MediaWrites):
    """GraphQL calls with the throttle, retries, deadlines, answer checks and redaction described in the
    module doc; reading products here, media writes from
    :class:`~packshot.sources.shopify.media.MediaWrites`."""

    def __init__(
        self,
        uri: str,
        settings: SourceSettings,
        *,
        token: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        load: LoadSettings | None = None,
    ):
        self.domain = shop_domain(uri)
        self.uri = f"shopify://{self.domain.removesuffix('.myshopify.com')}"
        self.settings = settings
        self.load = load or LoadSettings()  # the SSRF rules an upload target is held to
        base = (settings.shopify_base_url or f"https://{self.domain}").rstrip("/")
        self.endpoint = f"{base}/admin/api/{settings.shopify_api_version}/graphql.json"
        self._token = token or shopify_token(settings)
        self._sleep = sleep
        self._bucket = _Bucket()
        self._last_cost = 50.0
        self.http = store_http(settings.ca_bundle, settings.timeout_s)

    def close(self) -> None:
        self.http.close()

    def redact(self, text: str) -> str:
        return redact(text, (self._token,))

    def query(
        self,
        document: str,
        variables: dict[str, Any] | None,
        answer: type[Model],
        *,
        what: str,
        idempotent: bool = True,
    ) -> Model:
        """``data`` of a GraphQL call, checked as ``answer``; SourceError (redacted) when Shopify refuses,
        keeps failing, answers too slowly or sends something else. ``idempotent=False`` (mutations that
        create things): sent again only when Shopify certainly did nothing (429, THROTTLED, no
        connection), see :mod:`packshot.sources.retry`."""
        try:
            data = call_with_retries(self._post, document, variables or {}, what, uri=self.uri,
                                     settings=self.settings, idempotent=idempotent, sleep=self._sleep)
        except httpx.TransportError as exc:
            raise SourceError(
                self.redact(f"{self.uri}: no answer from {self.endpoint} ({exc}); check the shop name "
                            "and the network")
            ) from None
        return parse_answer(answer, data, uri=self.uri, what=what, raw=repr(data), secrets=(self._token,))

    def _post(self, document: str, variables: dict[str, Any], what: str) -> dict[str, Any]:
        if (wait := self._bucket.wait_for(self._last_cost, time.monotonic())) > 0:
            self._sleep(min(wait, self.settings.max_wait_s))
        with within(self.settings.request_deadline_s):
            try:
                response = self.http.post(
                    self.endpoint,
                    json={"query": document, "variables": variables},
                    headers={"X-Shopify-Access-Token": self._token},
                )
            except httpx.TimeoutException:
                if past_deadline():
                    raise deadline_error(self.uri, what, self.settings.request_deadline_s) from None
                raise
        raise_if_busy(response, "Shopify")
        status = response.status_code
        if status in (401, 403):
            raise SourceError(
                f"{self.uri}: Shopify refused the access token (HTTP {status}); check "
                f"{self.settings.shopify_token_env} and the app's scopes (read_products; write_products and "
                "write_files to publish)"
            )
        if status != 200:
            where = f" to {shown(response.headers['location'])}" if response.has_redirect_location else ""
            raise SourceError(self.redact(
                f"{self.uri}: {what} answered HTTP {status}{where}: {shown(response.content)}"
            ))
        try:
            payload = response.json()
        except ValueError:
            raise SourceError(self.redact(
                f"{self.uri}: {what} answered something that is not JSON ({shown(response.content)}); check "
                "the shop name (a password page or a proxy answers HTML)"
            )) from None
        body = parse_answer(Envelope, payload, uri=self.uri, what=what, raw=response.content,
                            secrets=(self._token,))
        cost = (body.extensions or {}).get("cost") or {}
        self._remember(cost)
        errors = body.errors or []
        if isinstance(errors, str):
            raise SourceError(self.redact(f"{self.uri}: {what} was refused: {shown(errors)}"))
        if any((e.extensions or {}).get("code") == "THROTTLED" for e in errors):
            needed = float(cost.get("requestedQueryCost") or self._last_cost)
            wait = max(self._bucket.wait_for(needed, time.monotonic()), 0.05)
            raise RetryLater("Shopify kept throttling the API (query cost)", wait, unprocessed=True)
        if errors:
            text = "; ".join(e.message for e in errors)[:500]
            raise SourceError(self.redact(f"{self.uri}: the Admin API refused the query: {text}"))
        if body.data is None:
            raise SourceError(self.redact(
                f"{self.uri}: {what} answered without data and without errors; it sent "
                f"{shown(response.content)}"
            ))
        return body.data

    def _remember(self, cost: dict[str, Any]) -> None:
        status = cost.get("throttleStatus")
        try:
            if status:
                self._bucket = _Bucket(
                    float(status["currentlyAvailable"]),
                    float(status["maximumAvailable"]),
                    float(status["restoreRate"]),
                    time.monotonic(),
                )
            if cost.get("requestedQueryCost"):
                self._last_cost = float(cost["requestedQueryCost"])
        except (KeyError, TypeError, ValueError):  # a throttle report we cannot read: wait on refusals only
            self._bucket = _Bucket()

    def products(self) -> Iterator[dict[str, Any]]:
        """Every product node (as a dict), page by page. A cursor that repeats, ``hasNextPage`` without a
        cursor, or more than ``sources.max_pages`` pages end the listing with a SourceError."""
        after: str | None = None
        seen: set[str] = set()
        for page_number in range(1, self.settings.max_pages + 1):
            page = self.query(PRODUCTS_QUERY, {"first": PAGE_PRODUCTS, "after": after}, ProductsAnswer,
                              what="the product listing").products
            yield from (node.model_dump() for node in page.nodes)
            if not page.pageInfo.hasNextPage:
                return
            after = page.pageInfo.endCursor
            if not after:
                raise SourceError(f"{self.uri}: the product listing says page {page_number} has a next page "
                                  "but gives no cursor to it; stopped reading (a store fault)")
            if after in seen:
                raise SourceError(f"{self.uri}: the product listing sent cursor {shown(after)} again after "
                                  f"page {page_number}; stopped reading (the store pages in a loop)")
            seen.add(after)
        raise SourceError(f"{self.uri}: the product listing did not end within sources.max_pages = "
                          f"{self.settings.max_pages} pages; stopped reading (raise "
                          "PACKSHOT_SOURCES__MAX_PAGES for a store this large)")

    def product_by_id(self, product_id: str) -> ProductRef | None:
        found = self.query(PRODUCT_BY_ID, {"id": product_id}, ProductByIdAnswer, what="the product lookup")
        return found.product

    def product_by_handle(self, handle: str) -> ProductRef | None:
        found = self.query(PRODUCT_BY_HANDLE, {"q": f"handle:{handle}"}, ProductsByHandleAnswer,
                           what="the product lookup").products.nodes
        return next((n for n in found if n.handle == handle), None)
