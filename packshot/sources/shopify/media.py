"""Shopify media writes for ``publish``, as the current Admin API documents them:
``stagedUploadsCreate`` -> the file POSTed to the staged target with its form parameters ->
``productUpdate(product: {id}, media: [{originalSource, mediaContentType: IMAGE, alt}])`` (the
replacement of the deprecated ``productCreateMedia``) -> poll the media's ``status`` until READY
or FAILED. Replacing detaches the merchant's media with ``fileUpdate(referencesToRemove)``, which
leaves the files in the store's library (``productDeleteMedia`` is deprecated and irreversible).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from packshot.secrets import redact
from packshot.sources.base import SourceError
from packshot.sources.shopify.client import ShopifyClient

STAGED_UPLOAD = """
mutation Stage($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}"""
ATTACH = """
mutation Attach($product: ProductUpdateInput!, $media: [CreateMediaInput!]) {
  productUpdate(product: $product, media: $media) {
    product { id }
    userErrors { field message }
  }
}"""
MEDIA = """
query Media($id: ID!) {
  product(id: $id) {
    media(first: 250) { nodes { id status alt ... on MediaImage { image { url } } } }
  }
}"""
DETACH = """
mutation Detach($files: [FileUpdateInput!]!) {
  fileUpdate(files: $files) { files { id } userErrors { field message } }
}"""


@dataclass
class Media:
    id: str
    status: str
    alt: str
    url: str | None


def stage_and_upload(client: ShopifyClient, filename: str, mime: str, data: bytes) -> str:
    """Upload ``data`` to a staged target; returns the ``resourceUrl`` to attach."""
    staged = client.query(
        STAGED_UPLOAD,
        {
            "input": [
                {
                    "resource": "IMAGE",
                    "filename": filename,
                    "mimeType": mime,
                    "httpMethod": "POST",
                }
            ]
        },
    )["stagedUploadsCreate"]
    _user_errors(client, staged, "stagedUploadsCreate")
    target = staged["stagedTargets"][0]
    form = {p["name"]: p["value"] for p in target["parameters"]}
    try:
        response = client.http.post(target["url"], data=form, files={"file": (filename, data, mime)})
    except httpx.TransportError as exc:
        raise SourceError(
            f"{client.uri}: the staged upload of {filename} failed ({exc}); run publish again"
        ) from None
    if response.status_code not in (200, 201, 204):
        raise SourceError(
            redact(
                f"{client.uri}: the staged upload of {filename} was refused (HTTP "
                f"{response.status_code}: {response.text[:200]}); run publish again"
            )
        )
    return target["resourceUrl"]


def attach(client: ShopifyClient, product_id: str, resource_url: str, alt: str) -> None:
    result = client.query(
        ATTACH,
        {
            "product": {"id": product_id},
            "media": [{"originalSource": resource_url, "mediaContentType": "IMAGE", "alt": alt}],
        },
        idempotent=False,  # a retried attach after a lost answer would attach the image twice
    )["productUpdate"]
    _user_errors(client, result, "productUpdate")


def product_media(client: ShopifyClient, product_id: str) -> list[Media]:
    product = client.query(MEDIA, {"id": product_id})["product"]
    if product is None:
        raise SourceError(f"{client.uri}: product {product_id} no longer exists in the store")
    return [
        Media(n["id"], n.get("status") or "", n.get("alt") or "", (n.get("image") or {}).get("url"))
        for n in product["media"]["nodes"]
    ]


def detach(client: ShopifyClient, product_id: str, media_ids: list[str]) -> None:
    if not media_ids:
        return
    files = [{"id": media_id, "referencesToRemove": [product_id]} for media_id in media_ids]
    _user_errors(client, client.query(DETACH, {"files": files})["fileUpdate"], "fileUpdate")


def _user_errors(client: ShopifyClient, payload: dict[str, Any], mutation: str) -> None:
    errors = payload.get("userErrors") or []
    if errors:
        text = "; ".join(f"{'.'.join(map(str, e.get('field') or []))}: {e.get('message')}" for e in errors)
        raise SourceError(redact(f"{client.uri}: {mutation} refused: {text}"))
