"""Publishing to a WooCommerce store: one ``PUT /products/{id}`` per product whose new images are
presigned S3 links the store downloads, following the protocol of :mod:`orchestrator.publish.ledger`."""

from __future__ import annotations

from orchestrator.publish.ledger import DONE_STATES, PublishLedger
from orchestrator.publish.plan import PlannedImage, PublishError, PublishReport, RemoteProduct, stem
from packshot.sources.base import SourceError, SourceSettings
from packshot.sources.woocommerce import WooClient
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
        if ident:
            node = self.client.request("GET", f"/products/{ident}").json()
        else:
            found = self.client.request("GET", "/products", params={"sku": sku}).json()
            node = found[0] if found else None
        if not node:
            return None
        return RemoteProduct(str(node["id"]), sku, node.get("name") or sku, list(node.get("images") or []))

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
            entry = ledger.get(self.uri, image.output.key) or {}
            if entry.get("status") in DONE_STATES:
                report.already += 1
            elif entry.get("status") == "uploading" and (found := by_name.get(stem(image.filename))):
                ledger.update(
                    self.uri,
                    image.output.key,
                    status="ready",
                    media_id=str(found["id"]),
                    note="found in the store on resume: not uploaded again",
                )
                ours.add(str(found["id"]))
                report.already += 1
            else:
                pending.append(image)
        merchant = [i for i in remote.images if str(i["id"]) not in ours]
        if dry_run:
            report.uploaded += len(pending)
            names = ", ".join(i.filename for i in pending) or "nothing new"
            detaching = (
                f"; would detach the merchant's {len(merchant)} image(s)" if replace and merchant else ""
            )
            report.say(f"{remote.sku} ({remote.title}): would upload {names}{detaching}")
            return
        if not pending and not (replace and merchant):
            report.say(f"{remote.sku} ({remote.title}): nothing new")
            return
        new = []
        for image in pending:
            alt = image.alt(remote.title)
            ledger.update(
                self.uri,
                image.output.key,
                status="uploading",
                product_ref=remote.ref,
                sku=remote.sku,
                filename=image.filename,
                alt=alt,
                sha256=image.output.sha256,
                media_id=None,
            )
            new.append({"src": self.storage.link(image.output.key), "name": stem(image.filename), "alt": alt})
        kept = [{"id": i["id"]} for i in remote.images if not replace or str(i["id"]) in ours]
        try:
            answer = self.client.request(
                "PUT", f"/products/{remote.ref}", json={"images": kept + new}, idempotent=False
            ).json()
        except SourceError:  # the store may have done it anyway (5xx, answer lost): look before failing
            answer = self.client.request("GET", f"/products/{remote.ref}").json()
            names = {i.get("name") for i in answer.get("images") or []}
            if not all(stem(i.filename) in names for i in pending):
                raise
        returned = {i.get("name"): i for i in answer.get("images") or []}
        for image in pending:
            if found := returned.get(stem(image.filename)):
                ledger.update(self.uri, image.output.key, status="ready", media_id=str(found["id"]))
        report.uploaded += len(pending)
        detached = f", detached the merchant's {len(merchant)}" if replace and merchant else ""
        report.say(f"{remote.sku} ({remote.title}): {len(pending)} uploaded{detached}")
