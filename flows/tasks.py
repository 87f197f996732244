"""Prefect tasks. A task handles a batch of products, not one product per stage: Prefect strains
with thousands of task runs (PrefectHQ/prefect issues 18883, 8770, 7299)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from packshot.manifest import ProductResult
from packshot.pipeline import RunOptions, get_context, process_batch
from packshot.types import Product


@task(name="process-batch", cache_policy=NO_CACHE, task_run_name="batch {index}")
def process_batch_task(products: list[Product], options: RunOptions, index: int = 0) -> list[ProductResult]:
    # Resume and incremental reruns are keyed by content inside the pipeline (.done.json per
    # product), so Prefect's own result caching stays off: no hashing of image batches.
    return process_batch(products, options)


@task(name="make-clips", cache_policy=NO_CACHE)
def make_clips_task(
    results: list[ProductResult], products: list[Product], options: RunOptions
) -> list[ProductResult]:
    """Ad clips for the finished products (the video stage); returns the results with clips added.
    The job ledger, not Prefect, makes a rerun resume paid jobs instead of submitting them again."""
    from packshot.clips import add_clips

    add_clips(results, products, get_context(options))
    return results
