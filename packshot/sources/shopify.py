"""Shopify stores through the Admin GraphQL API: the catalog source and the client ``publish`` uses.

``POST https://{shop}.myshopify.com/admin/api/{version}/graphql.json`` with the header
``X-Shopify-Access-Token``. The token comes from ``SHOPIFY_ACCESS_TOKEN`` or a Prefect Secret
block (``packshot.secrets``) and is registered for redaction: it never reaches a log, an error or
a file. Rate limits are answered by waiting: the cost-based bucket (``extensions.cost.throttleStatus``)
is tracked so a query is sent only when the bucket holds its cost, a ``THROTTLED`` answer waits
until it would; HTTP 429/503 wait for ``Retry-After``; other 5xx and dropped connections back off
exponentially (tenacity), up to ``sources.max_attempts`` tries.

Mapping: handle -> sku (as the Shopify CSV export), title, productType -> category, READY image
media -> images (media packshot itself published, named ``packshot-*``, are left out), a variant's
image -> its color's own photo (one of the media), variants'
color option values -> colors, ``id`` -> source_ref, ``updatedAt`` -> source_version.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx

from packshot import __version__
from packshot.catalog.fields import is_color_option, sku_problem
from packshot.secrets import get_secret, redact
from packshot.sources.base import Source, SourceError, SourceSettings
from packshot.sources.mapping import ColorList, Problems, build_product
from packshot.sources.retry import RetryLater, call_with_retries, raise_if_busy
from packshot.types import Catalog

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
    """``shopify://northwind`` or ``shopify://northwind.myshopify.com`` -> ``northwind.myshopify.com``."""
    shop = urlsplit(uri).netloc.lower().removesuffix(".myshopify.com")
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


class ShopifyClient:
    """GraphQL calls with the throttle, retries and redaction described in the module doc."""

    def __init__(
        self,
        uri: str,
        settings: SourceSettings,
        *,
        token: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.domain = shop_domain(uri)
        self.uri = f"shopify://{self.domain.removesuffix('.myshopify.com')}"
        self.settings = settings
        base = (settings.shopify_base_url or f"https://{self.domain}").rstrip("/")
        self.endpoint = f"{base}/admin/api/{settings.shopify_api_version}/graphql.json"
        self._token = token or shopify_token(settings)
        self._sleep = sleep
        self._bucket = _Bucket()
        self._last_cost = 50.0
        verify: Any = str(settings.ca_bundle) if settings.ca_bundle else True
        self.http = httpx.Client(
            timeout=settings.timeout_s, verify=verify, headers={"User-Agent": f"packshot/{__version__}"}
        )

    def close(self) -> None:
        self.http.close()

    def query(
        self, document: str, variables: dict[str, Any] | None = None, *, idempotent: bool = True
    ) -> dict[str, Any]:
        """``data`` of a GraphQL call; SourceError (redacted) when Shopify refuses or keeps failing.
        ``idempotent=False`` (mutations that create things): sent again only when Shopify certainly
        did nothing (429, THROTTLED, no connection), see :mod:`packshot.sources.retry`."""
        try:
            return call_with_retries(self._post, document, variables or {}, uri=self.uri,
                                     settings=self.settings, idempotent=idempotent, sleep=self._sleep)
        except httpx.TransportError as exc:
            raise SourceError(
                redact(
                    f"{self.uri}: no answer from {self.endpoint} ({exc}); check the shop name "
                    "and the network",
                    (self._token,),
                )
            ) from None

    def _post(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        if (wait := self._bucket.wait_for(self._last_cost, time.monotonic())) > 0:
            self._sleep(min(wait, self.settings.max_wait_s))
        response = self.http.post(
            self.endpoint,
            json={"query": document, "variables": variables},
            headers={"X-Shopify-Access-Token": self._token},
        )
        raise_if_busy(response, "Shopify")
        status = response.status_code
        if status in (401, 403):
            raise SourceError(
                f"{self.uri}: Shopify refused the access token (HTTP {status}); check "
                f"{self.settings.shopify_token_env} and the app's scopes (read_products; write_products and "
                "write_files to publish)"
            )
        if status != 200:
            raise SourceError(
                redact(f"{self.uri}: HTTP {status} from the Admin API: {response.text[:300]}", (self._token,))
            )
        try:
            body = response.json()
        except ValueError:
            raise SourceError(
                f"{self.uri}: the Admin API answered something that is not JSON; check the shop name "
                "(a password page or a proxy answers HTML)"
            ) from None
        cost = (body.get("extensions") or {}).get("cost") or {}
        self._remember(cost)
        errors = body.get("errors") or []
        if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
            needed = float(cost.get("requestedQueryCost") or self._last_cost)
            wait = max(self._bucket.wait_for(needed, time.monotonic()), 0.05)
            raise RetryLater("Shopify kept throttling the API (query cost)", wait, unprocessed=True)
        if errors:
            text = "; ".join(str(e.get("message")) for e in errors)[:500]
            raise SourceError(redact(f"{self.uri}: the Admin API refused the query: {text}", (self._token,)))
        return body.get("data") or {}

    def _remember(self, cost: dict[str, Any]) -> None:
        status = cost.get("throttleStatus")
        if status:
            self._bucket = _Bucket(
                float(status["currentlyAvailable"]),
                float(status["maximumAvailable"]),
                float(status["restoreRate"]),
                time.monotonic(),
            )
        if cost.get("requestedQueryCost"):
            self._last_cost = float(cost["requestedQueryCost"])

    def products(self) -> Iterator[dict[str, Any]]:
        """Every product node, page by page (cursor pagination)."""
        after = None
        while True:
            page = self.query(PRODUCTS_QUERY, {"first": PAGE_PRODUCTS, "after": after})["products"]
            yield from page["nodes"]
            if not page["pageInfo"]["hasNextPage"]:
                return
            after = page["pageInfo"]["endCursor"]


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
