"""Deployments against a real ``prefect server start`` on 127.0.0.1, with real process workers.

One server per module (start-up takes 6-16 s). Registers every deployment on a process work pool
the way the README says, checks the nightly schedule's cron and timezone and the UI form, then runs
the on-demand deployment on a worker and fans a catalog out over two workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.prefect_server import start_server, stop
from tests.s3_fixtures import *  # noqa: F403
from tests.studio import write_catalog

HERE = Path(__file__).parent
REPO = HERE.parent
POOL = "test-gpu-pool"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real Prefect server; yields the environment that points clients and workers at it."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1"}  # schedule new deployments' runs at once
    env.pop("PREFECT_API_URL", None)
    proc, url = start_server(env, home / "server.log")
    client_env = {**env, "PREFECT_API_URL": url, "PREFECT_WORKER_QUERY_SECONDS": "1",
                  "PACKSHOT_SEGMENT__BACKEND": "classic", "PACKSHOT_GENERATIVE__BACKEND": "classic",
                  "PACKSHOT_EXPORT__PRESETS_FILE": str(HERE / "small_presets.yaml"),
                  "PACKSHOT_ORCHESTRATION__TIMEZONE": "America/New_York",
                  "PACKSHOT_ORCHESTRATION__NIGHTLY_CRON": "30 1 * * *",
                  # the intake deployment's inbox: kept out of the repo
                  "PACKSHOT_ORCHESTRATION__INBOX": str(home / "inbox"),
                  "PACKSHOT_ORCHESTRATION__INBOX_OUT": str(home / "inbox-out")}
    yield {"url": url, "env": client_env, "home": home}
    stop(proc)  # the workers (function fixtures) are already stopped


def _deploy(server) -> list[str]:
    """``python -m flows.deployments deploy --pool POOL``; returns the deployment ids."""
    proc = subprocess.run([sys.executable, "-m", "flows.deployments", "deploy", "--pool", POOL],
                          env=server["env"], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return re.findall(r"^[0-9a-f]{8}-[0-9a-f-]{27}$", proc.stdout, re.M)


@pytest.fixture(scope="module")
def deployed(server):
    return _deploy(server)


def _client(server):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class _Ctx:
        def __enter__(self):
            self.settings = temporary_settings(updates={PREFECT_API_URL: server["url"]})
            self.settings.__enter__()
            self.client = get_client(sync_client=True)
            return self.client.__enter__()

        def __exit__(self, *exc):
            self.client.__exit__(*exc)
            self.settings.__exit__(*exc)

    return _Ctx()


def test_deployments_register_with_nightly_cron_in_merchant_timezone(server, deployed):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    assert len(deployed) == 5
    with _client(server) as client:
        deps = {d.name: d for d in client.read_deployments(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployed)))}
        assert set(deps) == {"nightly", "on-demand", "intake", "fan-out", "shard"}
        assert all(d.work_pool_name == POOL for d in deps.values())
        (schedule,) = deps["nightly"].schedules
        assert schedule.schedule.cron == "30 1 * * *"
        assert schedule.schedule.timezone == "America/New_York"
        assert "America/New_York" in schedule.slug  # the name the UI lists shows the timezone
        assert schedule.active
        # The server's own scheduler turns the cron into runs at 01:30 New York time, DST or not.
        runs = []
        for _ in range(40):
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deps["nightly"].id])))
            if runs:
                break
            time.sleep(0.5)
        assert runs, "no scheduled nightly runs"
        for run in runs:
            local = run.expected_start_time.astimezone(ZoneInfo("America/New_York"))
            assert (local.hour, local.minute) == (1, 30)
        assert {run.expected_start_time.astimezone(ZoneInfo("UTC")).hour for run in runs} <= {5, 6}

        # The on-demand form: RunOptions with the stage choices, presets, brand and video options.
        schema = deps["on-demand"].parameter_openapi_schema
        assert schema["required"] == ["options"]
        run_options = schema["definitions"]["RunOptions"]
        assert run_options["required"] == ["catalog"]
        props = run_options["properties"]
        assert props["stages"]["items"]["enum"] == ["segment", "background", "lifestyle", "recolor", "export",
                                                     "video"]
        assert "s3://" in props["out"]["description"]
        assert {"brand", "presets", "video"} <= set(props)
        video = schema["definitions"]["VideoOptions"]["properties"]
        assert video["provider"]["enum"] == ["runway", "veo", "sora", "local", "none"]
        assert not deps["intake"].schedules  # no run per minute: the inbox watcher starts it


@pytest.fixture
def two_workers(server, deployed):
    procs = [subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                               "--type", "process", "--limit", "1", "--name", f"worker-{i}"],
                              env=server["env"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True) for i in range(2)]
    yield procs
    for proc in procs:
        stop(proc)


def test_fan_out_over_two_process_workers_lands_in_one_manifest(server, two_workers, tmp_path):
    catalog = write_catalog(tmp_path / "cat", [{"sku": f"S{i}", "shape": ("bottle", "mug", "disc")[i % 3]}
                                               for i in range(6)])
    out = tmp_path / "out"
    options = {"catalog": str(catalog), "out": str(out), "presets": ["test-white"],
               "stages": ["segment", "export"]}
    script = textwrap.dedent(f"""
        import json
        from flows.shards import catalog_fanout
        from orchestrator.options import RunOptions
        summary = catalog_fanout(RunOptions(**{options!r}), shards=2)
        print("SUMMARY", json.dumps(summary))
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=server["env"], cwd=REPO, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.split("SUMMARY", 1)[1])
    assert summary["counts"]["done"] == 6 and summary["shards"] == 2, summary
    worker_pids = {p.pid for p in two_workers}
    used = {int(w.rsplit(":", 1)[1]) for w in summary["workers"]}
    assert used == worker_pids, "each worker should have taken one shard"
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p["sku"] for p in manifest["products"]) == [f"S{i}" for i in range(6)]
    for product in manifest["products"]:
        assert all((out / o["key"]).is_file() for o in product["outputs"])

    # The on-demand deployment runs on a worker too; over the same output everything is reused.
    from prefect.deployments import run_deployment

    with _client(server):
        run = run_deployment("packshot-catalog/on-demand", parameters={"options": options}, timeout=180)
    assert run.state.is_completed(), run.state
    again = json.loads((out / "manifest.json").read_text())
    assert {p["status"] for p in again["products"]} == {"skipped"}
    assert datetime.fromisoformat(again["started"]) > datetime.fromisoformat(manifest["started"])


def test_prefect_yaml_deploys_with_the_prefect_cli(server, tmp_path):
    """``python -m flows.deployments yaml`` then ``prefect deploy --all``, as the README tells merchants:
    the merchant's PACKSHOT_ORCHESTRATION__* settings (New York, 01:30) reach the server."""
    import asyncio

    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName
    from prefect.deployments.steps.core import run_steps
    from prefect.flows import load_flow_from_entrypoint

    from flows.deployments import ensure_work_pool

    with _client(server):
        ensure_work_pool("gpu-pool")  # `prefect work-pool create gpu-pool --type process`
    env = {**server["env"], "PACKSHOT_CODE_DIR": str(REPO)}  # where the workers find the code
    written = tmp_path / "prefect.yaml"
    proc = subprocess.run([sys.executable, "-m", "flows.deployments", "yaml", "--out", str(written)], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    deploy = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
              "--prefect-file", str(written)]
    proc = subprocess.run(deploy, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    with _client(server) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        deps = {f"{flows[d.flow_id]}/{d.name}": d for d in client.read_deployments(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=["gpu-pool"])))}
    assert set(deps) == {"packshot-catalog/nightly", "packshot-catalog/on-demand", "packshot-intake/intake",
                         "packshot-fanout/fan-out", "packshot-shard/shard"}
    nightly = deps["packshot-catalog/nightly"]
    (schedule,) = nightly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == (
        "30 1 * * *", "America/New_York", True)
    assert nightly.parameters == {"options": {"catalog": "catalogs/demo/catalog.csv", "out": "out/nightly"}}
    assert set(nightly.tags) == {"packshot", "nightly"}
    intake = deps["packshot-intake/intake"]
    assert not intake.schedules
    home = server["home"]
    assert intake.parameters == {"inbox": str(home / "inbox"), "out": str(home / "inbox-out")}
    on_demand = deps["packshot-catalog/on-demand"]
    assert not on_demand.schedules and not on_demand.parameters
    run_options = on_demand.parameter_openapi_schema["definitions"]["RunOptions"]
    assert run_options["required"] == ["catalog"]

    # What a worker does before a run: the pull step puts it in the code folder, the entrypoint loads.
    pull = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    assert all(dep.pull_steps == pull for dep in deps.values())
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        asyncio.run(run_steps(nightly.pull_steps))
        assert Path.cwd() == REPO
        assert load_flow_from_entrypoint(nightly.entrypoint).name == "packshot-catalog"
    finally:
        os.chdir(cwd)


def _wait_for(what: str, condition, proc: subprocess.Popen, log: Path, deadline_s: float = 400):
    """Poll ``condition`` until it returns something true (returned), failing after a generous deadline
    or when ``proc`` (writing ``log``) ended meanwhile."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the fan-out ended while waiting for {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.3)


def _parent_pid(pid: int) -> int:
    """From ``/proc/PID/stat``: the fields after the command's closing parenthesis are state, ppid ..."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def versioned_bucket(s3_bucket):
    """The bucket with versioning on: every write of a key is a version, so writes can be counted."""
    s3, bucket = s3_bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    yield s3, bucket
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


@pytest.mark.timeout(900)  # generous: two workers start, one is lost, the other runs both shards
def test_a_shard_whose_worker_is_killed_is_retried_on_the_other_worker_and_nothing_is_done_twice(
        server, s3_server, versioned_bucket, tmp_path):
    """Two process workers in separate folders, output on S3 (moto server). One worker and its flow-run
    process are SIGKILLed mid-shard: the fan-out sees the shard's heartbeat stop, starts the shard again,
    the other worker runs it and skips what the killed one finished. Every product is done exactly
    once (counted in a versioned bucket: one write of each .done.json, none again of a finished
    product's files), with one manifest row each, all done."""
    _deploy(server)  # again: `prefect deploy --all` above moved the deployments to another pool
    s3, bucket = versioned_bucket
    env = {**server["env"], "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "PACKSHOT_STORAGE__S3_ENDPOINT_URL": s3_server,
           "PACKSHOT_STORAGE__S3_REGION": "us-east-1"}
    workers = []
    for i in range(2):
        home = tmp_path / f"worker-{i}"  # its own working folder, temp folder and Prefect home
        (home / "tmp").mkdir(parents=True)
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process",
             "--limit", "1", "--name", f"kill-test-{i}"],
            env={**env, "TMPDIR": str(home / "tmp"), "PREFECT_HOME": str(home / "prefect")}, cwd=home,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    skus = [f"K{i}" for i in range(8)]
    catalog = write_catalog(tmp_path / "cat", [{"sku": sku, "shape": ("bottle", "mug", "disc")[i % 3]}
                                               for i, sku in enumerate(skus)])
    options = {"catalog": str(catalog), "out": f"s3://{bucket}/run", "presets": ["test-white"],
               "stages": ["segment", "export"], "batch_size": 2}
    script = textwrap.dedent(f"""
        import json
        from flows.shards import catalog_fanout
        from orchestrator.options import RunOptions
        summary = catalog_fanout(RunOptions(**{options!r}), shards=2, shard_lost_after_s=30)
        print("SUMMARY", json.dumps(summary))
    """)
    out_path, log_path = tmp_path / "fanout.out", tmp_path / "fanout.log"
    with open(out_path, "w") as out, open(log_path, "w") as log:
        fanout = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO, stdout=out, stderr=log)
    try:
        def keys(prefix: str) -> set[str]:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return {o["Key"] for page in pages for o in page.get("Contents", [])}

        def victim_mid_shard():
            """Shard 1's heartbeat (naming its flow-run process) once one of its 4 products is done."""
            found = keys("run/")
            beats = [k for k in found if k.endswith("/shard-0.beat.json")]
            done = {sku for sku in skus[:4] if f"run/{sku}/.done.json" in found}
            if beats and done and not any(k.endswith("/shard-0.json") for k in found):
                return json.loads(s3.get_object(Bucket=bucket, Key=beats[0])["Body"].read()), done
            return None

        beat, done_before = _wait_for("shard 1 to finish a product", victim_mid_shard, fanout, log_path)
        (victim,) = [w for w in workers if w.pid == _parent_pid(beat["pid"])]
        os.killpg(victim.pid, signal.SIGKILL)  # the worker, its flow-run process and that one's pool
        with contextlib.suppress(ProcessLookupError):
            os.kill(beat["pid"], signal.SIGKILL)
        victim.wait(30)
        assert not any(k.endswith("/shard-0.json") for k in keys("run/")), "shard 1 ended before the kill"
        fanout.wait(420)
    finally:
        if fanout.poll() is None:
            fanout.kill()
        for worker in workers:
            stop(worker)
    assert fanout.returncode == 0, log_path.read_text()[-3000:]
    summary = json.loads(out_path.read_text().split("SUMMARY", 1)[1])
    manifest = json.loads(s3.get_object(Bucket=bucket, Key="run/manifest.json")["Body"].read())
    rows = {p["sku"]: p for p in manifest["products"]}
    assert sorted(p["sku"] for p in manifest["products"]) == skus
    statuses = {p["sku"]: (p["status"], p["notes"], p.get("run_id")) for p in manifest["products"]}
    assert {status for status, _, _ in statuses.values()} == {"done"}, (statuses, summary["retries"])
    assert summary["counts"]["done"] == 8 and summary["counts"]["failed"] == 0, summary
    (retry,) = summary["retries"]
    assert retry.startswith("shard 1/2 attempt 1") and "lost" in retry, retry
    (survivor,) = [w for w in workers if w is not victim]
    (record,) = [k for k in keys("run/.runs/") if k.endswith("/shard-0.json")]  # S3 spools stay
    assert json.loads(s3.get_object(Bucket=bucket, Key=record)["Body"].read())["worker_pid"] == survivor.pid
    for sku in done_before:  # made by the killed attempt, reported as this run's, not made again
        assert any("earlier attempt of this run" in n for n in rows[sku]["notes"]), rows[sku]["notes"]
    versions: dict[str, int] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="run/"):
        for v in page.get("Versions", []):
            versions[v["Key"]] = versions.get(v["Key"], 0) + 1
    # Each product finished once (one .done.json write), and no file of a product finished before the
    # kill was written again (a product cut off mid-way by the kill is made again: it was not done).
    assert {sku: versions.get(f"run/{sku}/.done.json") for sku in skus} == dict.fromkeys(skus, 1)
    finished_first = {k: n for k, n in versions.items() if k.split("/")[1] in done_before}
    assert len(finished_first) > len(done_before)  # their images, not only their records
    assert {k: n for k, n in finished_first.items() if n != 1} == {}, "a finished product was made again"
