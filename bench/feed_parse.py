"""Merchant Center feed parsing speed: a generated RSS feed of N items (apparel: groups of four
variants) parsed with the hardened parser into products, and the same rows as a TSV feed.

    python bench/feed_parse.py --items 40000

Image change markers (HEAD requests) are left out: they cost one request per image and depend on
the image server, not on packshot.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packshot.sources.gmc import parse_feed  # noqa: E402

COLORS = ["Navy", "Sage", "Black", "Heather Grey"]


def rss(items: int) -> bytes:
    rows = []
    for n in range(items):
        group, color = n // 4, COLORS[n % 4]
        rows.append(
            f"<item><g:id>P{group}-{n % 4}</g:id><g:title><![CDATA[Product {group} - {color} - M]]></g:title>"
            f"<g:description><![CDATA[Soft <b>cotton</b> &amp; more]]></g:description>"
            f"<g:image_link>https://cdn.example.com/p{group}-{n % 4}.jpg</g:image_link>"
            f"<g:additional_image_link>https://cdn.example.com/p{group}-back.jpg</g:additional_image_link>"
            f"<g:item_group_id>P{group}</g:item_group_id><g:color>{color}</g:color>"
            f"<g:product_type>Apparel &gt; Tops</g:product_type><g:price>20.00 EUR</g:price></item>"
        )
    body = "\n".join(rows)
    return (
        f'<?xml version="1.0"?><rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>\n'
        f"{body}\n</channel></rss>"
    ).encode()


def tsv(items: int) -> bytes:
    lines = ["id\ttitle\timage_link\tadditional_image_link\titem_group_id\tcolor\tproduct_type"]
    for n in range(items):
        group, color = n // 4, COLORS[n % 4]
        lines.append(
            f"P{group}-{n % 4}\tProduct {group} - {color} - M\thttps://cdn.example.com/p{group}-{n % 4}.jpg"
            f"\thttps://cdn.example.com/p{group}-back.jpg\tP{group}\t{color}\tApparel > Tops"
        )
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=40000)
    args = parser.parse_args()
    results = {"items": args.items, "python": platform.python_version(), "machine": platform.machine()}
    for name, data in (("rss", rss(args.items)), ("tsv", tsv(args.items))):
        start = time.perf_counter()
        catalog = parse_feed(data, f"bench.{name}")
        seconds = time.perf_counter() - start
        results[name] = {
            "bytes": len(data),
            "seconds": round(seconds, 3),
            "products": len(catalog.products),
            "errors": len(catalog.errors),
            "items_per_s": round(args.items / seconds),
        }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
