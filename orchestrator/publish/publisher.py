"""``packshot publish``: a run's approved images go back to the store, exactly once.

``publish(run_out, "shopify://SHOP")`` reads the run's ``manifest.json`` and, when present, its
``review.json`` (the review loop's decisions, see :mod:`orchestrator.publish.select`), picks the
images that are safe to send (made for the store's preset, passed their checks, approved, or with
``all_`` not rejected; a ``needs_review`` or failed product only when a review approved it), and sends
each product's images in the preset's listing order (the manifest's ``position``), alt text
"<title> – <variant>".

The merchant's own images stay unless ``replace`` is given (then they are detached from the
product, not deleted from the store's files). One publish at a time per run: it holds the run's
``publish`` lease (:mod:`packshot.lease`), and a second one refuses naming the holder, or waits
``wait_s``. Every upload is recorded in the run's publish ledger before and after the remote call
(:mod:`orchestrator.publish.ledger`) and every image is looked up in the store before it is sent, so a
killed publish, or a lost ledger, never sends an image twice. ``dry_run`` changes nothing and says
what would change and what is held back.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

from pydantic import ValidationError

from orchestrator.publish.ledger import PublishLedger
from orchestrator.publish.plan import PlannedImage, PublishError, PublishReport
from orchestrator.publish.select import REVIEW_NAME, select
from orchestrator.publish.targets import open_target
from packshot.config import LoadSettings
from packshot.errors import PackshotError
from packshot.lease import acquire_lease
from packshot.schemas.results import OutputRecord, RunManifest
from packshot.sources.base import SNAPSHOT_NAME, SourceSettings, load_snapshot, store_uri
from packshot.storage import Storage, open_storage
from packshot.types import slugify

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


def publish(
    run_out: str,
    target_uri: str,
    *,
    approved_only: bool = True,
    all_: bool = False,
    dry_run: bool = False,
    replace: bool = False,
    preset: str | None = None,
    settings: SourceSettings | None = None,
    load: LoadSettings | None = None,
    wait_s: float = 0.0,
    echo: Callable[[str], None] | None = None,
) -> PublishReport:
    """Publish the run in ``run_out`` to ``target_uri`` (``shopify://SHOP`` or ``woocommerce://HOST``).
    ``load``: the SSRF rules upload targets named by the store are held to (as image downloads)."""
    storage = open_storage(run_out)
    manifest = _manifest(storage, run_out)
    purpose = f"packshot publish --to {store_uri(target_uri)}"
    lease = contextlib.nullcontext() if dry_run else acquire_lease(storage, "publish", purpose, wait_s=wait_s)
    with lease:
        target = open_target(target_uri, settings or SourceSettings(), storage, load or LoadSettings())
        try:
            preset = preset or target.default_preset
            picked = select(manifest, _review(storage), preset, approved_only=approved_only, all_=all_)
            report = PublishReport(target=target.uri, dry_run=dry_run)
            refs = _snapshot_refs(storage, target.uri, report)
            ledger = PublishLedger(storage, dry_run=dry_run)
            report.lines.extend(ledger.notes)
            report.lines.extend(picked.held)
            if echo:
                for line in report.lines:
                    echo(line)
            for sku, outputs in picked.chosen.items():
                said = len(report.lines)
                _publish_one(
                    target, sku, outputs, refs.get(sku), ledger, report, replace=replace, dry_run=dry_run
                )
                if echo:  # this product's lines as they happen: a long publish shows its progress
                    for line in report.lines[said:]:
                        echo(line)
        finally:
            target.close()
    if not picked.chosen:
        report.problems.append(f"no image of preset '{preset}' to publish (passed checks, approved)")
    return report


def _publish_one(
    target,
    sku: str,
    outputs: list[OutputRecord],
    ref: str | None,
    ledger: PublishLedger,
    report: PublishReport,
    *,
    replace: bool,
    dry_run: bool,
) -> None:
    """One product; its failure is a problem in the report, and the ledger lets the next publish resume."""
    images = [PlannedImage(o, _filename(o), _MIME.get(o.format.upper(), "image/jpeg")) for o in outputs]
    try:
        remote = target.find_product(sku, ref)
        if remote is None:
            report.problems.append(f"sku {sku}: no such product in {target.uri}; skipped")
            return
        target.publish_product(remote, images, ledger, report, replace=replace, dry_run=dry_run)
    except PackshotError as exc:
        report.problems.append(f"sku {sku}: {exc}")
    except OSError as exc:  # an output file gone from the run folder since the run
        what = f"{exc.filename or 'an output'} ({exc.strerror or exc})"
        report.problems.append(f"sku {sku}: cannot read {what}; rerun the product (packshot run --sku) "
                               "and publish again")


def _manifest(storage: Storage, run_out: str) -> RunManifest:
    if not storage.exists("manifest.json"):
        raise PublishError(
            f"{run_out} has no manifest.json; publish a finished run (packshot run ... --out DIR)"
        )
    try:
        return RunManifest.model_validate_json(storage.read_bytes("manifest.json"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        raise PublishError(
            f"manifest.json in {run_out} is damaged ({where}: {first['msg']}); nothing was published. Run "
            "packshot run again into the same --out: finished products are not redone, and the manifest "
            "is written anew"
        ) from None


def _review(storage: Storage) -> dict | None:
    if not storage.exists(REVIEW_NAME):
        return None
    try:
        review = json.loads(storage.read_bytes(REVIEW_NAME))
        if not isinstance(review, dict):
            raise ValueError(f"a JSON {type(review).__name__}, not an object")
        return review
    except ValueError as exc:
        raise PublishError(
            f"{REVIEW_NAME} in the run folder is not valid JSON ({exc}); fix the review"
        ) from None


def _snapshot_refs(storage: Storage, target_uri: str, report: PublishReport) -> dict[str, str]:
    """sku -> the store's product id, from the run's catalog snapshot when it was read from this store.
    A damaged snapshot counts as none (products are then found by SKU or handle), with a line saying so."""
    if not storage.exists(SNAPSHOT_NAME):
        return {}
    try:
        data = storage.read_bytes(SNAPSHOT_NAME)
        source = json.loads(data).get("source")
        if not isinstance(source, str) or store_uri(source) != store_uri(target_uri):
            return {}
        return {p.sku: p.source_ref for p in load_snapshot(data).products if p.source_ref}
    except (ValueError, AttributeError, PackshotError):  # pydantic's ValidationError is a ValueError
        report.say(f"{SNAPSHOT_NAME} is damaged: products are found in the store by SKU or handle instead")
        return {}


def _filename(output: OutputRecord) -> str:
    extension = output.key.rpartition(".")[2].lower() or "jpg"
    position = output.position if output.position is not None else 0
    stem = f"packshot-{slugify(output.sku)}-{output.preset}-{position:02d}-{output.sha256[:10]}"
    return f"{stem}.{extension}"
