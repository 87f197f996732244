"""A catalog run from start to finish, without Prefect: plan the batches, process a batch into the
run's result spool, add clips, and finish (manifest, contact sheet, summary).

The flows call these in order and add only Prefect's part (tasks, progress and result artifacts).
Memory stays flat as the catalog grows: batches write their results to the spool
(``.runs/<run id>/`` in the output), and the manifest and contact sheet are streamed from it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain

from orchestrator.catalog_source import read_catalog, write_run_snapshot
from orchestrator.clips import add_clips
from orchestrator.context import RunContext, get_context, run_settings
from orchestrator.licences import check_licences, run_models
from orchestrator.manifest import ManifestWriter, ResultSpool, RunTally, clean_leftovers
from orchestrator.options import RunOptions
from orchestrator.phases import process_batch
from orchestrator.preflight import check_video_ready
from orchestrator.report import ReportWriter, summary_markdown
from orchestrator.review.decisions import REVIEW_KEY
from orchestrator.review.rerun import check_skus
from orchestrator.settings import Settings, get_settings
from packshot.lease import Lease, acquire_lease
from packshot.schemas.results import ProductResult, RunManifest
from packshot.storage import check_output
from packshot.types import Catalog, Product

log = logging.getLogger(__name__)


@dataclass
class CatalogRun:
    """One run of a catalog: its products (after ``limit``), their batches and the loaded context."""

    options: RunOptions
    run_id: str
    catalog: Catalog
    products: list[Product]
    batches: list[list[Product]]
    ctx: RunContext
    lease: Lease | None = None  # the output's run lease, held until finish_run (or release())
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def release(self) -> None:
        """Give the output's run lease back (finish_run does; call it when a run stops early)."""
        if self.lease is not None:
            self.lease.release()


@dataclass
class RunSummary:
    """What a finished run reports: counts, where the files are, and the tally for Prefect's artifacts."""

    counts: dict[str, int]
    manifest: str
    manifest_csv: str
    report: str
    report_link: str
    output: str
    tally: RunTally
    markdown: str
    problem: str | None = None  # why the run as a whole failed although it finished (no clip made)

    def as_dict(self) -> dict:
        return {"counts": self.counts, "manifest": self.manifest, "manifest_csv": self.manifest_csv,
                "report": self.report, "report_link": self.report_link, "output": self.output,
                "problem": self.problem}


def start_run(options: RunOptions, run_id: str, settings: Settings | None = None) -> CatalogRun:
    """Read the catalog, load the backends once (before any batch starts) and cut the batches."""
    settings = settings or get_settings()
    catalog = read_catalog(options.catalog, settings)
    products = catalog.products[: options.limit] if options.limit else catalog.products
    check_skus(options.skus, products)
    used = run_settings(options, settings)
    check_licences(used, list(options.stages))  # a model the deployment may not run: one line, nothing loaded
    check_video_ready(options, products, used)  # before any model or image
    ctx = get_context(options, settings)
    check_output(ctx.storage)  # a missing bucket or a read-only folder: one line, before any work
    # One run per output at a time: a second one is refused with one line naming the first (see
    # the README's "When two runs, publishes or reviews meet"); never two paying for the same clips.
    lease = acquire_lease(ctx.storage, "run", f"packshot run {options.catalog} (run {run_id})")
    try:
        write_run_snapshot(ctx.storage, catalog, options.catalog, run_id)  # exactly what this run read
        size = options.batch_size or settings.batch_size
        batches = [products[i : i + size] for i in range(0, len(products), size)]
        log.info("%s: %d products, %d bad rows (%s format)", catalog.path, len(products),
                 len(catalog.errors), catalog.format)
        run = CatalogRun(options, run_id, catalog, products, batches, ctx, lease)
        for note in clean_leftovers(ctx.storage, run_id, run.started.timestamp()):
            log.warning("%s: %s", ctx.storage.uri, note)
    except BaseException:
        lease.release()
        raise
    return run


def process_part(products: list[Product], options: RunOptions, run_id: str, part: str | int) -> str:
    """Process one batch and store its results as spool part ``part``; returns the part's key."""
    results = process_batch(products, options, run_id)
    return ResultSpool(get_context(options).storage, run_id).write(part, results)


def add_clips_to_parts(
    parts: list[str], batches: list[list[Product]], options: RunOptions, run_id: str
) -> None:
    """Ad clips for the finished products (the video stage), one spool part at a time: each part's
    results are read, given their clips, and written back. The job ledger, not the caller, makes a
    rerun resume paid jobs instead of submitting them again."""
    ctx = get_context(options)
    spool = ResultSpool(ctx.storage, run_id)
    for index, (key, products) in enumerate(zip(parts, batches, strict=True)):
        results = spool.read(key)
        add_clips(results, products, ctx)
        spool.write(index, results)


def invalid_rows(catalog: Catalog) -> Iterator[ProductResult]:
    for e in catalog.errors:
        yield ProductResult(sku=e.sku, status="invalid", error=f"{e.column or 'row'}: {e.message}",
                            source_file=e.file, source_line=e.line)


def finish_run(run: CatalogRun, results: Iterable[ProductResult] | None = None,
               parts: list[str] | None = None) -> RunSummary:
    """Stream the run's results (in catalog order; by default its spool ``parts``, then the invalid rows)
    into the manifest and the contact sheet, then remove the spool. Only counters and the first rows
    are held in memory."""
    ctx, options = run.ctx, run.options
    spool = ResultSpool(ctx.storage, run.run_id)
    if results is None:
        results = chain(spool.stream(parts or []), invalid_rows(run.catalog))
    header = RunManifest(
        catalog=run.catalog.path, catalog_format=run.catalog.format, output=ctx.storage.uri,  # path: no query
        started=run.started, stages=list(options.stages),
        presets=options.presets or ctx.settings.export.presets,
        backends=ctx.backends(), licences=licences(ctx), products=[],
    )
    tally = RunTally()
    try:
        with ManifestWriter(ctx.storage) as manifest, ReportWriter(ctx.storage) as report:
            for result in results:
                tally.add(result)
                manifest.add(result)
                report.add(result)
            header.notes = ctx.rerun.notes + tally.note_list()
            header.generator_calls, header.fills_shared = tally.generator_calls, tally.fills_shared
            header.review = REVIEW_KEY if ctx.storage.exists(REVIEW_KEY) else None
            json_uri, csv_uri = manifest.publish(header)
            counts = tally.counts()
            report_uri = report.publish(header, counts)
        spool.remove()
    finally:
        run.release()
    # S3 outputs: a presigned link a person can open; local outputs: the file's path.
    report_link = report_uri if ctx.storage.local_path("report.html") else ctx.storage.link("report.html")
    log.info("done %(done)d, needs review %(needs_review)d, skipped %(skipped)d, failed %(failed)d, "
             "invalid rows %(invalid)d", counts)
    return RunSummary(counts, json_uri, csv_uri, report_uri, report_link, ctx.storage.uri, tally,
                      summary_markdown(header, tally, report_uri, report_link,
                                       ctx.settings.orchestration.review_url), run_problem(options, tally))


def run_problem(options: RunOptions, tally: RunTally) -> str | None:
    """Why a finished run still counts as failed: the video stage was asked for and made no clip."""
    if "video" in options.stages and tally.clips == 0 and tally.clip_misses:
        return (f"no ad clip was made: the clips of {tally.clip_misses} product(s) failed or were skipped "
                "(budget, provider errors); see the video notes in manifest.json or the contact sheet")
    return None


def licences(ctx: RunContext) -> dict[str, str]:
    """Every model's licence, by stage and backend, for the manifest and the report: what the licence
    allows (from the backend tables), and for models with weights the backend's own words (model card,
    LoRA details)."""
    loaded = {"segment": ctx.segmenter, "background": ctx.generator}
    table = {}
    for model in run_models(ctx.settings, list(ctx.options.stages)):
        line = model.licence.summary()
        own = getattr(loaded.get(model.stage), "licence", None)
        if own and model.licence.commercial not in ("none", "service") and own not in line:
            line = f"{line} ({own})"
        table[model.label] = line
    return table
