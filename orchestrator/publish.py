"""``packshot publish``: a run's approved images go back to the store, exactly once.

``publish(run_out, "shopify://SHOP")`` reads the run's ``manifest.json`` and, when present, its
``review.json`` (the review loop's decisions per output key or per SKU, see :func:`decision_of`),
picks the images made for the store's preset that passed their checks (approved ones; every one
with ``all_`` when no review was done; a rejected image never), and sends each product's images in
the preset's listing order (the manifest's ``position``), alt text "<title> – <variant>".

The merchant's own images stay unless ``replace`` is given (then they are detached from the
product, not deleted from the store's files). Every upload is recorded in the run's publish
ledger before and after the remote call (:mod:`orchestrator.publish_ledger`), so a killed publish
resumes without sending an image twice. ``dry_run`` changes nothing and says what would change.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from orchestrator.publish_ledger import PublishLedger
from orchestrator.publish_plan import PlannedImage, PublishError, PublishReport
from orchestrator.publish_targets import open_target
from packshot.errors import PackshotError
from packshot.schemas.results import OutputRecord, ProductResult, RunManifest
from packshot.sources.base import SNAPSHOT_NAME, SourceSettings, load_snapshot
from packshot.storage import Storage, open_storage
from packshot.types import slugify

REVIEW_NAME = "review.json"
_PUBLISHED_KINDS = ("packshot", "background", "scene")
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
    echo: Callable[[str], None] | None = None,
) -> PublishReport:
    """Publish the run in ``run_out`` to ``target_uri`` (``shopify://SHOP`` or ``woocommerce://HOST``)."""
    storage = open_storage(run_out)
    manifest = _manifest(storage, run_out)
    target = open_target(target_uri, settings or SourceSettings(), storage)
    preset = preset or target.default_preset
    chosen = select_outputs(manifest, _review(storage), preset, approved_only=approved_only, all_=all_)
    refs = _snapshot_refs(storage, target.uri)
    report = PublishReport(target=target.uri, dry_run=dry_run)
    ledger = PublishLedger(storage)
    try:
        for sku, outputs in chosen.items():
            said = len(report.lines)
            _publish_one(
                target, sku, outputs, refs.get(sku), ledger, report, replace=replace, dry_run=dry_run
            )
            if echo:  # this product's lines as they happen: a long publish shows its progress
                for line in report.lines[said:]:
                    echo(line)
    finally:
        target.close()
    if not chosen:
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


def select_outputs(
    manifest: RunManifest, review: dict | None, preset: str, *, approved_only: bool = True, all_: bool = False
) -> dict[str, list[OutputRecord]]:
    """sku -> its outputs to publish, in listing order. Raises PublishError when no review was done
    and neither ``all_`` nor ``approved_only=False`` says to publish everything."""
    if review is None and approved_only and not all_:
        raise PublishError(
            f"the run has no {REVIEW_NAME}: review its images first, or pass --all to publish every image "
            "that passed the marketplace checks"
        )
    chosen: dict[str, list[OutputRecord]] = {}
    for product in manifest.products:
        if product.status not in ("done", "skipped"):
            continue
        for output in product.outputs:
            if output.kind not in _PUBLISHED_KINDS or output.preset != preset or output.checks:
                continue
            verdict = decision_of(review or {}, product, output)
            if verdict == "rejected" or (approved_only and not all_ and verdict != "approved"):
                continue
            chosen.setdefault(output.sku, []).append(output)
    for outputs in chosen.values():
        outputs.sort(key=lambda o: (o.photo, o.position if o.position is not None else 10**6, o.key))
    return chosen


def decision_of(review: dict, product: ProductResult, output: OutputRecord) -> str | None:
    """"approved", "rejected" or None for one output, read from ``review.json``: the review loop's
    format (``outputs`` by output key, else ``products`` by SKU; a decision lapses when its ``basis``,
    the output's sha256 or the product's content key, no longer matches), or a plain ``decisions`` map."""
    by_key = review.get("outputs") or review.get("decisions") or {}
    decision = by_key.get(output.key) or {}
    if decision and decision.get("basis") in (None, output.sha256):
        return str(decision.get("status", "")).lower() or None
    decision = (review.get("products") or {}).get(product.sku or "") or {}
    if decision and decision.get("basis") in (None, product.key):
        return str(decision.get("status", "")).lower() or None
    return None


def _manifest(storage: Storage, run_out: str) -> RunManifest:
    if not storage.exists("manifest.json"):
        raise PublishError(
            f"{run_out} has no manifest.json; publish a finished run (packshot run ... --out DIR)"
        )
    return RunManifest.model_validate_json(storage.read_bytes("manifest.json"))


def _review(storage: Storage) -> dict | None:
    if not storage.exists(REVIEW_NAME):
        return None
    try:
        return json.loads(storage.read_bytes(REVIEW_NAME))
    except ValueError as exc:
        raise PublishError(
            f"{REVIEW_NAME} in the run folder is not valid JSON ({exc}); fix the review"
        ) from None


def _snapshot_refs(storage: Storage, target_uri: str) -> dict[str, str]:
    """sku -> the store's product id, from the run's catalog snapshot when it was read from this store."""
    if not storage.exists(SNAPSHOT_NAME):
        return {}
    data = storage.read_bytes(SNAPSHOT_NAME)
    if json.loads(data).get("source") != target_uri:
        return {}
    return {p.sku: p.source_ref for p in load_snapshot(data).products if p.source_ref}


def _filename(output: OutputRecord) -> str:
    extension = output.key.rpartition(".")[2].lower() or "jpg"
    position = output.position if output.position is not None else 0
    stem = f"packshot-{slugify(output.sku)}-{output.preset}-{position:02d}-{output.sha256[:10]}"
    return f"{stem}.{extension}"
