"""A GPU worker never runs FLUX on the CPU by accident (issue 23): with ``device=auto`` and no usable
CUDA it refuses to start with one line saying what to do; ``PACKSHOT_DEVICE=cpu`` serves on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu-entrypoint.sh"


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKSHOT_", "PREFECT_API_URL"))}
    env.update(PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()


pytestmark = pytest.mark.skipif(not _no_cuda(), reason="this machine has a usable CUDA card")


def test_worker_refuses_to_start_on_the_cpu_with_one_line():
    done = subprocess.run([sys.executable, "-m", "flows.gpu_worker", "--gpu", "0"], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "GPU worker not started" in lines[0] and "PACKSHOT_DEVICE=cpu" in lines[0] and "--gpus" in lines[0]


def test_explicit_cpu_and_explicit_cuda():
    from flows.gpu_worker import NoCardError, check_card

    assert check_card("cpu") == "cpu"
    with pytest.raises(NoCardError, match="PACKSHOT_DEVICE=cuda:0 expects CUDA"):
        check_card("cuda:0")
    with pytest.raises(NoCardError, match="PACKSHOT_DEVICE=auto expects CUDA"):
        check_card("auto")


def test_the_image_entry_point_exits_with_the_workers_refusal(tmp_path):
    """The container stops (its restart policy shows it) instead of serving FLUX on the CPU."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"  # this environment's interpreter, as the image's `python`
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = _env(PACKSHOT_ORCHESTRATION__GPU_WORKERS="served", PACKSHOT_GPU_CARDS="GPU-aaaa")
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    done = subprocess.run(["bash", str(SCRIPT), "sleep", "60"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert "GPU worker not started" in done.stderr
