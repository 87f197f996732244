"""Scale-out: split a large catalog into shards and send them to GPU workers of a work pool.

``catalog_fanout`` (the parent) starts one ``packshot-shard`` flow run per shard with
``run_deployment`` (each lands on whichever worker of the pool is free), waits for them, and writes
one manifest and contact sheet for the whole catalog. Each shard writes its product results, a
batch at a time, to the result spool ``.runs/<parent run id>/`` in the run's storage (shared: a
folder every worker mounts, or S3) and a record ``shard-<i>.json`` naming its parts, so results
never travel through Prefect's result storage and the parent streams them into the manifest.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Annotated

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
from orchestrator.run import finish_run, invalid_rows, process_part, start_run
from orchestrator.settings import get_settings
from packshot.errors import PackshotError
from packshot.schemas.results import ProductResult

SHARD_DEPLOYMENT = "packshot-shard/shard"
POLL_S = 2.0


def shard_slice(count: int, shard: int, shards: int) -> slice:
    """Contiguous, near-equal slices: shard ``i`` of ``shards`` over ``count`` products."""
    return slice(count * shard // shards, count * (shard + 1) // shards)


def shard_key(run_id: str, shard: int) -> str:
    return f".runs/{run_id}/shard-{shard}.json"


def _wait(run: FlowRun, deadline: float):
    """The run's final state, or its last state when ``deadline`` (monotonic) passes."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run.id).state
            if (state is not None and state.is_final()) or time.monotonic() > deadline:
                return state
            time.sleep(POLL_S)


@flow(name="packshot-shard", log_prints=True)
def catalog_shard(options: RunOptions, shard: int, shards: int, run_id: str) -> dict:
    """Process one shard of a catalog on this worker and store its results for the parent run:
    one spool part per batch, then a small record naming the parts."""
    settings = get_settings()
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
        "worker_pid": os.getppid(),  # a process worker starts each flow run as its child
        "parts": parts,
    }
    ctx.storage.write_bytes(shard_key(run_id, shard), json.dumps(record).encode(), "application/json")
    get_run_logger().info("shard %d/%d: %d products", shard + 1, shards, len(mine))
    return {"shard": shard, "products": len(mine)}


@flow(name="packshot-fanout", log_prints=True)
def catalog_fanout(
    options: RunOptions,
    shards: Annotated[int, Field(ge=1, le=1000, description="how many shard runs to start")] = 2,
    deployment: Annotated[str, Field(description="shard deployment on the GPU pool")] = SHARD_DEPLOYMENT,
    shard_timeout_s: Annotated[float, Field(gt=0, description="wait at most this per shard")] = 86400.0,
) -> dict:
    """Split the catalog into ``shards``, process them on the pool's workers, merge one manifest. The
    run ends as :func:`flows.catalog_run.final_state` says (Failed when products failed or rows were
    invalid); a mistake the user can fix ends it Failed with one line."""
    logger = get_run_logger()
    try:
        run = start_run(options, new_run_id())
    except PackshotError as exc:
        return user_error(str(exc), exc)
    try:
        ctx, catalog, products, run_id = run.ctx, run.catalog, run.products, run.run_id
        shards = max(1, min(shards, len(products) or 1))

        runs: list[FlowRun] = []
        for i in range(shards):
            params = {"options": options.model_dump(mode="json"), "shard": i, "shards": shards,
                      "run_id": run_id}
            runs.append(run_deployment(deployment, parameters=params, timeout=0,
                                       flow_run_name=f"shard {i + 1}/{shards}"))
        logger.info("started %d shard runs on %s", shards, deployment)

        progress_id = create_progress_artifact(progress=0.0, key=artifact_key("progress", options.catalog),
                                               description="shards done")
        workers: set[tuple[str, int]] = set()
        outcomes: list[list[str] | str] = []  # per shard: its spool parts, or why it has none
        for i, shard_run in enumerate(runs):
            state = _wait(shard_run, deadline=time.monotonic() + shard_timeout_s)
            key = shard_key(run_id, i)
            if state is not None and state.is_completed() and ctx.storage.exists(key):
                record = json.loads(ctx.storage.read_bytes(key))
                workers.add((record["host"], record["worker_pid"]))
                outcomes.append(record["parts"])
            else:
                ended = state.name if state else "unknown"
                outcomes.append(f"shard {i + 1}/{shards} ended {ended}: rerun the catalog")
            update_progress_artifact(progress_id, progress=100.0 * (i + 1) / shards)

        spool = ResultSpool(ctx.storage, run_id)

        def results() -> Iterator[ProductResult]:
            """Every product's result in catalog order, streamed from the shards' spool parts."""
            for i, outcome in enumerate(outcomes):
                if isinstance(outcome, list):
                    yield from spool.stream(outcome)
                    continue
                for p in products[shard_slice(len(products), i, shards)]:
                    yield ProductResult(sku=p.sku, status="failed", error=outcome, source_file=p.source_file,
                                        source_line=p.source_line)
            yield from invalid_rows(catalog)

        summary = finish_run(run, results())
        publish_artifacts(summary, options.catalog)
    finally:  # the fan-out holds the output's run lease for its shards; given back however it ends
        run.release()
    return final_state(summary, {**summary.as_dict(), "shards": shards,
                                 "workers": sorted(f"{host}:{pid}" for host, pid in workers)})
