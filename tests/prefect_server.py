"""A real ``prefect server start`` on 127.0.0.1 for tests that need one, and stopping what they start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it if it does not end within 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    log = getattr(proc, "log_file", None)
    if log is not None:
        log.close()


def start_server(env: dict[str, str], log_path: Path, timeout_s: float = 120) -> tuple[subprocess.Popen, str]:
    """Start a server with ``env`` (its PREFECT_HOME ...), wait until healthy; returns (process, API URL).
    A server that does not come up fails the test with the end of its log."""
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - the server writes to it until it is stopped
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log_file = log  # closed by stop()
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail("prefect server did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.5)
