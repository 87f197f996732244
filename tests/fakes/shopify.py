"""A fake Shopify Admin GraphQL API: the documented subset packshot uses, over HTTPS on 127.0.0.1.

Operations are told apart by their operation name (the client's documents are fixed). It keeps a
cost bucket (``maximumAvailable``, ``restoreRate`` per second, ``requestedQueryCost`` charged up
front, the unused part refunded) and answers ``THROTTLED`` when a query does not fit; tests can force
throttling, 429s and 5xx, hold the answer to the first attach (to kill a client mid-call), and read
how often each file was staged and attached.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
from typing import Any

from tests.fakes.server import FakeAPI, Request, Response

API_PATH = "/admin/api/2025-10/graphql.json"


class FakeShopify(FakeAPI):
    def __init__(
        self, token: str, *, maximum: float = 1000.0, restore_rate: float = 5000.0, ready_after: int = 1
    ):
        super().__init__(token)
        self.products: list[dict[str, Any]] = []
        self.maximum, self.restore_rate = maximum, restore_rate
        self.available, self._at = maximum, time.monotonic()
        self.ready_after = ready_after  # Media queries a new image stays PROCESSING for
        self.force_throttle = 0  # answer the next N queries THROTTLED whatever the bucket holds
        self.staged: dict[int, dict[str, Any]] = {}  # n -> {"filename", "data"}
        self.uploads: dict[str, int] = {}  # filename -> staged uploads received
        self.attached: dict[str, int] = {}  # filename -> media created
        self.hold_first_attach: threading.Event | None = None  # set: respond to the first attach when set
        self.attach_applied = threading.Event()
        self.throttled = 0
        self._media_seq = 100

    # -- catalog ------------------------------------------------------------------------------------
    def add_product(
        self,
        handle: str,
        title: str,
        *,
        colors=(),
        images=(),
        product_type: str = "",
        updated: str = "2026-11-30T10:00:00Z",
        variant_images=(),
    ) -> dict[str, Any]:
        n = len(self.products) + 1
        media = []
        for url in images:
            self._media_seq += 1
            media.append(
                {
                    "id": f"gid://shopify/MediaImage/{self._media_seq}",
                    "status": "READY",
                    "alt": "",
                    "image": {"url": url},
                    "polls": 0,
                    "filename": url.split("?")[0].rsplit("/", 1)[-1],
                }
            )
        variants = [
            {
                "sku": f"{handle}-{c}",
                "selectedOptions": [{"name": "Color", "value": c}, {"name": "Size", "value": "M"}],
                "image": {"url": url} if url else None,
            }
            for c, url in zip(colors, [*variant_images, *[None] * len(colors)], strict=False)
        ]
        product = {
            "id": f"gid://shopify/Product/{n}",
            "handle": handle,
            "title": title,
            "productType": product_type,
            "updatedAt": updated,
            "variants": variants or [{"sku": handle, "selectedOptions": []}],
            "media": media,
        }
        self.products.append(product)
        return product

    def product(self, ref: str) -> dict[str, Any] | None:
        return next((p for p in self.products if p["id"] == ref), None)

    # -- routing ------------------------------------------------------------------------------------
    def route_name(self, request: Request) -> str:
        if request.path.startswith("/staged/"):
            return "staged-upload"
        if request.path == API_PATH and request.method == "POST":
            body = json.loads(request.body or b"{}")
            words = (body.get("query") or "").split()
            return words[1].split("(")[0] if len(words) > 1 else "graphql"
        return "unknown"

    def route(self, name: str, request: Request) -> Response:
        if name == "staged-upload":
            return self._receive_upload(request)
        if request.headers.get("x-shopify-access-token") != self.api_key:
            return Response.json(401, {"errors": "[API] Invalid API key or access token"})
        body = json.loads(request.body)
        variables = body.get("variables") or {}
        handler = {
            "Products": self._products,
            "ProductById": self._by_id,
            "ProductByHandle": self._by_handle,
            "Media": self._media,
            "Stage": self._stage,
            "Attach": self._attach,
            "Detach": self._detach,
        }
        if name not in handler:
            return Response.json(200, {"errors": [{"message": f"fake: unknown operation {name}"}]})
        cost = 2 + 51 * int(variables.get("first", 0))
        with self.lock:
            now = time.monotonic()
            self.available = min(self.maximum, self.available + (now - self._at) * self.restore_rate)
            self._at = now
            if self.force_throttle or self.available < cost:
                self.force_throttle = max(0, self.force_throttle - 1)
                self.throttled += 1
                return Response.json(
                    200,
                    {
                        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                        "extensions": {"cost": self._cost(cost, None)},
                    },
                )
            self.available -= cost
        data = handler[name](variables, request)
        if isinstance(data, Response):
            return data
        actual = max(1, cost // 3)
        with self.lock:
            self.available = min(self.maximum, self.available + cost - actual)
        return Response.json(200, {"data": data, "extensions": {"cost": self._cost(cost, actual)}})

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": self.maximum,
                "currentlyAvailable": self.available,
                "restoreRate": self.restore_rate,
            },
        }

    # -- queries ------------------------------------------------------------------------------------
    def _products(self, variables, _request):
        start = int(variables.get("after") or 0)
        page = self.products[start : start + int(variables["first"])]
        end = start + len(page)
        return {
            "products": {
                "nodes": [self._node(p) for p in page],
                "pageInfo": {"hasNextPage": end < len(self.products), "endCursor": str(end)},
            }
        }

    def _node(self, p):
        media = [
            {"id": m["id"], "status": m["status"], "alt": m["alt"], "image": m["image"]} for m in p["media"]
        ]
        return {
            "id": p["id"],
            "handle": p["handle"],
            "title": p["title"],
            "productType": p["productType"],
            "updatedAt": p["updatedAt"],
            "variants": {"nodes": p["variants"][:30], "pageInfo": {"hasNextPage": len(p["variants"]) > 30}},
            "media": {"nodes": media[:20], "pageInfo": {"hasNextPage": len(media) > 20}},
        }

    def _by_id(self, variables, _request):
        p = self.product(variables["id"])
        return {"product": {"id": p["id"], "handle": p["handle"], "title": p["title"]} if p else None}

    def _by_handle(self, variables, _request):
        handle = variables["q"].removeprefix("handle:")
        found = [
            {"id": p["id"], "handle": p["handle"], "title": p["title"]}
            for p in self.products
            if p["handle"] == handle
        ]
        return {"products": {"nodes": found[:1]}}

    def _media(self, variables, _request):
        p = self.product(variables["id"])
        if p is None:
            return {"product": None}
        with self.lock:
            for m in p["media"]:
                if m["status"] == "PROCESSING":
                    m["polls"] += 1
                    if m["polls"] > self.ready_after:
                        m["status"] = "READY"
                        m["image"] = {"url": f"https://cdn.shopify.fake/s/files/1/{m['filename']}?v=1"}
            nodes = [
                {"id": m["id"], "status": m["status"], "alt": m["alt"], "image": m["image"]}
                for m in p["media"]
            ]
        return {"product": {"media": {"nodes": nodes}}}

    # -- media writes -------------------------------------------------------------------------------
    def _stage(self, variables, _request):
        targets = []
        with self.lock:
            for item in variables["input"]:
                n = len(self.staged) + 1
                self.staged[n] = {"filename": item["filename"], "data": None}
                targets.append(
                    {
                        "url": f"{self.base_url}/staged/{n}",
                        "resourceUrl": f"{self.base_url}/staged-files/{n}/{item['filename']}",
                        "parameters": [
                            {"name": "key", "value": f"tmp/{n}/{item['filename']}"},
                            {"name": "policy", "value": "fake-policy"},
                        ],
                    }
                )
        return {"stagedUploadsCreate": {"stagedTargets": targets, "userErrors": []}}

    def _receive_upload(self, request: Request) -> Response:
        n = int(request.path.split("/")[2])
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + request.body
        )
        fields = {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()
        }
        with self.lock:
            staged = self.staged.get(n)
            if staged is None or fields.get("policy") != b"fake-policy" or not fields.get("file"):
                return Response(400, b"bad staged upload")
            staged["data"] = fields["file"]
            self.uploads[staged["filename"]] = self.uploads.get(staged["filename"], 0) + 1
        return Response(204)

    def _attach(self, variables, _request):
        p = self.product(variables["product"]["id"])
        errors = []
        with self.lock:
            for item in variables.get("media") or []:
                n = int(item["originalSource"].split("/staged-files/")[1].split("/")[0])
                staged = self.staged.get(n)
                if staged is None or staged["data"] is None:
                    errors.append({"field": ["media"], "message": "originalSource was never uploaded"})
                    continue
                self._media_seq += 1
                p["media"].append(
                    {
                        "id": f"gid://shopify/MediaImage/{self._media_seq}",
                        "status": "PROCESSING",
                        "alt": item.get("alt") or "",
                        "image": None,
                        "polls": 0,
                        "filename": staged["filename"],
                    }
                )
                self.attached[staged["filename"]] = self.attached.get(staged["filename"], 0) + 1
            p["updatedAt"] = "2026-12-01T12:00:00Z"
        self.attach_applied.set()
        if self.hold_first_attach is not None:
            hold, self.hold_first_attach = self.hold_first_attach, None
            hold.wait(30)  # the test kills the client while it waits for this answer
        return {"productUpdate": {"product": {"id": p["id"]}, "userErrors": errors}}

    def _detach(self, variables, _request):
        with self.lock:
            for item in variables["files"]:
                for product_id in item["referencesToRemove"]:
                    p = self.product(product_id)
                    p["media"] = [m for m in p["media"] if m["id"] != item["id"]]
        return {"fileUpdate": {"files": [{"id": f["id"]} for f in variables["files"]], "userErrors": []}}

    def error(self, status: int, message: str) -> Response:
        return Response.json(status, {"errors": message})
