"""The catalog flow: validate the catalog, fan batches of products out to tasks, then write the
manifest, the HTML contact sheet and Prefect artifacts. Runs under Prefect's ephemeral API when no
server is configured."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows.gpu import use_prefect_gpu_limit
from flows.tasks import make_clips_task, process_batch_task
from packshot import progress
from packshot.catalog import load_catalog
from packshot.config import get_settings
from packshot.manifest import ProductResult, RunManifest, write_manifest
from packshot.pipeline import RunOptions, get_context
from packshot.report import summary_markdown, write_report

PROGRESS_EVERY_S = 2.0  # how often the progress artifact is updated while batches run


def _invalid_rows(catalog) -> list[ProductResult]:
    return [
        ProductResult(sku=e.sku, status="invalid", error=f"{e.column or 'row'}: {e.message}",
                      source_file=e.file, source_line=e.line)
        for e in catalog.errors
    ]


@flow(name="packshot-catalog", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def catalog_run(options: RunOptions) -> dict:
    """Process a catalog: every product's cutout, packshots, scenes and color variants, then the
    manifest and the contact sheet. Unchanged products are skipped (content keys)."""
    logger = get_run_logger()
    settings = get_settings()
    use_prefect_gpu_limit(settings)
    started = datetime.now(UTC)
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

    results: list[ProductResult] = []
    with progress.listening(count):
        pending = [process_batch_task.submit(batch, options, index=i) for i, batch in enumerate(batches)]
        while pending:
            done, not_done = wait(pending, timeout=PROGRESS_EVERY_S)
            for future in done:
                results.extend(future.result())
            pending = list(not_done)
            update_progress_artifact(progress_id, progress=100.0 * finished[0] / max(len(products), 1))
    update_progress_artifact(progress_id, progress=100.0)
    if "video" in options.stages:
        results = make_clips_task(results, products, options)
    return finish_run(options, catalog, products, results, ctx, started)


def finish_run(options: RunOptions, catalog, products, results: list[ProductResult], ctx, started) -> dict:
    """Write the manifest, the contact sheet and the Prefect artifacts for a run's results."""
    logger = get_run_logger()
    settings = ctx.settings
    order = {p.sku: i for i, p in enumerate(products)}
    results.sort(key=lambda r: order.get(r.sku, 0))
    notes = sorted({n for r in results for n in r.notes if not n.startswith("unchanged")})
    manifest = RunManifest(
        catalog=options.catalog, catalog_format=catalog.format, output=ctx.storage.uri, started=started,
        stages=list(options.stages), presets=options.presets or settings.export.presets,
        backends=ctx.backends(), licences=_licences(ctx), notes=notes,
        products=results + _invalid_rows(catalog),
    )
    json_uri, csv_uri = write_manifest(ctx.storage, manifest)
    report_uri = write_report(ctx.storage, manifest)

    counts = manifest.counts()
    create_table_artifact(
        key="packshot-results",
        table=[{"sku": r.sku, "status": r.status, "outputs": len(r.outputs),
                "failed_checks": sum(1 for o in r.outputs if o.checks), "error": r.error or ""}
               for r in manifest.products],
        description="per-product results",
    )
    # S3 outputs: a presigned link a person can open; local outputs: the file's path.
    report_link = report_uri if ctx.storage.local_path("report.html") else ctx.storage.link("report.html")
    create_markdown_artifact(key="packshot-summary", markdown=summary_markdown(manifest, report_link))
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
