"""The catalog flow: Prefect wiring around :mod:`orchestrator.run`. Batches of products become tasks;
progress, the results table and the summary become artifacts. Runs under Prefect's ephemeral API when
no server is configured.

``PACKSHOT_ORCHESTRATION__GPU_WORKERS=served``: the batches (and the clips) run in the resident GPU
task worker (:mod:`flows.gpu_worker`), submitted with ``.delay()``; its models stay loaded across flow
runs and this process loads none. Otherwise they run here (``.submit()``), as the CLI does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import wait
from prefect.runtime import flow_run as current_run
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.gpu import use_prefect_gpu_limit
from flows.tasks import BatchProblem, load_models_task, make_clips_task, process_batch_task
from orchestrator.context import use_described_backends
from orchestrator.manifest import TABLE_ROWS
from orchestrator.options import RunOptions
from orchestrator.run import RunSummary, finish_run, start_run
from orchestrator.settings import get_settings
from packshot import progress
from packshot.errors import PackshotError

PROGRESS_EVERY_S = 2.0  # how often the progress artifact is updated while batches run


def new_run_id() -> str:
    """The flow run's id, or a timestamped id outside a flow run."""
    return str(current_run.get_id() or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}")


def publish_artifacts(summary: RunSummary) -> None:
    create_table_artifact(key="packshot-results", table=summary.tally.rows,
                          description=f"per-product results: the first {TABLE_ROWS} products, then failures "
                          "and products that need review")
    create_markdown_artifact(key="packshot-summary", markdown=summary.markdown)
    get_run_logger().info("done %(done)d, needs review %(needs_review)d, skipped %(skipped)d, "
                          "failed %(failed)d, invalid rows %(invalid)d", summary.counts)


@flow(name="packshot-catalog", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def catalog_run(options: RunOptions) -> dict:
    """Process a catalog: every product's cutout, packshots, scenes and color variants, then the
    manifest and the contact sheet. Unchanged products are skipped (content keys). The run ends
    Failed, with the summary as its data, when the video stage made no clip at all (call it with
    ``return_state=True`` to read the summary then). An error the user can fix (a full disk, an
    unreadable catalog) ends it Failed with that one-line message, not a traceback."""
    try:
        summary, worker = _run_catalog(options)
    except PackshotError as exc:  # the state's message is the one line (no traceback in the logs)
        return Failed(message=str(exc), data=exc)
    result = {**summary.as_dict(), **({"gpu_worker": worker} if worker else {})}  # served: the GPU worker
    if summary.problem:  # the files are published; the state says what is missing
        return Failed(message=summary.problem, data=result)
    return result


def _run_catalog(options: RunOptions) -> tuple[RunSummary, dict | None]:
    settings = get_settings()
    use_prefect_gpu_limit(settings)
    served = settings.orchestration.gpu_workers == "served"
    worker = None
    if served:  # the models load (or fail) in the GPU worker, before any batch; none load here
        worker = served_result(load_models_task.delay(options), settings.orchestration.gpu_worker_pickup_s)
        use_described_backends(options, worker["backends"], settings)
    run = start_run(options, new_run_id(), settings)  # loads models once, before the batches start
    try:
        summary = _process(run, options, served)
    finally:  # a failed batch, a stop: the output's run lease is given back (finish_run gives it too)
        run.release()
    return summary, worker


def _process(run, options: RunOptions, served: bool) -> RunSummary:
    progress_id = create_progress_artifact(progress=0.0, key="packshot-progress", description="products done")
    finished = [0]

    def count(_result) -> None:
        finished[0] += 1

    submit = process_batch_task.delay if served else process_batch_task.submit
    parts: list[str | None] = [None] * len(run.batches)  # spool part keys in catalog order
    with progress.listening(count):
        pending = {submit(batch, options, run.run_id, index=i): i for i, batch in enumerate(run.batches)}
        while pending:
            done, _ = wait(list(pending), timeout=PROGRESS_EVERY_S)
            for future in done:
                index = pending.pop(future)
                part = future.result()
                if isinstance(part, BatchProblem):
                    part.raise_it()
                parts[index] = part
                finished[0] += len(run.batches[index]) if served else 0  # served: counted per batch
            update_progress_artifact(progress_id, progress=100.0 * finished[0] / max(len(run.products), 1))
    update_progress_artifact(progress_id, progress=100.0)
    if "video" in options.stages:
        clips = (make_clips_task.delay(parts, run.batches, options, run.run_id).result() if served
                 else make_clips_task(parts, run.batches, options, run.run_id))
        if isinstance(clips, BatchProblem):
            clips.raise_it()
    summary = finish_run(run, parts=parts)
    publish_artifacts(summary)
    return summary


def served_result(future, pickup_s: float):
    """The result of a task given to the GPU worker; a clear error when no worker takes it in ``pickup_s``."""
    future.wait(timeout=pickup_s)
    state = future.state
    if state.is_scheduled():
        raise PackshotError(
            f"no GPU task worker took the run's first task within {pickup_s:g} s: start one per card with "
            "`python -m flows.gpu_worker --gpu <uuid>` against this Prefect server (same PREFECT_API_URL and "
            "result storage), or unset PACKSHOT_ORCHESTRATION__GPU_WORKERS to run the GPU work in this "
            "process")
    result = future.result()
    if isinstance(result, BatchProblem):
        result.raise_it()
    return result
