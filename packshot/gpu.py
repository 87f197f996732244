"""One stage at a time per GPU, across every process on the host.

``gpu_lock(device)`` holds an exclusive ``flock`` on ``<gpu_lock_dir>/<host>-cuda<N>.lock`` while a
model runs, so two workers (or two flow runs) on one machine never put their models on the same
card at once. Locks on CPU devices are no-ops. The lock is released by the kernel when a process
dies, so a killed worker never leaves a GPU locked (unlike a server-side slot).

Flows can add a second, cluster-wide guard (a Prefect global concurrency limit) with
:func:`set_extra_guard`; this module itself never imports Prefect.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()
_extra_guard: Callable[[str], AbstractContextManager] | None = None


def device_slot(device: str) -> str | None:
    """``cuda`` -> ``cuda0``, ``cuda:1`` -> ``cuda1``; None for devices that need no lock (cpu, mps)."""
    if not device.startswith("cuda"):
        return None
    _, _, index = device.partition(":")
    return f"cuda{index or 0}"


def set_extra_guard(factory: Callable[[str], AbstractContextManager] | None) -> None:
    """Install a context-manager factory taken inside the file lock, given the slot name (``cuda0``)."""
    global _extra_guard
    _extra_guard = factory


@contextmanager
def gpu_lock(device: str, lock_dir: Path):
    """Hold ``device`` exclusively for the duration of the block (threads and processes on this host)."""
    slot = device_slot(device)
    if slot is None:
        yield
        return
    with _thread_locks_guard:
        thread_lock = _thread_locks.setdefault(slot, threading.Lock())
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{socket.gethostname()}-{slot}.lock"
    with thread_lock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            guard = _extra_guard(slot) if _extra_guard else nullcontext()
            with guard:
                yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

