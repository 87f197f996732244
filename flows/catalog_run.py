"""The catalog flow: validate the catalog, fan batches of products out to tasks, then write the
manifest, the HTML contact sheet and Prefect artifacts. Runs under Prefect's ephemeral API when no
server is configured.

Memory stays flat as the catalog grows: each batch task writes its results to the run's result
spool (``.runs/<flow run id>/`` in the output), the flow keeps only the spool's part keys, and the
manifest and contact sheet are streamed from the spool, which is removed afterwards (local runs).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import chain

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import wait
from prefect.runtime import flow_run as current_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.gpu import use_prefect_gpu_limit
from flows.tasks import make_clips_task, process_batch_task
from packshot import progress
from packshot.catalog import load_catalog
from packshot.config import get_settings
from packshot.manifest import TABLE_ROWS, ManifestWriter, ProductResult, ResultSpool, RunManifest, RunTally
from packshot.pipeline import RunOptions, get_context
from packshot.report import ReportWriter, summary_markdown

PROGRESS_EVERY_S = 2.0  # how often the progress artifact is updated while batches run


def invalid_rows(catalog) -> Iterator[ProductResult]:
    for e in catalog.errors:
        yield ProductResult(sku=e.sku, status="invalid", error=f"{e.column or 'row'}: {e.message}",
                            source_file=e.file, source_line=e.line)


def _run_id(started: datetime) -> str:
    return str(current_run.get_id() or f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}")


@flow(name="packshot-catalog", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def catalog_run(options: RunOptions) -> dict:
    """Process a catalog: every product's cutout, packshots, scenes and color variants, then the
    manifest and the contact sheet. Unchanged products are skipped (content keys)."""
    logger = get_run_logger()
    settings = get_settings()
    use_prefect_gpu_limit(settings)
    started = datetime.now(UTC)
    run_id = _run_id(started)
    catalog = load_catalog(options.catalog)
    products = catalog.products[: options.limit] if options.limit else catalog.products
    logger.info("%s: %d products, %d bad rows (%s format)", options.catalog, len(products),
                len(catalog.errors), catalog.format)

    ctx = get_context(options, settings)  # loads models once, before the batches start
    size = options.batch_size or settings.batch_size
    batches = [products[i : i + size] for i in range(0, len(products), size)]
    progress_id = create_progress_artifact(progress=0.0, key="packshot-progress", description="products done")
    finished = [0]

    def count(_result) -> None:
        finished[0] += 1

    parts: list[str | None] = [None] * len(batches)  # spool part keys in catalog order
    with progress.listening(count):
        pending = {process_batch_task.submit(batch, options, run_id, index=i): i
                   for i, batch in enumerate(batches)}
        while pending:
            done, _ = wait(list(pending), timeout=PROGRESS_EVERY_S)
            for future in done:
                parts[pending.pop(future)] = future.result()
            update_progress_artifact(progress_id, progress=100.0 * finished[0] / max(len(products), 1))
    update_progress_artifact(progress_id, progress=100.0)
    if "video" in options.stages:
        make_clips_task(parts, batches, options, run_id)
    spool = ResultSpool(ctx.storage, run_id)
    summary = finish_run(options, catalog, chain(spool.stream(parts), invalid_rows(catalog)), ctx, started)
    spool.remove()
    return summary


def finish_run(options: RunOptions, catalog, results: Iterable[ProductResult], ctx, started) -> dict:
    """Stream a run's results (in catalog order) into the manifest, the contact sheet and the
    Prefect artifacts; only counters and the first rows are held in memory."""
    logger = get_run_logger()
    settings = ctx.settings
    header = RunManifest(
        catalog=options.catalog, catalog_format=catalog.format, output=ctx.storage.uri, started=started,
        stages=list(options.stages), presets=options.presets or settings.export.presets,
        backends=ctx.backends(), licences=_licences(ctx), products=[],
    )
    tally = RunTally()
    with ManifestWriter(ctx.storage) as manifest, ReportWriter(ctx.storage) as report:
        for result in results:
            tally.add(result)
            manifest.add(result)
            report.add(result)
        header.notes = tally.note_list()
        json_uri, csv_uri = manifest.publish(header)
        counts = tally.counts()
        report_uri = report.publish(header, counts)

    create_table_artifact(key="packshot-results", table=tally.rows,
                          description=f"per-product results: the first {TABLE_ROWS} products, then failures")
    # S3 outputs: a presigned link a person can open; local outputs: the file's path.
    report_link = report_uri if ctx.storage.local_path("report.html") else ctx.storage.link("report.html")
    create_markdown_artifact(key="packshot-summary", markdown=summary_markdown(header, tally, report_link))
    logger.info("done %(done)d, skipped %(skipped)d, failed %(failed)d, invalid rows %(invalid)d", counts)
    return {"counts": counts, "manifest": json_uri, "manifest_csv": csv_uri, "report": report_uri,
            "report_link": report_link, "output": ctx.storage.uri}


def _licences(ctx) -> dict[str, str]:
    out = {}
    for stage, model in (("segment", ctx.segmenter), ("background", ctx.generator)):
        licence = getattr(model, "licence", None)
        if licence:
            out[f"{stage}:{model.name}"] = licence
    return out
