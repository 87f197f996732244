"""The catalog flow: validate the catalog, fan batches of products out to tasks, then write the
manifest, the HTML contact sheet and Prefect artifacts. Runs under Prefect's ephemeral API when no
server is configured."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact
from prefect.artifacts import update_progress_artifact
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.tasks import process_batch_task
from packshot.catalog import load_catalog
from packshot.config import get_settings
from packshot.manifest import ProductResult, RunManifest, write_manifest
from packshot.pipeline import RunOptions, get_context
from packshot.report import summary_markdown, write_report


def _invalid_rows(catalog) -> list[ProductResult]:
    return [
        ProductResult(sku=e.sku, status="invalid", error=f"{e.column or 'row'}: {e.message}",
                      source_file=e.file, source_line=e.line)
        for e in catalog.errors
    ]


@flow(name="packshot-catalog", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def catalog_run(options: RunOptions) -> dict:
    logger = get_run_logger()
    settings = get_settings()
    started = datetime.now(UTC)
    catalog = load_catalog(options.catalog)
    products = catalog.products[: options.limit] if options.limit else catalog.products
    logger.info("%s: %d products, %d bad rows (%s format)", options.catalog, len(products),
                len(catalog.errors), catalog.format)

    ctx = get_context(options, settings)  # loads models once, before the batches start
    size = options.batch_size or settings.batch_size
    batches = [products[i : i + size] for i in range(0, len(products), size)]
    progress_id = create_progress_artifact(progress=0.0, key="packshot-progress", description="products done")
    futures = [process_batch_task.submit(batch, options, index=i) for i, batch in enumerate(batches)]

    results: list[ProductResult] = []
    for future in as_completed(futures):
        results.extend(future.result())
        update_progress_artifact(progress_id, progress=100.0 * len(results) / max(len(products), 1))

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
    create_markdown_artifact(key="packshot-summary", markdown=summary_markdown(manifest, report_uri))
    logger.info("done %(done)d, skipped %(skipped)d, failed %(failed)d, invalid rows %(invalid)d", counts)
    return {"counts": counts, "manifest": json_uri, "manifest_csv": csv_uri, "report": report_uri,
            "output": ctx.storage.uri}


def _licences(ctx) -> dict[str, str]:
    out = {}
    for stage, model in (("segment", ctx.segmenter), ("background", ctx.generator)):
        licence = getattr(model, "licence", None)
        if licence:
            out[f"{stage}:{model.name}"] = licence
    return out
