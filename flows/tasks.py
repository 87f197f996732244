"""Prefect tasks. A task handles a batch of products, not one product per stage: Prefect strains
with thousands of task runs (PrefectHQ/prefect issues 18883, 8770, 7299). A batch's results go to
the run's result spool, not back to the flow, so the flow's memory does not grow with the catalog."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from packshot.manifest import ResultSpool
from packshot.pipeline import RunOptions, get_context, process_batch
from packshot.types import Product


@task(name="process-batch", cache_policy=NO_CACHE, task_run_name="batch {index}")
def process_batch_task(products: list[Product], options: RunOptions, run_id: str, index: int = 0) -> str:
    """Process one batch and store its results as spool part ``index``; returns the part's key."""
    # Resume and incremental reruns are keyed by content inside the pipeline (.done.json per
    # product), so Prefect's own result caching stays off: no hashing of image batches.
    results = process_batch(products, options)
    return ResultSpool(get_context(options).storage, run_id).write(index, results)


@task(name="make-clips", cache_policy=NO_CACHE)
def make_clips_task(parts: list[str], batches: list[list[Product]], options: RunOptions, run_id: str) -> None:
    """Ad clips for the finished products (the video stage), one spool part at a time: each part's
    results are read, given their clips, and written back. The job ledger, not Prefect, makes a
    rerun resume paid jobs instead of submitting them again."""
    from packshot.clips import add_clips

    ctx = get_context(options)
    spool = ResultSpool(ctx.storage, run_id)
    for index, (key, products) in enumerate(zip(parts, batches, strict=True)):
        results = spool.read(key)
        add_clips(results, products, ctx)
        spool.write(index, results)
