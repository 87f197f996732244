"""A fake WooCommerce REST API v3 (``/wp-json/wc/v3``) over HTTPS on 127.0.0.1.

Basic auth with a consumer key and secret; ``GET /products`` and ``/products/{id}/variations`` paged
with ``page``/``per_page`` and the ``X-WP-Total``/``X-WP-TotalPages`` headers; ``GET /products/{id}``,
``GET /products?sku=``; ``PUT /products/{id}`` with ``images``: ``{"id"}`` keeps an image, ``{"src"}``
makes the store download the URL (really: over HTTP, so a presigned S3 link is checked end to end),
and the list replaces the product's images. ``crash_after_put`` applies the next PUT and then gives
no answer (a store that did the work while the client died).
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import httpx

from tests.fakes.server import FakeAPI, Request, Response

BASE = "/wp-json/wc/v3"


class FakeWooCommerce(FakeAPI):
    def __init__(self, key: str, secret: str):
        super().__init__(key)
        self.secret = secret
        self.products: list[dict[str, Any]] = []
        self.variations: dict[int, list[dict[str, Any]]] = {}
        self.downloads: dict[str, int] = {}  # image name -> times the store downloaded it
        self.downloaded: dict[str, bytes] = {}
        self.crash_after_put = False
        self._image_seq = 500

    def add_product(
        self,
        sku: str,
        name: str,
        *,
        images=(),
        colors=(),
        kind: str = "simple",
        variation_images=(),
        modified: str = "2026-11-30T10:00:00",
    ) -> dict[str, Any]:
        pid = 10 + len(self.products)
        product = {
            "id": pid,
            "name": name,
            "type": kind,
            "sku": sku,
            "date_modified_gmt": modified,
            "categories": [{"id": 1, "name": "Tees"}],
            "attributes": [{"id": 1, "name": "Color", "variation": True, "options": list(colors)}]
            if colors
            else [],
            "images": [self._image(src) for src in images],
        }
        self.products.append(product)
        self.variations[pid] = [
            {
                "id": pid * 100 + i,
                "sku": f"{sku}-{i}",
                "date_modified_gmt": modified,
                "image": self._image(src),
                "attributes": [{"id": 1, "name": "Color", "option": c}],
            }
            for i, (src, c) in enumerate(zip(variation_images, colors, strict=False))
        ]
        return product

    def _image(self, src: str, name: str = "", alt: str = "") -> dict[str, Any]:
        self._image_seq += 1
        return {"id": self._image_seq, "src": src, "name": name or src.rsplit("/", 1)[-1], "alt": alt}

    def route_name(self, request: Request) -> str:
        parts = request.path.removeprefix(BASE).strip("/").split("/")
        if parts == ["products"]:
            return "products"
        if len(parts) == 3 and parts[2] == "variations":
            return "variations"
        if len(parts) == 2:
            return "product-put" if request.method == "PUT" else "product"
        return "unknown"

    def route(self, name: str, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{self.api_key}:{self.secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Response.json(
                401,
                {
                    "code": "woocommerce_rest_cannot_view",
                    "message": "Sorry, you cannot list resources.",
                    "data": {"status": 401},
                },
            )
        if name == "products":
            items = self.products
            if "sku" in request.query:
                items = [p for p in items if p["sku"] == request.query["sku"][0]]
            return self._page(items, request)
        if name == "variations":
            return self._page(self.variations.get(int(request.path.split("/")[-2]), []), request)
        product = next((p for p in self.products if str(p["id"]) == request.path.rsplit("/", 1)[-1]), None)
        if product is None:
            return Response.json(
                404,
                {
                    "code": "woocommerce_rest_product_invalid_id",
                    "message": "Invalid ID.",
                    "data": {"status": 404},
                },
            )
        if name == "product":
            return Response.json(200, product)
        if name == "product-put":
            return self._put(product, json.loads(request.body))
        return Response.json(404, {"code": "rest_no_route", "message": "No route", "data": {"status": 404}})

    def _page(self, items: list[dict[str, Any]], request: Request) -> Response:
        per_page = min(int(request.query.get("per_page", ["10"])[0]), 100)
        page = int(request.query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        pages = max(1, math.ceil(len(items) / per_page))
        return Response.json(200, chunk, **{"X-WP-Total": str(len(items)), "X-WP-TotalPages": str(pages)})

    def _put(self, product: dict[str, Any], body: dict[str, Any]) -> Response:
        if "images" in body:
            by_id = {i["id"]: i for i in product["images"]}
            new_images = []
            for item in body["images"]:
                if "id" in item:
                    new_images.append(by_id[item["id"]])
                    continue
                try:
                    got = httpx.get(item["src"], timeout=10)
                except httpx.HTTPError as exc:
                    return self._upload_error(f"cannot fetch {item['src']}: {exc}")
                if got.status_code != 200:
                    return self._upload_error(f"HTTP {got.status_code} for the image URL")
                name = item.get("name") or ""
                self.downloads[name] = self.downloads.get(name, 0) + 1
                self.downloaded[name] = got.content
                new_images.append(
                    self._image(f"https://woo.fake/uploads/{name}.jpg", name, item.get("alt", ""))
                )
            product["images"] = new_images
            product["date_modified_gmt"] = "2026-12-01T12:00:00"
        if self.crash_after_put:
            self.crash_after_put = False
            return Response(500, b"")  # the work is done, the answer says otherwise
        return Response.json(200, product)

    def _upload_error(self, message: str) -> Response:
        return Response.json(
            400,
            {"code": "woocommerce_product_image_upload_error", "message": message, "data": {"status": 400}},
        )

    def error(self, status: int, message: str) -> Response:
        return Response.json(status, {"code": "fake_error", "message": message, "data": {"status": status}})
