"""The catalog flow: Prefect wiring around :mod:`orchestrator.run`. Batches of products become tasks;
progress, the results table and the summary become artifacts. Runs under Prefect's ephemeral API when
no server is configured.

``PACKSHOT_ORCHESTRATION__GPU_WORKERS=served``: the batches (and the clips) run in the resident GPU
task worker (:mod:`flows.gpu_worker`), submitted with ``.delay()``; its models stay loaded across flow
runs and this process loads none. Otherwise they run here (``.submit()``), as the CLI does."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.exceptions import CancelledRun, TerminationSignal
from prefect.futures import wait
from prefect.runtime import flow_run as current_run
from prefect.states import Cancelled, Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import ValidationError

from flows.gpu import use_prefect_gpu_limit
from flows.tasks import BatchProblem, load_models_task, make_clips_task, process_batch_task
from flows.watch import PROGRESS_EVERY_S, ProductWatch, artifact_key, run_name
from orchestrator.context import use_described_backends
from orchestrator.manifest import TABLE_ROWS, ResultSpool
from orchestrator.options import RunOptions, options_problem
from orchestrator.run import RunSummary, finish_run, start_run
from orchestrator.settings import get_settings
from packshot import progress
from packshot.errors import PackshotError


def new_run_id() -> str:
    """The flow run's id, or a timestamped id outside a flow run."""
    return str(current_run.get_id() or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}")


def publish_artifacts(summary: RunSummary, catalog: str) -> None:
    """The results table and the summary (with the contact sheet's link), keyed per catalog."""
    create_table_artifact(key=artifact_key("results", catalog), table=summary.tally.rows,
                          description=f"per-product results: the first {TABLE_ROWS} products, then failures "
                          "and products that need review")
    create_markdown_artifact(key=artifact_key("summary", catalog), markdown=summary.markdown,
                             description="counts, the contact sheet (one click) and what went wrong")
    get_run_logger().info("done %(done)d, needs review %(needs_review)d, skipped %(skipped)d, "
                          "failed %(failed)d, invalid rows %(invalid)d", summary.counts)


def user_error(message: str, exc: PackshotError | None = None) -> State:
    """A mistake the user can fix (a catalog path typo, an unknown brand): the run ends Failed with
    this message, no traceback; Prefect logs it once ("Finished in state Failed('...')"), and the CLI
    prints it once from the state."""
    return Failed(message=message, data=exc)


def final_state(summary: RunSummary, data: dict) -> State:
    """A state that tells the truth: Failed when products failed, rows were invalid or the video stage
    made nothing; Completed named "Needs review" when products wait for a person; Completed otherwise.
    The message holds the counts and where to look."""
    c = summary.counts
    counts = (f"done {c['done']}, needs review {c['needs_review']}, skipped {c['skipped']}, "
              f"failed {c['failed']}, invalid rows {c['invalid']}")
    see = "; the summary artifact links the contact sheet"
    if summary.problem or c["failed"] or c["invalid"]:
        why = summary.problem or "finished with problems"
        return Failed(message=f"{why}: {counts}{see}", data=data)
    if c["needs_review"]:
        return Completed(name="Needs review", data=data,
                         message=f"{c['needs_review']} product(s) need review: packshot review "
                         f"{summary.output} ({counts})")
    return Completed(message=counts, data=data)


@flow(name="packshot-catalog", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True,
      flow_run_name=run_name, validate_parameters=False)
def catalog_run(options: RunOptions) -> dict:
    """Process a catalog: every product's cutout, packshots, scenes and color variants, then the
    manifest and the contact sheet. Unchanged products are skipped (content keys).

    The run's state tells the truth (:func:`final_state`): Failed, with the summary as its data, when
    products failed, rows were invalid or the video stage made no clip (call it with
    ``return_state=True`` to read the summary then); Completed named "Needs review" when products wait
    for a person. The options are checked when the run starts (brands and presets as they are now); a
    mistake the user can fix ends it Failed with a one-line message, not a traceback."""
    try:
        options = options if isinstance(options, RunOptions) else RunOptions.model_validate(options)
    except ValidationError as exc:  # checked here, not by Prefect: one line per problem, named by field
        return user_error("the run's options: " + "; ".join(options_problem(exc, form=True).splitlines()))
    try:
        summary, worker = _run_catalog(options)
    except PackshotError as exc:  # the state's message is the one line (no traceback in the logs)
        return user_error(str(exc), exc)
    except RunCancelled as stop:
        get_run_logger().warning(str(stop))
        return Cancelled(message=str(stop))
    result = {**summary.as_dict(), **({"gpu_worker": worker} if worker else {})}  # served: the GPU worker
    return final_state(summary, result)


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
    watch = ProductWatch(get_run_logger(), len(run.products), options.catalog)
    get_run_logger().info("%s: %d products in %d batches -> %s", options.catalog, len(run.products),
                          len(run.batches), options.out)

    submit = process_batch_task.delay if served else process_batch_task.submit
    parts: list[str | None] = [None] * len(run.batches)  # spool part keys in catalog order
    cancelled = False
    with progress.listening(watch.add), _say_what_a_stop_keeps(run, parts):
        pending = {submit(batch, options, run.run_id, index=i): i for i, batch in enumerate(run.batches)}
        while pending:
            done, _ = wait(list(pending), timeout=PROGRESS_EVERY_S)
            for future in done:
                index = pending.pop(future)
                try:
                    part = future.result()
                except CancelledRun:  # Cancel in the UI: keep what finished, list the rest
                    cancelled = True
                    kept = future.state.result(raise_on_failure=False)
                    parts[index] = kept if isinstance(kept, str) else None
                    continue
                if isinstance(part, BatchProblem):
                    part.raise_it()
                parts[index] = part
                if served:  # the products finished in the GPU worker: read back from the run's spool
                    for result in ResultSpool(run.ctx.storage, run.run_id).read(part):
                        watch.add(result)
            watch.refresh()
    watch.refresh(final=True)
    if cancelled:
        raise RunCancelled(cancelled_message(run, parts))
    if "video" in options.stages:
        clips = (make_clips_task.delay(parts, run.batches, options, run.run_id).result() if served
                 else make_clips_task(parts, run.batches, options, run.run_id))
        if isinstance(clips, BatchProblem):
            clips.raise_it()
    summary = finish_run(run, parts=parts)
    publish_artifacts(summary, options.catalog)
    return summary


@contextmanager
def _say_what_a_stop_keeps(run, parts: list[str | None]):
    """Cancel from a worker (SIGTERM: Prefect raises TerminationSignal here): log what is kept and what
    is not before Prefect ends the run Cancelled; batches still running end Cancelled with what they
    finish (:func:`flows.tasks.process_batch_task`)."""
    try:
        yield
    except TerminationSignal:
        get_run_logger().warning("%s (so far: batches still running keep what they finish)",
                                 cancelled_message(run, parts))
        raise


class RunCancelled(Exception):
    """The run was cancelled (Cancel in the UI); the message says what was kept and what was not."""


def cancelled_message(run, parts: list[str | None]) -> str:
    """What a cancelled run kept (finished products: their files and ``.done.json``, so a rerun skips
    them) and which products it did not finish."""
    spool = ResultSpool(run.ctx.storage, run.run_id)
    kept: set[str] = set()
    for part in parts:
        if part:
            kept |= {r.sku for r in spool.read(part) if r.status in ("done", "skipped", "needs_review")}
    unfinished = [p.sku for p in run.products if p.sku not in kept]
    shown = ", ".join(unfinished[:20]) + (f" and {len(unfinished) - 20} more" if len(unfinished) > 20 else "")
    return (f"cancelled: {len(kept)} finished product(s) kept (a rerun skips them), {len(unfinished)} not "
            f"finished{': ' + shown if unfinished else ''}")


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
