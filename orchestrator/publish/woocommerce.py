"""Publishing to a WooCommerce store: one ``PUT /products/{id}`` per product whose new images are
presigned S3 links the store downloads, following the protocol of :mod:`orchestrator.publish.ledger`."""

from __future__ import annotations

from orchestrator.publish.ledger import DONE_STATES, PublishLedger
from orchestrator.publish.plan import PlannedImage, PublishError, PublishReport, RemoteProduct, stem
from packshot.sources.base import SourceError, SourceSettings
from packshot.sources.woocommerce import WooClient
from packshot.sources.woocommerce.models import WooImage
from packshot.storage import S3Storage, Storage


class WooTarget:
    """WooCommerce downloads each new image from a URL: the output must be on S3 (presigned links)."""

    default_preset = "shopify"  # WooCommerce has no image rules of its own; the web-store preset fits

    def __init__(self, uri: str, settings: SourceSettings, storage: Storage):
        if not isinstance(storage, S3Storage):
            raise PublishError(
                "WooCommerce fetches images from a URL it can reach, and this run's output is a local "
                "folder: publish a run written to S3 (packshot run ... --out s3://bucket/prefix), so "
                "packshot can give the store presigned links"
            )
        self.client = WooClient(uri, settings)
        self.uri, self.storage = self.client.uri, storage

    def close(self) -> None:
        self.client.close()

    def find_product(self, sku: str, ref: str | None) -> RemoteProduct | None:
        ident = ref or (sku[3:] if sku.startswith("id-") and sku[3:].isdigit() else None)
        node = self.client.product(ident) if ident else self.client.product_by_sku(sku)
        if node is None:
            return None
        return RemoteProduct(str(node.id), sku, node.name or sku, [i.model_dump() for i in node.images])

    def publish_product(
        self,
        remote: RemoteProduct,
        images: list[PlannedImage],
        ledger: PublishLedger,
        report: PublishReport,
        *,
        replace: bool,
        dry_run: bool,
    ) -> None:
        by_name = {i.get("name"): i for i in remote.images}
        ours = ledger.media_ids(self.uri, remote.ref)
        pending = []
        for image in images:
            output = image.output
            entry = ledger.get(self.uri, output.sku, output.sha256) or {}
            if entry.get("status") in DONE_STATES:
                report.already += 1
            elif found := by_name.get(stem(image.filename)):  # there anyway: a killed publish, a lost ledger
                ledger.found(self.uri, output, remote.ref, image.filename, str(found["id"]), "ready")
                ours.add(str(found["id"]))
                report.already += 1
            else:
                pending.append(image)
        present = {str(i["id"]) for i in remote.images}
        replaced = ledger.superseded(self.uri, remote.ref, [i.output for i in images], present)
        dropped = {e["media_id"] for e in replaced.values()}
        merchant = [i for i in remote.images if str(i["id"]) not in ours and str(i["id"]) not in dropped]
        if dry_run:
            report.would(remote, pending, len(merchant) if replace else 0, len(replaced))
            return
        if not pending and not replaced and not (replace and merchant):
            report.say(f"{remote.sku} ({remote.title}): nothing new")
            return
        new = []
        for image in pending:
            alt = image.alt(remote.title)
            output = image.output
            ledger.update(
                self.uri,
                output.sku,
                output.sha256,
                status="uploading",
                product_ref=remote.ref,
                output_key=output.key,
                filename=image.filename,
                alt=alt,
                media_id=None,
            )
            new.append({"src": self.storage.link(output.key), "name": stem(image.filename), "alt": alt})
        kept = [
            {"id": i["id"]}
            for i in remote.images
            if str(i["id"]) not in dropped and (not replace or str(i["id"]) in ours)
        ]
        try:
            answer: list[WooImage] = self.client.put_images(remote.ref, kept + new)
        except SourceError:  # the store may have done it anyway (5xx, answer lost): look before failing
            answer = self.client.product(remote.ref).images
            names = {i.name for i in answer}
            if not all(stem(i.filename) in names for i in pending):
                raise
        returned = {i.name: i for i in answer}
        for image in pending:
            if found := returned.get(stem(image.filename)):
                ledger.update(self.uri, image.output.sku, image.output.sha256, status="ready",
                              media_id=str(found.id))
        for key in replaced:
            ledger.update_key(key, status="replaced")
        report.uploaded += len(pending)
        detached = f", detached the merchant's {len(merchant)}" if replace and merchant else ""
        if replaced:
            detached += f", dropped {len(replaced)} older image(s) of ours they replace"
        report.say(f"{remote.sku} ({remote.title}): {len(pending)} uploaded{detached}")
