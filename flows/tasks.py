"""Prefect tasks. A task handles a batch of products, not one product per stage: Prefect strains
with thousands of task runs (PrefectHQ/prefect issues 18883, 8770, 7299). A batch's results go to
the run's result spool, not back to the flow, so the flow's memory does not grow with the catalog.

The GPU tasks (:data:`GPU_TASKS`) run in the flow's process by default (``.submit()``), or in the
resident GPU task worker of :mod:`flows.gpu_worker` when the run is served (``.delay()``); there the
models stay loaded from one flow run to the next. What a served task returns (a spool part key, a
small dict) travels through Prefect's result storage, which the flow and the worker must share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.states import Cancelled, State

from orchestrator.context import get_context
from orchestrator.options import RunOptions
from orchestrator.run import add_clips_to_parts, process_part
from packshot.errors import PackshotError
from packshot.types import Product


@dataclass(frozen=True)
class BatchProblem:
    """What a task returns instead of raising an error the user can fix (a full disk): Prefect would
    log the task's failure with its traceback; the flow raises it as one :class:`PackshotError`."""

    message: str

    def raise_it(self):
        raise PackshotError(self.message)


def run_cancelled() -> bool:
    """Whether this task's flow run was cancelled (Cancel in the UI: Cancelling, then Cancelled)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if not run_id:
        return False
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(str(run_id))).state
    return state is not None and (state.is_cancelling() or state.is_cancelled())


@task(name="process-batch", cache_policy=NO_CACHE, task_run_name="batch {index}")
def process_batch_task(products: list[Product], options: RunOptions, run_id: str,
                       index: int = 0) -> str | BatchProblem | State:
    """Process one batch and store its results as spool part ``index``; returns the part's key. When
    the run was cancelled the batch ends Cancelled: before it started (nothing done), or while it ran
    (its part, with the products that finished, is the state's data)."""
    # Resume and incremental reruns are keyed by content inside the orchestrator (.done.json per
    # product), so Prefect's own result caching stays off: no hashing of image batches.
    if run_cancelled():
        return Cancelled(message=f"not started: the run was cancelled ({len(products)} product(s) left)")
    try:
        part = process_part(products, options, run_id, index)
    except PackshotError as exc:  # e.g. a full disk: handed to the flow, which ends with this one line
        return BatchProblem(str(exc))
    if run_cancelled():
        return Cancelled(message="the run was cancelled while this batch ran; its finished products are kept",
                         data=part)
    return part


@task(name="make-clips", cache_policy=NO_CACHE)
def make_clips_task(parts: list[str], batches: list[list[Product]], options: RunOptions,
                    run_id: str) -> BatchProblem | None:
    """Ad clips for the finished products (the video stage): :func:`orchestrator.run.add_clips_to_parts`."""
    try:
        add_clips_to_parts(parts, batches, options, run_id)
    except PackshotError as exc:
        return BatchProblem(str(exc))
    return None


@task(name="load-models", cache_policy=NO_CACHE, task_run_name="load models")
def load_models_task(options: RunOptions) -> dict | BatchProblem:
    """Load (or find already loaded) every model the run needs, before its first batch: a model that
    cannot load fails the run here. Returns the backends' descriptions, the memory plan, and which
    process holds the models with how often each was loaded (``load_counts``)."""
    # Imported here: a served flow pickles this task by value, and the registry (locks) cannot be pickled.
    from packshot.registry import models

    try:
        ctx = get_context(options)
    except PackshotError as exc:  # missing weights, a wrong folder ...: the flow ends with this one line
        return BatchProblem(str(exc))
    return {"backends": ctx.describe(), "pid": os.getpid(), "load_counts": dict(models.load_counts)}


GPU_TASKS = (load_models_task, process_batch_task, make_clips_task)
"""What the GPU task worker serves."""
