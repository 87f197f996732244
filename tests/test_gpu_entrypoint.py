"""The image's entry point (scripts/gpu-entrypoint.sh) starts one GPU task worker per card, then the
command it is given; when one process exits, the others are stopped. ``python`` is replaced by a stub
that records its arguments (Docker cannot run here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu-entrypoint.sh"


def _run(tmp_path: Path, env: dict, *command: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "python"
    stub.write_text(f'#!/usr/bin/env bash\necho "$@" >> {tmp_path}/started\nexec sleep 30\n')
    stub.chmod(0o755)
    full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", **env}
    return subprocess.run(["bash", str(SCRIPT), *command], env=full_env, capture_output=True, text=True,
                          timeout=60)


def test_served_starts_one_task_worker_per_card_then_the_command(tmp_path):
    done = _run(tmp_path, {"PACKSHOT_ORCHESTRATION__GPU_WORKERS": "served",
                           "PACKSHOT_GPU_CARDS": "GPU-aaaa,GPU-bbbb"}, "bash", "-c", "sleep 1; exit 3")
    assert done.returncode == 3, done.stderr  # the process worker's status; the task workers were stopped
    started = (tmp_path / "started").read_text().splitlines()
    assert sorted(started) == ["-m flows.gpu_worker --gpu GPU-aaaa", "-m flows.gpu_worker --gpu GPU-bbbb"]


def test_in_process_runs_only_the_command_and_served_without_a_card_says_what_to_do(tmp_path):
    assert _run(tmp_path, {}, "true").returncode == 0
    assert not (tmp_path / "started").exists()
    missing = _run(tmp_path, {"PACKSHOT_ORCHESTRATION__GPU_WORKERS": "served"}, "true")
    assert missing.returncode == 1 and "no GPU visible" in missing.stderr
    assert os.access(SCRIPT, os.X_OK)
