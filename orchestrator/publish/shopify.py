"""Publishing to a Shopify store: staged uploads, then the media attached to the product
(:mod:`packshot.sources.shopify.media`), following the protocol of :mod:`orchestrator.publish.ledger`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from orchestrator.publish.ledger import DONE_STATES, PublishLedger
from orchestrator.publish.plan import PlannedImage, PublishReport, RemoteProduct, stem
from packshot.sources.base import SourceError, SourceSettings
from packshot.sources.shopify import ShopifyClient
from packshot.sources.shopify.media import Media, attach, detach, product_media, stage_and_upload
from packshot.storage import Storage

_SHOPIFY_FEED_GROUP = re.compile(r"shopify_[A-Z]{2}_(\d+)", re.IGNORECASE)  # Shopify's Google channel ids
PRODUCT_BY_ID = "query ProductById($id: ID!) { product(id: $id) { id handle title } }"
PRODUCT_BY_HANDLE = (
    "query ProductByHandle($q: String!) { products(first: 1, query: $q) { nodes { id handle title } } }"
)


class ShopifyTarget:
    default_preset = "shopify"

    def __init__(
        self,
        uri: str,
        settings: SourceSettings,
        storage: Storage,
        *,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval_s: float = 1.0,
        max_polls: int = 60,
    ):
        self.client = ShopifyClient(uri, settings, sleep=sleep)
        self.uri, self.storage = self.client.uri, storage
        self._sleep, self._poll_interval_s, self._max_polls = sleep, poll_interval_s, max_polls

    def close(self) -> None:
        self.client.close()

    def find_product(self, sku: str, ref: str | None) -> RemoteProduct | None:
        """By the store id the run read, else by the id in a Shopify-made Merchant Center feed's
        group id (``shopify_US_<product id>``), else by handle."""
        if not ref and (made := _SHOPIFY_FEED_GROUP.fullmatch(sku)):
            ref = f"gid://shopify/Product/{made.group(1)}"
        if ref:
            node = self.client.query(PRODUCT_BY_ID, {"id": ref})["product"]
        else:
            nodes = self.client.query(PRODUCT_BY_HANDLE, {"q": f"handle:{sku}"})["products"]["nodes"]
            node = next((n for n in nodes if n["handle"] == sku), None)
        return RemoteProduct(node["id"], sku, node["title"]) if node else None

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
        media = product_media(self.client, remote.ref)
        ours = ledger.media_ids(self.uri, remote.ref)
        pending = []
        for image in images:
            entry = ledger.get(self.uri, image.output.key) or {}
            if entry.get("status") in DONE_STATES:
                report.already += 1
            elif entry.get("status") == "uploading" and (
                found := _find(media, image, entry["alt"], set(entry.get("media_before") or []) | ours)
            ):
                ledger.update(
                    self.uri,
                    image.output.key,
                    status="attached",
                    media_id=found.id,
                    note="found in the store on resume: not uploaded again",
                )
                ours.add(found.id)
                report.already += 1
            else:
                pending.append(image)
        merchant = [m.id for m in media if m.id not in ours]  # as found, before this publish adds any
        if dry_run:
            report.uploaded += len(pending)
            names = ", ".join(i.filename for i in pending) or "nothing new"
            detaching = (
                f"; would detach the merchant's {len(merchant)} image(s)" if replace and merchant else ""
            )
            report.say(f"{remote.sku} ({remote.title}): would upload {names}{detaching}")
            return
        for image in pending:
            alt = image.alt(remote.title)
            before = [m.id for m in media]  # whatever appears besides these after the call may be this upload
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
                media_before=before,
            )
            data = self.storage.read_bytes(image.output.key)
            resource = stage_and_upload(self.client, image.filename, image.mime, data)
            failure = None
            try:
                attach(self.client, remote.ref, resource, alt)
            except SourceError as exc:  # it may have landed anyway (5xx, answer lost): look before failing
                failure = exc
            media = product_media(self.client, remote.ref)
            found = _find(media, image, alt, set(before) | ours)
            if found is None and failure is not None:
                raise failure
            if found is not None:  # else it stays "uploading" and the next publish looks it up again
                ledger.update(self.uri, image.output.key, status="attached", media_id=found.id)
                ours.add(found.id)
            report.uploaded += 1
        self._await_processing(remote, ledger, report)
        if replace and merchant:
            detach(self.client, remote.ref, merchant)
            report.say(f"{remote.sku}: detached the merchant's {len(merchant)} image(s) (still in Files)")
        report.say(
            f"{remote.sku} ({remote.title}): {len(pending)} uploaded, "
            f"{len(images) - len(pending)} already there"
        )

    def _await_processing(self, remote: RemoteProduct, ledger: PublishLedger, report: PublishReport) -> None:
        """Poll the product's media until each of ours is READY or FAILED (Shopify processes uploads)."""
        mine = {
            k: e
            for k, e in ledger.entries(self.uri).items()
            if e.get("product_ref") == remote.ref and e.get("status") == "attached"
        }
        for _ in range(self._max_polls):
            if not mine:
                return
            status = {m.id: m.status for m in product_media(self.client, remote.ref)}
            for key, entry in list(mine.items()):
                state = status.get(entry["media_id"], "MISSING")
                if state in ("READY", "FAILED", "MISSING"):
                    ledger.update(self.uri, key, status="ready" if state == "READY" else "failed")
                    if state != "READY":
                        report.problems.append(
                            f"{remote.sku}: Shopify reports {entry['filename']} as {state}"
                        )
                    del mine[key]
            if mine:
                self._sleep(self._poll_interval_s)
        if mine:
            report.problems.append(
                f"{remote.sku}: {len(mine)} image(s) still processing in Shopify; they are "
                "attached and will appear when Shopify finishes"
            )


def _find(media: list[Media], image: PlannedImage, alt: str, known: set[str]) -> Media | None:
    """Our upload among the product's media: by file name (Shopify may add a suffix), else by alt
    text among media that are not ``known`` (there before the upload, or recorded as another of ours)."""
    name = stem(image.filename)
    for m in media:
        if m.url and PurePosixPath(urlsplit(m.url).path).name.startswith(name):
            return m
    return next((m for m in media if m.alt == alt and m.id not in known), None)
