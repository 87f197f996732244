"""Scale-out: split a large catalog into shards and send them to GPU workers of a work pool.

``catalog_fanout`` (the parent) starts one ``packshot-shard`` flow run per shard with
``run_deployment`` (each lands on whichever worker of the pool is free), waits for them, and writes
one manifest and contact sheet for the whole catalog. Each shard writes its product results, a
batch at a time, to the result spool ``.runs/<parent run id>/`` in the run's storage (shared: a
folder every worker mounts, or S3) and a record ``shard-<i>.json`` naming its parts, so results
never travel through Prefect's result storage and the parent streams them into the manifest.

A shard run that fails, crashes or is lost (its worker killed: its heartbeat in the storage stops) is
started again as a new flow run, which a live worker picks up; it skips the products the lost run
finished (their ``.done.json`` names this run), so every product is made once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from pydantic import Field

from flows.catalog_run import final_state, new_run_id, publish_artifacts, user_error
from flows.gpu import use_prefect_gpu_limit
from flows.watch import artifact_key
from orchestrator.catalog_source import catalog_of_run
from orchestrator.context import get_context
from orchestrator.manifest import ResultSpool
from orchestrator.options import RunOptions
from orchestrator.photos import made_by_run
from orchestrator.run import finish_run, invalid_rows, process_part, start_run
from orchestrator.settings import get_settings
from packshot.errors import PackshotError
from packshot.schemas.results import ProductResult
from packshot.storage import open_storage

SHARD_DEPLOYMENT = "packshot-shard/shard"
POLL_S = 2.0
SHARD_ATTEMPTS = 3  # a shard run that fails, crashes or is lost is started again, at most this often in all
LOST_AFTER_S = 120.0  # a running shard run without a heartbeat for this long is lost (its worker died)
BEATS_PER_WINDOW = 8  # heartbeats a shard writes within LOST_AFTER_S: a few missed ones are no loss
STARTUP_WINDOWS = 5  # a run that has not beaten yet (its process starting, importing) gets 5 windows


def shard_slice(count: int, shard: int, shards: int) -> slice:
    """Contiguous, near-equal slices: shard ``i`` of ``shards`` over ``count`` products."""
    return slice(count * shard // shards, count * (shard + 1) // shards)


def shard_key(run_id: str, shard: int) -> str:
    return f".runs/{run_id}/shard-{shard}.json"


def beat_key(run_id: str, shard: int) -> str:
    return f".runs/{run_id}/shard-{shard}.beat.json"


class ShardBeat:
    """While a shard run works, its heartbeat in the run's storage (``shard-<i>.beat.json``: this flow
    run's id and a counter) says it is alive, every ``every_s`` seconds; the parent takes a run whose
    counter stops moving for lost (:func:`_Shard.check`). The storage, not a clock: hosts' clocks may
    differ, and the parent only compares what it reads now with what it read before.

    When the parent has given this attempt up (its flow run marked Crashed) while it still works (a
    stalled, not a dead, worker), the attempt ends itself at its next beat: two attempts never work on
    one shard for longer than a beat."""

    def __init__(self, storage, run_id: str, shard: int, every_s: float, flow_run_id: str | None):
        self.storage, self.key, self.every_s = storage, beat_key(run_id, shard), every_s
        self.flow_run_id = flow_run_id
        self.logger = get_run_logger()  # taken in the flow: the heartbeat thread has no run context
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shard-heartbeat", daemon=True)

    def __enter__(self) -> ShardBeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        self.count += 1
        record = {"flow_run": self.flow_run_id, "beat": self.count, "host": socket.gethostname(),
                  "pid": os.getpid()}
        with contextlib.suppress(Exception):  # a missed beat is no loss; the next one comes soon
            self.storage.write_bytes(self.key, json.dumps(record).encode(), "application/json")

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._beat()  # first: a slow API answer below must not delay the beat
            if self._given_up():
                self.logger.error("the fan-out run gave this shard run up (marked it Crashed); stopping it")
                os._exit(1)  # its CPU pool ends with this process (orchestrator.pool)

    def _given_up(self) -> bool:
        if not self.flow_run_id:
            return False
        from prefect.client.orchestration import get_client

        try:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(UUID(self.flow_run_id)).state
        except Exception:  # the API out of reach for a moment: keep working
            return False
        return state is not None and state.is_final()


@flow(name="packshot-shard", log_prints=True)
def catalog_shard(options: RunOptions, shard: int, shards: int, run_id: str, beat_s: float = 15.0) -> dict:
    """Process one shard of a catalog on this worker and store its results for the parent run:
    one spool part per batch, then a small record naming the parts, written last. A heartbeat runs
    meanwhile (:class:`ShardBeat`). Products an earlier attempt of this run finished are not made
    again (their ``.done.json`` names the run): a retried shard picks up where the lost one stopped."""
    from prefect.runtime import flow_run

    settings = get_settings()
    attempt = flow_run.get_id() or None  # this flow run's id (a str)
    # The heartbeat first: loading the models (minutes on a GPU) is work the parent must not take for loss.
    beat = ShardBeat(open_storage(options.out, settings.storage), run_id, shard, beat_s, attempt)
    with beat:
        use_prefect_gpu_limit(settings)
        ctx = get_context(options, settings)
        catalog = catalog_of_run(options.catalog, settings, ctx.storage, run_id)  # the parent's snapshot
        products = catalog.products[: options.limit] if options.limit else catalog.products
        mine = products[shard_slice(len(products), shard, shards)]
        size = options.batch_size or settings.batch_size
        parts = [process_part(mine[i : i + size], options, run_id, f"shard-{shard:04d}-{i // size:05d}")
                 for i in range(0, len(mine), size)]
        record = {
            "shard": shard, "shards": shards, "host": socket.gethostname(),
            "flow_run": attempt,
            "worker_pid": os.getppid(),  # a process worker starts each flow run as its child
            "parts": parts,
        }
        ctx.storage.write_bytes(shard_key(run_id, shard), json.dumps(record).encode(), "application/json")
    get_run_logger().info("shard %d/%d: %d products", shard + 1, shards, len(mine))
    return {"shard": shard, "products": len(mine)}


def _read_json(storage, key: str) -> dict | None:
    """The JSON object at ``key``; None when absent or damaged (a damaged record is no record)."""
    try:
        if not storage.exists(key):
            return None
        data = json.loads(storage.read_bytes(key))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class _Shard:
    """One shard of a fan-out run and its current attempt (a flow run of the shard deployment)."""

    index: int
    shards: int
    run: FlowRun | None = None
    attempt: int = 0
    deadline: float = 0.0
    beat: object = None  # the last heartbeat read of this attempt
    beat_at: float | None = None  # when it last changed (monotonic); None while the run waits for a worker
    record: dict | None = None
    error: str | None = None
    history: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"shard {self.index + 1}/{self.shards}"

    @property
    def open(self) -> bool:
        return self.record is None and self.error is None

    def check(self, client, storage, run_id: str, lost_after_s: float) -> str | None:
        """Look at the current attempt once: take its record when it is written, or say why the attempt
        is over without one (None while it waits or works).

        Why a shard run used to end without its record (issue 21): the fan-out waited once for each
        shard run's final state, and any end but "Completed, record written" cost the shard's products
        for the whole run. A shard run is a process on some worker; when that process dies before its
        record (killed with its worker, the OOM killer on a crowded machine, a crash while starting:
        Prefect reports it Crashed) or raises (Failed), nothing started it again; when the worker dies
        with it, nobody reports anything and the run stays Running until ``shard_timeout_s``. The state
        was also trusted over the storage: a run marked Crashed after it wrote its record was lost too.
        Now the record decides, a silent run is lost after ``lost_after_s``, and every such end starts
        the shard again (bounded), skipping what was finished."""
        # The record is written last, after every spool part: once it is there the shard's work is done,
        # whatever Prefect says of the run now (a worker killed after the record, before Completed).
        if self._took_record(storage, run_id):
            return None
        state = client.read_flow_run(self.run.id).state
        now = time.monotonic()
        if state is not None and state.is_final():
            # Read the record again: it may have been written between the two reads above.
            if self._took_record(storage, run_id):
                return None
            if state.is_cancelled():  # someone cancelled it (the UI): not started again
                self.error = f"{self.label} was cancelled; rerun the catalog (finished products are kept)"
                return None
            return f"ended {state.name}" + (f" ({state.message})" if state.message else "")
        if now > self.deadline:
            return "did not finish in time (shard_timeout_s)"
        if state is None or not (state.is_running() or state.is_pending()):
            return None  # scheduled or late: waiting for a free worker
        beat = _read_json(storage, beat_key(run_id, self.index))
        if beat is not None and beat.get("flow_run") != str(self.run.id):
            beat = None  # an earlier attempt's
        if self.beat_at is None or beat != self.beat:
            self.beat, self.beat_at = beat, now  # the clock starts when a worker took the run
            return None
        window = lost_after_s if beat is not None else lost_after_s * STARTUP_WINDOWS
        if now - self.beat_at > window:
            return f"was lost: no heartbeat for {window:.0f} s (its worker stopped or was killed)"
        return None

    def _took_record(self, storage, run_id: str) -> bool:
        """Take the shard's record when it is there (whole: a damaged one is no record)."""
        record = _read_json(storage, shard_key(run_id, self.index))
        if record is None or not isinstance(record.get("parts"), list):
            return False
        self.record = record
        return True


def _start(shard: _Shard, deployment: str, params: dict, timeout_s: float) -> None:
    shard.attempt += 1
    name = shard.label if shard.attempt == 1 else f"{shard.label} (attempt {shard.attempt})"
    shard.run = run_deployment(deployment, parameters={**params, "shard": shard.index}, timeout=0,
                               flow_run_name=name)
    shard.deadline = time.monotonic() + timeout_s
    shard.beat, shard.beat_at = None, None


def _give_up(client, shard: _Shard, why: str) -> None:
    """Mark the attempt Crashed with ``why`` (the UI shows it), unless it already ended: an attempt that
    still works sees it at its next heartbeat and stops (:class:`ShardBeat`)."""
    from prefect.states import Crashed

    with contextlib.suppress(Exception):  # the API out of reach: the attempt is given up all the same
        state = client.read_flow_run(shard.run.id).state
        if state is None or not state.is_final():
            client.set_flow_run_state(shard.run.id, Crashed(message=f"{shard.label} {why}"), force=True)


@flow(name="packshot-fanout", log_prints=True)
def catalog_fanout(
    options: RunOptions,
    shards: Annotated[int, Field(ge=1, le=1000, description="how many shard runs to start")] = 2,
    deployment: Annotated[str, Field(description="shard deployment on the GPU pool")] = SHARD_DEPLOYMENT,
    shard_timeout_s: Annotated[float, Field(gt=0, description="wait at most this per shard run")] = 86400.0,
    shard_attempts: Annotated[int, Field(ge=1, le=10, description="runs per shard at most: one that fails, "
                                         "crashes or loses its worker is started again")] = SHARD_ATTEMPTS,
    shard_lost_after_s: Annotated[float, Field(ge=5, description="a running shard without a heartbeat for "
                                               "this long is lost and started again")] = LOST_AFTER_S,
) -> dict:
    """Split the catalog into ``shards``, process them on the pool's workers, merge one manifest. A shard
    run that fails, crashes or is lost (its worker killed: no heartbeat) is started again as a new flow
    run, which a live worker of the pool picks up, up to ``shard_attempts`` runs per shard; the new run
    skips what the lost one finished. The run ends as :func:`flows.catalog_run.final_state` says (Failed
    when products failed or rows were invalid); a mistake the user can fix ends it Failed with one line."""
    from prefect.client.orchestration import get_client

    logger = get_run_logger()
    try:
        run = start_run(options, new_run_id())
    except PackshotError as exc:
        return user_error(str(exc), exc)
    try:
        ctx, catalog, products, run_id = run.ctx, run.catalog, run.products, run.run_id
        shards = max(1, min(shards, len(products) or 1))
        params = {"options": options.model_dump(mode="json"), "shards": shards, "run_id": run_id,
                  "beat_s": max(0.5, shard_lost_after_s / BEATS_PER_WINDOW)}
        pending = [_Shard(i, shards) for i in range(shards)]
        for shard in pending:
            _start(shard, deployment, params, shard_timeout_s)
        logger.info("started %d shard runs on %s", shards, deployment)

        progress_id = create_progress_artifact(progress=0.0, key=artifact_key("progress", options.catalog),
                                               description="shards done")
        shown = 0
        with get_client(sync_client=True) as client:
            while open_shards := [s for s in pending if s.open]:
                for shard in open_shards:
                    try:
                        why = shard.check(client, ctx.storage, run_id, shard_lost_after_s)
                    except Exception as exc:  # the API or the storage out of reach: look again next round
                        if time.monotonic() < shard.deadline:
                            continue
                        why = f"could not be followed ({type(exc).__name__}: {exc})"
                    if why is None:
                        continue
                    _give_up(client, shard, why)
                    shard.history.append(f"{shard.label} attempt {shard.attempt} {why}")
                    if shard.attempt < shard_attempts:
                        logger.warning("%s attempt %d %s: starting it again", shard.label, shard.attempt, why)
                        _start(shard, deployment, params, shard_timeout_s)
                    else:
                        shard.error = (f"{shard.label} failed {shard.attempt} time(s), last: {why}; "
                                       "rerun the catalog (finished products are kept)")
                if (done := sum(not s.open for s in pending)) != shown:
                    update_progress_artifact(progress_id, progress=100.0 * done / shards)
                    shown = done
                if done < shards:
                    time.sleep(POLL_S)

        workers = {(s.record["host"], s.record["worker_pid"]) for s in pending if s.record}
        spool = ResultSpool(ctx.storage, run_id)

        def results() -> Iterator[ProductResult]:
            """Every product's result in catalog order, streamed from the shards' spool parts."""
            for shard in pending:
                if shard.record is not None:
                    yield from spool.stream(shard.record["parts"])
                    continue
                for p in products[shard_slice(len(products), shard.index, shards)]:
                    # what a lost attempt finished before the shard gave up is kept and reported as made
                    if (made := made_by_run(ctx.storage, p, run_id)) is not None:
                        made.notes = [*made.notes, f"made by a lost attempt of {shard.label}"]
                        yield made
                        continue
                    yield ProductResult(sku=p.sku, status="failed", error=shard.error,
                                        source_file=p.source_file, source_line=p.source_line)
            yield from invalid_rows(catalog)

        summary = finish_run(run, results())
        publish_artifacts(summary, options.catalog)
    finally:  # the fan-out holds the output's run lease for its shards; given back however it ends
        run.release()
    return final_state(summary, {**summary.as_dict(), "shards": shards,
                                 "workers": sorted(f"{host}:{pid}" for host, pid in workers),
                                 "retries": [line for s in pending for line in s.history]})
