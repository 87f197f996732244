"""How the report and the review page scale: a synthetic run of N products (6 outputs each, every
output a distinct checksum; the image files are absent, so no thumbnails are made and the figures
are the HTML and JSON alone), then report.html's size and write time, headless Chromium's time to
load it, and the review API's time to index the manifest and serve a page of 50 products.

    python bench/review_scale.py --products 10000
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.manifest import RunTally
from orchestrator.report import write_report
from packshot.schemas.results import OutputRecord, ProductResult, RunManifest
from packshot.storage import LocalStorage
from tests.review_run import write_manifest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def synthetic_run(n: int) -> RunManifest:
    products = []
    for i in range(n):
        sku = f"SKU-{i:05d}"
        outputs = []
        for j, (kind, preset) in enumerate([("cutout", None), ("packshot", "amazon-main"),
                                            ("packshot", "shopify"), ("packshot", "etsy"),
                                            ("background", "shopify"), ("scene", "shopify")]):
            sha = hashlib.sha256(f"{i}-{j}".encode()).hexdigest()
            scene = 0 if kind == "scene" else None
            outputs.append(OutputRecord(sku=sku, kind=kind, preset=preset, scene=scene,
                                        key=f"{sku}/{kind}-{preset or 'x'}.jpg", uri="u", format="JPEG",
                                        width=2000, height=2000, bytes=400_000, sha256=sha,
                                        source_file="catalog.csv", source_line=i + 2))
        notes = ["segment: the photo does not look like a studio shot"] if i % 9 == 0 else []
        products.append(ProductResult(sku=sku, status="done", outputs=outputs, notes=notes,
                                      source_file="catalog.csv", source_line=i + 2,
                                      source_image=f"images/{sku}.jpg", seconds=1.2))
    tally = RunTally()
    for p in products:
        tally.add(p)
    return RunManifest(catalog="catalog.csv", catalog_format="packshot", output="out", stages=["segment"],
                       started=datetime.now(UTC), presets=["amazon-main"], notes=tally.note_list(),
                       products=products)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10_000)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="review-scale-"))
    storage = LocalStorage(out)
    manifest = synthetic_run(args.products)
    write_manifest(storage, manifest)
    t = time.perf_counter()
    write_report(storage, manifest)
    print(f"report.html: {(out / 'report.html').stat().st_size / 1e6:.1f} MB for {args.products} products, "
          f"written in {time.perf_counter() - t:.2f} s")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto("about:blank")
        t = time.perf_counter()
        page.goto((out / "report.html").as_uri(), wait_until="load", timeout=300_000)
        loaded = time.perf_counter() - t
        timing = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0].toJSON())")
        import json

        nav = json.loads(timing)
        print(f"chromium: DOMContentLoaded {nav['domContentLoadedEventEnd'] / 1000:.2f} s, "
              f"load {nav['loadEventEnd'] / 1000:.2f} s (wall {loaded:.2f} s); "
              f"sections {page.locator('section.page').count()}, "
              f"visible {page.locator('section.page:visible').count()}")
        browser.close()

    from fastapi.testclient import TestClient

    from orchestrator.review.server import create_app

    t = time.perf_counter()
    client = TestClient(create_app(out), base_url="http://127.0.0.1")
    print(f"review app: manifest indexed in {time.perf_counter() - t:.2f} s")
    last = args.products - 50
    for params in ({"limit": 50}, {"limit": 50, "offset": last}, {"limit": 50, "warning": "notes"},
                   {"limit": 50, "q": "SKU-09"}):
        t = time.perf_counter()
        r = client.get("/api/products", params=params)
        r.raise_for_status()
        print(f"  /api/products {params}: {len(r.content) / 1e3:.0f} kB in {time.perf_counter() - t:.3f} s "
              f"(total {r.json()['total']})")


if __name__ == "__main__":
    main()
