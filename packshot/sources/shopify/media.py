"""Shopify media writes for ``publish``, as the current Admin API documents them:
``stagedUploadsCreate`` -> the file POSTed to the staged target with its form parameters ->
``productUpdate(product: {id}, media: [{originalSource, mediaContentType: IMAGE, alt}])`` (the
replacement of the deprecated ``productCreateMedia``) -> poll the media's ``status`` until READY
or FAILED. Replacing detaches the merchant's media with ``fileUpdate(referencesToRemove)``, which
leaves the files in the store's library (``productDeleteMedia`` is deprecated and irreversible).

The staged target comes from the store's answer, so it is held to the downloader's SSRF rules
(HTTPS, a public address, the connection pinned to the checked address) before any byte is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from packshot.sources.base import SourceError
from packshot.sources.shopify.models import (
    AttachAnswer,
    DetachAnswer,
    MediaAnswer,
    Mutation,
    Staged,
    StagedAnswer,
)
from packshot.sources.transport import (
    check_upload_target,
    deadline_error,
    past_deadline,
    pinned,
    shown,
    within,
)

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


class MediaWrites:
    """The media half of :class:`~packshot.sources.shopify.client.ShopifyClient` (its ``query``, ``http``,
    ``settings``, ``load`` and ``redact``)."""

    uri: str
    settings: Any
    load: Any
    http: Any

    def stage_and_upload(self, filename: str, mime: str, data: bytes) -> str:
        """Upload ``data`` to a staged target; returns the ``resourceUrl`` to attach."""
        item = {"resource": "IMAGE", "filename": filename, "mimeType": mime, "httpMethod": "POST"}
        answer = self.query(STAGED_UPLOAD, {"input": [item]}, StagedAnswer, what="stagedUploadsCreate")
        staged = answer.stagedUploadsCreate
        self._user_errors(staged, "stagedUploadsCreate")
        target = _one_target(self, staged)
        host, addresses = check_upload_target(self.uri, target.url, self.load)
        form = {p.name: p.value for p in target.parameters}
        try:
            with within(self.settings.request_deadline_s), pinned(host, addresses):
                try:
                    response = self.http.post(target.url, data=form, files={"file": (filename, data, mime)})
                except httpx.TimeoutException:
                    if past_deadline():
                        raise deadline_error(self.uri, f"the staged upload of {filename}",
                                             self.settings.request_deadline_s) from None
                    raise
        except httpx.TransportError as exc:
            raise SourceError(
                f"{self.uri}: the staged upload of {filename} failed ({exc}); run publish again"
            ) from None
        if response.status_code not in (200, 201, 204):
            raise SourceError(self.redact(
                f"{self.uri}: the staged upload of {filename} was refused (HTTP "
                f"{response.status_code}: {shown(response.content)}); run publish again"
            ))
        return target.resourceUrl

    def attach(self, product_id: str, resource_url: str, alt: str) -> None:
        variables = {
            "product": {"id": product_id},
            "media": [{"originalSource": resource_url, "mediaContentType": "IMAGE", "alt": alt}],
        }
        # a retried attach after a lost answer would attach the image twice
        result = self.query(ATTACH, variables, AttachAnswer, what="productUpdate", idempotent=False)
        self._user_errors(result.productUpdate, "productUpdate")

    def media(self, product_id: str) -> list[Media]:
        product = self.query(MEDIA, {"id": product_id}, MediaAnswer, what="the product's media").product
        if product is None:
            raise SourceError(f"{self.uri}: product {product_id} no longer exists in the store")
        return [
            Media(n.id, n.status, n.alt or "", n.image.url if n.image else None) for n in product.media.nodes
        ]

    def detach(self, product_id: str, media_ids: list[str]) -> None:
        if not media_ids:
            return
        files = [{"id": media_id, "referencesToRemove": [product_id]} for media_id in media_ids]
        self._user_errors(self.query(DETACH, {"files": files}, DetachAnswer, what="fileUpdate").fileUpdate,
                          "fileUpdate")

    def _user_errors(self, payload: Mutation | Staged, mutation: str) -> None:
        if payload.userErrors:
            text = "; ".join(f"{'.'.join(e.field or [])}: {e.message}" for e in payload.userErrors)
            raise SourceError(self.redact(f"{self.uri}: {mutation} refused: {text}"))


def _one_target(client: Any, staged: Staged):
    if not staged.stagedTargets:
        raise SourceError(f"{client.uri}: stagedUploadsCreate answered no upload target and no error; "
                          "nothing was sent")
    return staged.stagedTargets[0]
