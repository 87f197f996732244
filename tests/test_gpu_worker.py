"""The resident GPU process: a real ``prefect server start`` on 127.0.0.1 and a real GPU task worker
process (``python -m flows.gpu_worker``) serve the GPU work of two catalog flow runs in a row; the tiny
FLUX model loads once in the worker, and the flow's own process loads no model at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.prefect_server import start_server, stop
from tests.studio import write_catalog

HERE = Path(__file__).parent
REPO = HERE.parent
pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path):
    """A Prefect server and one GPU task worker sharing result storage; yields the flows' environment."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "shared-results"),  # what flow and worker share
           "PACKSHOT_DEVICE": "cpu",  # on purpose: without it the worker refuses to serve on the CPU
           "PACKSHOT_SEGMENT__BACKEND": "classic", "PACKSHOT_GENERATIVE__BACKEND": "tiny",
           "PACKSHOT_EXPORT__PRESETS_FILE": str(HERE / "small_presets.yaml"),
           "PACKSHOT_ORCHESTRATION__GPU_LOCK_DIR": str(tmp_path / "locks"),
           "PACKSHOT_ORCHESTRATION__GPU_WORKERS": "served",
           "PACKSHOT_ORCHESTRATION__GPU_WORKER_PICKUP_S": "120"}
    env.pop("PREFECT_API_URL", None)
    server, url = start_server(env, tmp_path / "server.log")
    env["PREFECT_API_URL"] = url
    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed in teardown
    worker = subprocess.Popen([sys.executable, "-m", "flows.gpu_worker"], env=env, cwd=REPO,
                              stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
    yield {"env": env, "worker": worker, "log": tmp_path / "worker.log"}
    stop(worker)
    stop(server)
    worker_log.close()


def test_models_load_once_across_flow_runs(served, tmp_path):
    catalog = write_catalog(tmp_path / "cat", [{"sku": f"S{i}"} for i in range(2)])
    runs = [{"catalog": str(catalog), "out": str(tmp_path / f"out-{i}"), "presets": ["test-shop"],
             "stages": ["segment", "background", "export"], "batch_size": 1} for i in range(2)]
    script = textwrap.dedent(f"""
        import json
        from flows.catalog_run import catalog_run
        from orchestrator.options import RunOptions
        from packshot.registry import models
        for options in {runs!r}:
            summary = catalog_run(RunOptions(**options))
            print("SUMMARY", json.dumps(summary), flush=True)
        print("FLOW_PROCESS_LOADS", json.dumps(models.load_counts))
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=served["env"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + served["log"].read_text()[-3000:]
    lines = proc.stdout.splitlines()
    first, second = (json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("SUMMARY"))
    for summary in (first, second):
        assert summary["counts"]["done"] == 2, summary
    assert first["gpu_worker"]["pid"] == second["gpu_worker"]["pid"] == served["worker"].pid
    flux = [k for k in second["gpu_worker"]["load_counts"] if k.startswith("flux-fill:")]
    assert len(flux) == 1 and second["gpu_worker"]["load_counts"][flux[0]] == 1, second["gpu_worker"]
    assert second["gpu_worker"]["backends"]["background"]["name"] == "tiny"
    flow_loads = json.loads(next(ln for ln in lines if ln.startswith("FLOW_PROCESS_LOADS")).split(" ", 1)[1])
    assert flow_loads == {}, "the flow's process should load no model when the GPU work is served"
    manifest = json.loads((tmp_path / "out-1" / "manifest.json").read_text())
    assert {p["status"] for p in manifest["products"]} == {"done"}
    assert manifest["backends"]["background"] == "tiny"
