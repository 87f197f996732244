"""Shopify (Admin GraphQL) and WooCommerce (REST v3) sources: the real httpx clients against local
HTTPS fakes with pagination, the cost throttle, 429/503/5xx, bad credentials and redaction."""

from __future__ import annotations

import logging
import time

import pytest

from packshot.sources import SourceError, SourceSettings, open_source
from packshot.sources.shopify import PAGE_PRODUCTS, ShopifyClient
from tests.fakes.shopify import FakeShopify
from tests.fakes.tls import local_tls
from tests.fakes.woocommerce import FakeWooCommerce

TOKEN = "shpat_test_0123456789abcdef"
WOO_KEY, WOO_SECRET = "ck_test_key_0123456789", "cs_test_secret_9876543210"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return local_tls(tmp_path_factory.mktemp("store-tls"))


@pytest.fixture
def shopify(tls, monkeypatch):
    ca_pem, context = tls
    fake = FakeShopify(TOKEN).start(context)
    monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", TOKEN)
    settings = SourceSettings(shopify_base_url=fake.base_url, ca_bundle=ca_pem, max_wait_s=2.0)
    yield fake, settings
    fake.stop()


def _fill_store(fake: FakeShopify, count: int) -> None:
    for n in range(count):
        fake.add_product(f"tee-{n:02d}", f"Tee {n}", colors=("Navy", "Sage"), product_type="T-Shirts",
                         images=(f"https://cdn.shopify.fake/s/files/1/tee-{n}.jpg?v=1",),
                         updated=f"2026-11-{1 + n % 28:02d}T10:00:00Z")


def test_shopify_store_is_read_across_pages_with_store_ids_and_versions(shopify):
    fake, settings = shopify
    _fill_store(fake, 2 * PAGE_PRODUCTS + 3)
    first = fake.products[0]
    first["media"].append({"id": "gid://shopify/MediaImage/9", "status": "READY", "alt": "ours", "polls": 0,
                           "image": {"url": "https://cdn.shopify.fake/s/files/1/packshot-tee-00-shopify.jpg"}})
    first["media"].append({"id": "gid://shopify/MediaImage/8", "status": "PROCESSING", "alt": "", "polls": 0,
                           "image": None})
    bare = fake.add_product("no-photo", "No photo")
    fake.products[5]["variants"] *= 20  # 40 variants: more than one query reads
    catalog = open_source("shopify://northwind", settings).read()
    assert catalog.format == "shopify-store" and catalog.path == "shopify://northwind"
    assert len(catalog.products) == 2 * PAGE_PRODUCTS + 3 and fake.count("Products") == 3
    tee = catalog.products[0]
    assert tee.sku == "tee-00" and tee.title == "Tee 0" and tee.category == "T-Shirts"
    assert tee.images == ["https://cdn.shopify.fake/s/files/1/tee-0.jpg?v=1"]  # not ours, not processing
    assert [c.name for c in tee.colors] == ["Navy", "Sage"]
    assert tee.source_ref == "gid://shopify/Product/1" and tee.source_version == "2026-11-01T10:00:00Z"
    (error,) = catalog.errors
    assert error.sku == "no-photo" and error.line == len(fake.products) and error.column == "media"
    assert bare["handle"] == error.sku
    assert catalog.notes == ["1 product(s) have more than 30 variants or 20 images (first: tee-05); their "
                             "first ones were read"]


def test_shopify_variant_image_is_its_color_photo(shopify):
    fake, settings = shopify
    cdn = "https://cdn.shopify.fake/s/files/1"
    fake.add_product("bag", "Bag", colors=("Red", "Blue", "Sand"),
                     images=(f"{cdn}/bag.jpg?v=1", f"{cdn}/bag-red.jpg?v=1"),
                     variant_images=(f"{cdn}/bag-red.jpg?v=7", None, f"{cdn}/elsewhere.jpg"))
    (bag,) = open_source("shopify://northwind", settings).read().products
    # The variant's image is one of the product's media (whatever its ?v=); an image that is not
    # among the media is not used.
    assert [(c.name, c.image) for c in bag.colors] == [
        ("Red", f"{cdn}/bag-red.jpg?v=1"), ("Blue", None), ("Sand", None)]


def test_shopify_cost_throttle_is_answered_by_waiting(shopify):
    fake, settings = shopify
    _fill_store(fake, 3 * PAGE_PRODUCTS)
    fake.restore_rate = 4000.0  # a page costs 818 of a 1000 bucket: every next page must wait a little
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    client = ShopifyClient("shopify://northwind", settings, sleep=sleep)
    assert len(list(client.products())) == 3 * PAGE_PRODUCTS
    assert fake.throttled == 0 and waits and all(0 < w < 1 for w in waits)  # waited instead of being refused

    fake.force_throttle = 2  # Shopify says THROTTLED anyway: wait and send again
    waits.clear()
    assert len(list(client.products())) == 3 * PAGE_PRODUCTS
    assert fake.throttled == 2 and len(waits) >= 2
    client.close()


def test_shopify_429_503_and_5xx_are_retried_with_retry_after(shopify):
    fake, settings = shopify
    settings = settings.model_copy(update={"max_wait_s": 0.05})  # Retry-After and back-off, capped
    _fill_store(fake, PAGE_PRODUCTS + 1)
    fake.fail_next("Products", 429, 503, 502)
    catalog = open_source("shopify://northwind.myshopify.com", settings).read()
    assert len(catalog.products) == PAGE_PRODUCTS + 1 and fake.count("Products") == 2 + 3

    fake.fail_next("Products", 500, 500, 500)
    with pytest.raises(SourceError, match="HTTP 500 after 3 tries"):
        open_source("shopify://northwind", settings.model_copy(update={"max_attempts": 3})).read()


def test_shopify_token_never_reaches_logs_or_errors(shopify, monkeypatch, caplog):
    fake, settings = shopify
    _fill_store(fake, 2)
    caplog.set_level(logging.DEBUG)
    open_source("shopify://northwind", settings).read()
    monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", "shpat_wrong_token_000000")
    with pytest.raises(SourceError) as refused:
        open_source("shopify://northwind", settings).read()
    assert "refused the access token (HTTP 401)" in str(refused.value)
    monkeypatch.delenv("SHOPIFY_ACCESS_TOKEN")
    with pytest.raises(SourceError, match="SHOPIFY_ACCESS_TOKEN"):
        open_source("shopify://northwind", settings).read()
    text = caplog.text + str(refused.value)
    assert "shpat_" not in text and TOKEN not in text
    assert any("graphql.json" in r.getMessage() for r in caplog.records)  # httpx did log the requests


def test_shopify_uri_must_name_a_shop():
    with pytest.raises(SourceError, match="shopify://SHOP"):
        open_source("shopify://not a shop")


@pytest.fixture
def woo(tls, monkeypatch):
    ca_pem, context = tls
    fake = FakeWooCommerce(WOO_KEY, WOO_SECRET).start(context)
    monkeypatch.setenv("WOOCOMMERCE_CONSUMER_KEY", WOO_KEY)
    monkeypatch.setenv("WOOCOMMERCE_CONSUMER_SECRET", WOO_SECRET)
    settings = SourceSettings(ca_bundle=ca_pem, page_size=5, max_wait_s=1.0)
    yield fake, settings, fake.base_url.replace("https://", "woocommerce://")
    fake.stop()


def test_woocommerce_store_is_read_page_by_page_with_variations(woo):
    fake, settings, uri = woo
    for n in range(11):
        fake.add_product(f"MUG-{n}", f"Mug {n}", images=(f"https://woo.fake/mug-{n}.jpg",))
    tee = fake.add_product("TEE", "Tee", kind="variable", images=("https://woo.fake/tee.jpg",),
                           colors=("Navy", "Sage"), variation_images=("https://woo.fake/tee-navy.jpg",
                                                                      "https://woo.fake/tee-sage.jpg"))
    fake.variations[tee["id"]][1]["date_modified_gmt"] = "2026-11-30T11:30:00"
    fake.add_product("", "No sku, no photo")
    fake.fail_next("products", 429, 500)
    catalog = open_source(uri, settings).read()
    assert catalog.format == "woocommerce-store"
    assert fake.count("products") == 3 + 2  # 13 products, 5 per page, plus the two injected failures
    assert fake.count("variations") == 1
    by_sku = {p.sku: p for p in catalog.products}
    assert len(by_sku) == 12
    product = by_sku["TEE"]
    assert product.images == ["https://woo.fake/tee.jpg", "https://woo.fake/tee-navy.jpg",
                              "https://woo.fake/tee-sage.jpg"]
    assert [c.name for c in product.colors] == ["Navy", "Sage"] and product.category == "Tees"
    assert [c.image for c in product.colors] == ["https://woo.fake/tee-navy.jpg",  # photographed variants
                                                 "https://woo.fake/tee-sage.jpg"]
    assert product.source_ref == str(tee["id"]) and product.source_version == "2026-11-30T11:30:00"
    (error,) = catalog.errors
    assert error.sku == f"id-{fake.products[-1]['id']}" and error.line == 13 and "no image" in error.message


def test_woocommerce_bad_keys_are_refused_without_showing_them(woo, monkeypatch, caplog):
    fake, settings, uri = woo
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("WOOCOMMERCE_CONSUMER_SECRET", "cs_wrong_secret_123456")
    with pytest.raises(SourceError) as refused:
        open_source(uri, settings).read()
    assert "refused the API keys (HTTP 401)" in str(refused.value)
    assert "cs_" not in caplog.text + str(refused.value) and WOO_SECRET not in caplog.text
    monkeypatch.delenv("WOOCOMMERCE_CONSUMER_KEY")
    with pytest.raises(SourceError, match="WOOCOMMERCE_CONSUMER_KEY"):
        open_source(uri, settings).read()


def test_woocommerce_needs_https(tls, monkeypatch):
    """A store that only speaks plain HTTP is not sent the keys (Basic auth needs HTTPS)."""
    fake = FakeWooCommerce(WOO_KEY, WOO_SECRET).start()  # no TLS
    monkeypatch.setenv("WOOCOMMERCE_CONSUMER_KEY", WOO_KEY)
    monkeypatch.setenv("WOOCOMMERCE_CONSUMER_SECRET", WOO_SECRET)
    try:
        with pytest.raises(SourceError, match="HTTPS"):
            open_source(fake.base_url.replace("http://", "woocommerce://"),
                        SourceSettings(ca_bundle=tls[0], max_attempts=1)).read()
        assert fake.count("products") == 0
    finally:
        fake.stop()


def test_a_store_answering_html_is_a_clear_error(shopify, woo, monkeypatch):
    from tests.fakes.server import Response

    fake, settings = shopify
    monkeypatch.setattr(fake, "route", lambda name, request: Response(200, b"<html>Password</html>"))
    with pytest.raises(SourceError, match="not JSON"):
        open_source("shopify://northwind", settings).read()
    woo_fake, woo_settings, uri = woo
    monkeypatch.setattr(woo_fake, "route", lambda name, request: Response(200, b"<html>Blog</html>"))
    with pytest.raises(SourceError, match="did not answer JSON"):
        open_source(uri, woo_settings).read()


# ------------------------------------------------------------------ stores that misbehave (issue 21)


def test_a_shopify_cursor_that_repeats_or_is_missing_ends_the_listing(shopify, monkeypatch):
    fake, settings = shopify
    _fill_store(fake, 3)
    pages = fake._products

    def looping(variables, request):  # a store whose next page is always the same cursor
        page = pages(variables, request)
        page["products"]["pageInfo"] = {"hasNextPage": True, "endCursor": "3"}
        return page

    monkeypatch.setattr(fake, "_products", looping)
    with pytest.raises(SourceError, match="sent cursor .3. again") as loop:
        open_source("shopify://northwind", settings).read()
    assert fake.count("Products") == 2 and "\n" not in str(loop.value)

    def no_cursor(variables, request):
        page = pages(variables, request)
        page["products"]["pageInfo"] = {"hasNextPage": True, "endCursor": None}
        return page

    monkeypatch.setattr(fake, "_products", no_cursor)
    with pytest.raises(SourceError, match="has a next page but gives no cursor"):
        open_source("shopify://northwind", settings).read()
    assert fake.count("Products") == 3


def test_shopify_listing_stops_at_the_page_cap(shopify):
    fake, settings = shopify
    _fill_store(fake, 3 * PAGE_PRODUCTS)
    with pytest.raises(SourceError, match="sources.max_pages = 2"):
        open_source("shopify://northwind", settings.model_copy(update={"max_pages": 2})).read()
    assert fake.count("Products") == 2


def test_woocommerce_claiming_a_billion_pages_is_read_to_its_last_real_page(woo, monkeypatch):
    fake, settings, uri = woo
    for n in range(11):
        fake.add_product(f"MUG-{n}", f"Mug {n}", images=(f"https://woo.fake/mug-{n}.jpg",))
    page = fake._page

    def billion(items, request):
        response = page(items, request)
        response.headers["X-WP-TotalPages"] = "1000000000"
        return response

    monkeypatch.setattr(fake, "_page", billion)
    catalog = open_source(uri, settings).read()
    assert len(catalog.products) == 11 and fake.count("products") == 3  # 5 + 5 + a short page of 1

    def capped(items, request):  # a store that gives 3 per page whatever is asked: the first page says so
        request.query["per_page"] = ["3"]
        return billion(items, request)

    monkeypatch.setattr(fake, "_page", capped)
    assert len(open_source(uri, settings).read().products) == 11 and fake.count("products") == 3 + 4
    monkeypatch.setattr(fake, "_page", billion)

    fake.products = fake.products[:10]  # two full pages, then an empty one
    assert len(open_source(uri, settings).read().products) == 10 and fake.count("products") == 7 + 3

    def same_page(items, request):  # every page the first one, for ever
        request.query["page"] = ["1"]
        return billion(items, request)

    monkeypatch.setattr(fake, "_page", same_page)
    with pytest.raises(SourceError, match="sent page 2 the same as page 1"):
        open_source(uri, settings).read()
    with pytest.raises(SourceError, match="sources.max_pages = 1"):
        open_source(uri, settings.model_copy(update={"max_pages": 1})).read()


class _Trickle:
    """An HTTPS server that answers every request one byte at a time, for ever (until the client leaves)."""

    def __init__(self, context, every_s: float = 0.2):
        import socket
        import threading

        self.every_s, self.stop = every_s, threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.context = context
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import threading

        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
            tls.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 10**6:
                if self.stop.wait(self.every_s):
                    break
                tls.sendall(bytes([byte]))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


def test_a_store_trickling_its_answer_ends_at_the_total_deadline(tls, monkeypatch):
    """One byte every 0.2 s never trips the per-read timeout (30 s); the request's total deadline ends it."""
    ca_pem, context = tls
    server = _Trickle(context)
    monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("WOOCOMMERCE_CONSUMER_KEY", WOO_KEY)
    monkeypatch.setenv("WOOCOMMERCE_CONSUMER_SECRET", WOO_SECRET)
    settings = SourceSettings(shopify_base_url=f"https://127.0.0.1:{server.port}", ca_bundle=ca_pem,
                              timeout_s=30.0, request_deadline_s=1.5, max_attempts=2, max_wait_s=0.05)
    try:
        with pytest.raises(SourceError, match="request_deadline_s = 1.5 s") as shopify_error:
            open_source("shopify://northwind", settings).read()
        with pytest.raises(SourceError, match="request_deadline_s = 1.5 s") as woo_error:
            open_source(f"woocommerce://127.0.0.1:{server.port}", settings).read()
    finally:
        server.close()
    for error in (shopify_error.value, woo_error.value):
        assert "\n" not in str(error) and TOKEN not in str(error) and WOO_SECRET not in str(error)


@pytest.mark.parametrize(("body", "said"), [
    (b"[]", "cannot use"),
    (b'{"data": null}', "without data"),
    (b'{"data": {"products": {"nodes": [{"handle": "x"}], "pageInfo": {"hasNextPage": false}}}}',
     "products.nodes.0.id"),
    (b"<html><body>Enter the store password</body></html>", "not JSON"),
])
def test_shopify_answers_that_are_not_what_the_api_documents_are_one_line(shopify, monkeypatch, body, said):
    from tests.fakes.server import Response

    fake, settings = shopify
    monkeypatch.setattr(fake, "route", lambda name, request: Response(200, body))
    with pytest.raises(SourceError, match=said) as refused:
        open_source("shopify://northwind", settings).read()
    text = str(refused.value)
    assert text.startswith("shopify://northwind: ") and "\n" not in text and TOKEN not in text
    assert body.decode()[:20] in text or said == "products.nodes.0.id"  # what it sent, truncated


def test_woocommerce_redirect_or_odd_answers_are_one_line(woo, monkeypatch):
    from tests.fakes.server import Response

    fake, settings, uri = woo
    monkeypatch.setattr(fake, "route", lambda name, request: Response(
        301, b"", {"Location": "https://elsewhere.example/wp-json/wc/v3/products"}))
    with pytest.raises(SourceError, match="answered a redirect .*elsewhere.example"):
        open_source(uri, settings).read()
    monkeypatch.setattr(fake, "route", lambda name, request: Response.json(200, {"products": []}))
    with pytest.raises(SourceError, match="cannot use"):
        open_source(uri, settings).read()
    monkeypatch.setattr(fake, "route", lambda name, request: Response.json(200, [{"name": "no id"}]))
    with pytest.raises(SourceError, match=r"page 1\) answered .*id: Field required"):
        open_source(uri, settings).read()


def test_store_addresses_have_one_spelling():
    from packshot.sources.base import store_uri

    assert store_uri("woocommerce://LOCALHOST") == store_uri("woocommerce://localhost/") == "woocommerce://localhost"
    assert store_uri("woocommerce://Shop.Example.COM.:443//wp/") == "woocommerce://shop.example.com/wp"
    assert store_uri("woocommerce://shop.example.com:8443") == "woocommerce://shop.example.com:8443"
    assert store_uri("shopify://NorthWind.myshopify.com.") == store_uri("shopify://northwind") == "shopify://northwind"
