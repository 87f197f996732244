"""Store clients against misbehaving stores, and what looking before sending costs a publish.

Runs the real clients against the tests' HTTPS fakes on 127.0.0.1 (no network):

- a Shopify store whose cursor repeats, and one that says ``hasNextPage`` without a cursor;
- a WooCommerce store claiming ``X-WP-TotalPages: 1000000000``;
- a store trickling one byte every 0.2 s (``--deadline`` seconds allowed per request);
- ``publish --all`` of ``--products`` products x 3 images to the Shopify fake, then again with the
  ledger deleted (every image is looked up in the store by its file name; nothing is sent twice).

    python bench/store_bounds.py --products 40 --deadline 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.publish import LEDGER_NAME, publish  # noqa: E402
from packshot.config import LoadSettings  # noqa: E402
from packshot.sources import SourceError, SourceSettings, open_source  # noqa: E402
from packshot.storage import open_storage  # noqa: E402
from tests.fakes.shopify import FakeShopify  # noqa: E402
from tests.fakes.tls import local_tls  # noqa: E402
from tests.fakes.woocommerce import FakeWooCommerce  # noqa: E402
from tests.test_publish import write_run  # noqa: E402
from tests.test_sources_stores import _Trickle  # noqa: E402

TOKEN, KEY, SECRET = "shpat_bench_0123456789", "ck_bench_0123456789", "cs_bench_0123456789"


def timed(call):
    started = time.perf_counter()
    try:
        result = call()
    except SourceError as exc:
        result = exc
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=40)
    parser.add_argument("--deadline", type=float, default=2.0)
    args = parser.parse_args()
    os.environ.update({"SHOPIFY_ACCESS_TOKEN": TOKEN, "WOOCOMMERCE_CONSUMER_KEY": KEY,
                       "WOOCOMMERCE_CONSUMER_SECRET": SECRET})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ca_pem, context = local_tls(Path(tmp) / "tls")
        shop = FakeShopify(TOKEN).start(context)
        settings = SourceSettings(shopify_base_url=shop.base_url, ca_bundle=ca_pem, max_wait_s=0.05,
                                  request_deadline_s=args.deadline, timeout_s=args.deadline)
        for n in range(3):
            shop.add_product(f"tee-{n}", f"Tee {n}", images=(f"https://cdn.shopify.fake/s/files/1/t{n}.jpg",))
        pages = shop._products
        for name, info in (("Shopify: a cursor that repeats", {"hasNextPage": True, "endCursor": "3"}),
                           ("Shopify: hasNextPage, no cursor", {"hasNextPage": True, "endCursor": None})):
            shop._products = lambda v, r, info=info: {**pages(v, r), "products": {
                **pages(v, r)["products"], "pageInfo": info}}
            before = shop.count("Products")
            _, seconds = timed(lambda: open_source("shopify://bench", settings).read())
            rows.append((name, shop.count("Products") - before, seconds))
        shop._products = pages

        woo = FakeWooCommerce(KEY, SECRET).start(context)
        for n in range(250):
            woo.add_product(f"MUG-{n}", f"Mug {n}", images=(f"https://woo.fake/m{n}.jpg",))
        page = woo._page

        def billion(items, request):
            response = page(items, request)
            response.headers["X-WP-TotalPages"] = "1000000000"
            return response

        woo._page = billion
        uri = woo.base_url.replace("https://", "woocommerce://")
        _, seconds = timed(lambda: open_source(uri, settings).read())
        rows.append(("WooCommerce: X-WP-TotalPages 1e9, 250 products", woo.count("products"), seconds))

        trickle = _Trickle(context)
        slow = settings.model_copy(update={"shopify_base_url": f"https://127.0.0.1:{trickle.port}",
                                           "max_attempts": 1})
        _, seconds = timed(lambda: open_source("shopify://bench", slow).read())
        rows.append((f"a store trickling 1 byte / 0.2 s (deadline {args.deadline:g} s)", 1, seconds))
        trickle.close()

        run = Path(tmp) / "run"
        skus = [f"tee-{n}" for n in range(args.products)]
        for sku in skus[3:]:
            shop.add_product(sku, sku.title())
        write_run(open_storage(run), skus=tuple(skus))
        load = LoadSettings(allowed_networks=["127.0.0.1/32"])
        fast = settings.model_copy(update={"request_deadline_s": 120.0, "timeout_s": 60.0})

        def send():
            return publish(str(run), "shopify://bench", all_=True, settings=fast, load=load)

        calls = len(shop.log)
        first, seconds = timed(send)
        rows.append((f"publish --all: {args.products} products x 3 images (uploaded {first.uploaded})",
                     len(shop.log) - calls, seconds))
        (run / LEDGER_NAME).unlink()
        calls = len(shop.log)
        again, seconds = timed(send)
        rows.append((f"again, ledger deleted (uploaded {again.uploaded}, found {again.already} in the store)",
                     len(shop.log) - calls, seconds))
        shop.stop()
        woo.stop()
    print("| case | requests | seconds |\n|---|---|---|")
    for name, requests, seconds in rows:
        print(f"| {name} | {requests} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
