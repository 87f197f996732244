"""Ctrl-C and SIGTERM during a real ``packshot run`` (its own ephemeral Prefect server, its CPU worker
pool) end the run and every process it started: checked by process tree, not by output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.studio import write_catalog

HERE = Path(__file__).parent
REPO = HERE.parent
pytestmark = pytest.mark.slow  # each case starts a real ephemeral Prefect server (10-60 s)


def _marked(mark: str) -> list[psutil.Process]:
    """Every live process whose environment carries ``mark`` (the run and all it started)."""
    found = []
    for proc in psutil.process_iter():
        try:
            mine = proc.environ().get("PACKSHOT_TEST_STOP_MARK") == mark
            if mine and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_run_leaves_no_process_running(signum, tmp_path):
    catalog = write_catalog(tmp_path / "cat", [{"sku": f"S{i:02d}", "shape": ("bottle", "mug")[i % 2]}
                                               for i in range(40)])
    out = tmp_path / "out"
    mark = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update({"PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp_path / "prefect"),
                "PACKSHOT_TEST_STOP_MARK": mark, "PACKSHOT_SEGMENT__BACKEND": "classic",
                "PACKSHOT_EXPORT__PRESETS_FILE": str(HERE / "small_presets.yaml")})
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-c", "from cli.main import app; app()", "run", str(catalog),
                             "--out", str(out), "--presets", "test-shop", "--stages", "segment,export",
                             "--batch-size", "1"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=tmp_path)
    try:
        # Wait until the run is at work: its Prefect server is up and its CPU pool has started.
        deadline = time.monotonic() + 240
        while True:
            tree = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
            commands = [" ".join(p.cmdline()) for p in tree if p.is_running()]
            if any("forkserver" in c for c in commands) and any("prefect" in c or "uvicorn" in c
                                                                for c in commands):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the run did not get to work:\n" + (tmp_path / "run.log").read_text()[-3000:])
            time.sleep(0.2)
        assert len(_marked(mark)) >= 3  # the CLI, the Prefect server, the pool's forkserver (and workers)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 128 + signum
        deadline = time.monotonic() + 15  # processes killed a moment ago may still be being reaped
        while _marked(mark) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [" ".join(p.cmdline())[:120] for p in _marked(mark)]
        assert left == [], left
        text = (tmp_path / "run.log").read_text()
        assert f"stopped by {signal.Signals(signum).name}" in text and "Traceback" not in text, text[-3000:]
    finally:
        for p in _marked(mark):
            p.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
