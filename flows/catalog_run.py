"""The catalog flow: Prefect wiring around :mod:`orchestrator.run`. Batches of products become tasks;
progress, the results table and the summary become artifacts. Runs under Prefect's ephemeral API when
no server is configured."""

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
from flows.tasks import BatchProblem, make_clips_task, process_batch_task
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
        summary = _run_catalog(options)
    except PackshotError as exc:  # the state's message is the one line (no traceback in the logs)
        return Failed(message=str(exc), data=exc)
    if summary.problem:  # the files are published; the state says what is missing
        return Failed(message=summary.problem, data=summary.as_dict())
    return summary.as_dict()


def _run_catalog(options: RunOptions) -> RunSummary:
    settings = get_settings()
    use_prefect_gpu_limit(settings)
    run = start_run(options, new_run_id(), settings)  # loads models once, before the batches start
    progress_id = create_progress_artifact(progress=0.0, key="packshot-progress", description="products done")
    finished = [0]

    def count(_result) -> None:
        finished[0] += 1

    parts: list[str | None] = [None] * len(run.batches)  # spool part keys in catalog order
    with progress.listening(count):
        pending = {process_batch_task.submit(batch, options, run.run_id, index=i): i
                   for i, batch in enumerate(run.batches)}
        while pending:
            done, _ = wait(list(pending), timeout=PROGRESS_EVERY_S)
            for future in done:
                part = future.result()
                if isinstance(part, BatchProblem):
                    part.raise_it()
                parts[pending.pop(future)] = part
            update_progress_artifact(progress_id, progress=100.0 * finished[0] / max(len(run.products), 1))
    update_progress_artifact(progress_id, progress=100.0)
    if "video" in options.stages and isinstance(
            problem := make_clips_task(parts, run.batches, options, run.run_id), BatchProblem):
        problem.raise_it()
    summary = finish_run(run, parts=parts)
    publish_artifacts(summary)
    return summary
