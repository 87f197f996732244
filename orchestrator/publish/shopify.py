"""Publishing to a Shopify store: staged uploads, then the media attached to the product (the media
writes of :class:`packshot.sources.shopify.ShopifyClient`), following the protocol of
:mod:`orchestrator.publish.ledger`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from orchestrator.publish.ledger import DONE_STATES, PublishLedger
from orchestrator.publish.plan import PlannedImage, PublishReport, RemoteProduct, stem
from packshot.config import LoadSettings
from packshot.sources.base import SourceError, SourceSettings
from packshot.sources.shopify import ShopifyClient
from packshot.sources.shopify.media import Media
from packshot.storage import Storage

_SHOPIFY_FEED_GROUP = re.compile(r"shopify_[A-Z]{2}_(\d+)", re.IGNORECASE)  # Shopify's Google channel ids


class ShopifyTarget:
    default_preset = "shopify"

    def __init__(
        self,
        uri: str,
        settings: SourceSettings,
        storage: Storage,
        *,
        load: LoadSettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval_s: float = 1.0,
        max_polls: int = 60,
    ):
        self.client = ShopifyClient(uri, settings, sleep=sleep, load=load)
        self.uri, self.storage = self.client.uri, storage
        self._sleep, self._poll_interval_s, self._max_polls = sleep, poll_interval_s, max_polls

    def close(self) -> None:
        self.client.close()

    def find_product(self, sku: str, ref: str | None) -> RemoteProduct | None:
        """By the store id the run read, else by the id in a Shopify-made Merchant Center feed's
        group id (``shopify_US_<product id>``), else by handle."""
        if not ref and (made := _SHOPIFY_FEED_GROUP.fullmatch(sku)):
            ref = f"gid://shopify/Product/{made.group(1)}"
        node = self.client.product_by_id(ref) if ref else self.client.product_by_handle(sku)
        return RemoteProduct(node.id, sku, node.title or sku) if node else None

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
        media = self.client.media(remote.ref)
        ours = ledger.media_ids(self.uri, remote.ref)
        pending = []
        for image in images:
            output = image.output
            entry = ledger.get(self.uri, output.sku, output.sha256) or {}
            if entry.get("status") in DONE_STATES:
                report.already += 1
                continue
            # not recorded as done: maybe it is there anyway (a killed publish, a lost ledger)
            known = set(entry.get("media_before") or []) | ours
            alt = entry.get("alt") if entry.get("status") == "uploading" else None
            if found := _find(media, image, alt, known):
                ledger.found(self.uri, output, remote.ref, image.filename, found.id, "attached")
                ours.add(found.id)
                report.already += 1
            else:
                pending.append(image)
        merchant = [m.id for m in media if m.id not in ours]  # as found, before this publish adds any
        replaced = ledger.superseded(self.uri, remote.ref, [i.output for i in images], {m.id for m in media})
        if dry_run:
            report.would(remote, pending, len(merchant) if replace else 0, len(replaced))
            return
        for image in pending:
            alt = image.alt(remote.title)
            output = image.output
            data = self.storage.read_bytes(output.key)
            before = [m.id for m in media]  # whatever appears besides these after the call may be this upload
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
                media_before=before,
            )
            resource = self.client.stage_and_upload(image.filename, image.mime, data)
            failure = None
            try:
                self.client.attach(remote.ref, resource, alt)
            except SourceError as exc:  # it may have landed anyway (5xx, answer lost): look before failing
                failure = exc
            media = self.client.media(remote.ref)
            found = _find(media, image, alt, set(before) | ours)
            if found is None and failure is not None:
                raise failure
            if found is not None:  # else it stays "uploading" and the next publish looks it up again
                ledger.update(self.uri, output.sku, output.sha256, status="attached", media_id=found.id)
                ours.add(found.id)
            report.uploaded += 1
        self._await_processing(remote, ledger, report)
        if replaced:  # our older images of the same outputs: the new ones take their place
            self.client.detach(remote.ref, [e["media_id"] for e in replaced.values()])
            for key in replaced:
                ledger.update_key(key, status="replaced")
            report.say(f"{remote.sku}: detached {len(replaced)} older image(s) of ours that new ones replace")
        if replace and merchant:
            self.client.detach(remote.ref, merchant)
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
            if e.get("product_ref") == remote.ref and e.get("status") == "attached" and e.get("media_id")
        }
        for _ in range(self._max_polls):
            if not mine:
                return
            status = {m.id: m.status for m in self.client.media(remote.ref)}
            for key, entry in list(mine.items()):
                state = status.get(entry["media_id"], "MISSING")
                if state in ("READY", "FAILED", "MISSING"):
                    ledger.update_key(key, status="ready" if state == "READY" else "failed")
                    if state != "READY":
                        report.problems.append(
                            f"{remote.sku}: Shopify reports {entry.get('filename') or entry['media_id']} "
                            f"as {state}"
                        )
                    del mine[key]
            if mine:
                self._sleep(self._poll_interval_s)
        if mine:
            report.problems.append(
                f"{remote.sku}: {len(mine)} image(s) still processing in Shopify; they are "
                "attached and will appear when Shopify finishes"
            )


def _find(media: list[Media], image: PlannedImage, alt: str | None, known: set[str]) -> Media | None:
    """Our upload among the product's media: by file name (Shopify may add a suffix; the name holds the
    image's checksum), else, when ``alt`` is given (an upload that may have landed), by alt text among
    media that are not ``known`` (there before the upload, or recorded as another of ours)."""
    name = stem(image.filename)
    for m in media:
        if m.url and PurePosixPath(urlsplit(m.url).path).name.startswith(name):
            return m
    if not alt:
        return None
    return next((m for m in media if m.alt == alt and m.id not in known), None)

