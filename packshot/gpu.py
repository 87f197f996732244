"""One holder at a time per GPU card, across every process and container that shares the lock folder.

``gpu_lock(device, lock_dir)`` holds an exclusive ``flock`` on ``<lock_dir>/<card uuid>.lock`` while
models load and run. Cards are named by their UUID (``nvidia-smi -L``: ``GPU-5f1c...``), never by the
index a process sees: two workers pinned with ``CUDA_VISIBLE_DEVICES=0`` and ``=1`` both call their
card ``cuda:0`` yet lock different files, and two containers given the same card lock the same file
when they mount the same lock folder (``-v /var/lock/packshot-gpu:/tmp/packshot-gpu-locks``). Locks
on CPU devices are no-ops. The kernel releases a lock when its process dies, so a killed worker never
leaves a card locked. The lock is re-entrant within a thread (a model load inside a locked call).

Flows can add a second, cluster-wide guard (a Prefect global concurrency limit) with
:func:`set_extra_guard`; this module itself never imports Prefect.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path

_thread_locks: dict[str, threading.RLock] = {}
_thread_locks_guard = threading.Lock()
_held = threading.local()  # card uuid -> depth held by this thread
_extra_guard: Callable[[str], AbstractContextManager] | None = None
_lock_dir = Path(os.environ.get("PACKSHOT_ORCHESTRATION__GPU_LOCK_DIR", "/tmp/packshot-gpu-locks"))


def device_index(device: str) -> int | None:
    """``cuda`` -> 0, ``cuda:1`` -> 1; None for devices that need no lock (cpu, mps)."""
    if not device.startswith("cuda"):
        return None
    _, _, index = device.partition(":")
    return int(index or 0)


@lru_cache
def card_uuid(device: str) -> str | None:
    """The UUID of the card behind ``device`` as ``nvidia-smi -L`` prints it (``GPU-xxxxxxxx-...``)."""
    index = device_index(device)
    if index is None:
        return None
    import torch

    props = torch.cuda.get_device_properties(index)
    uuid = str(getattr(props, "uuid", "") or "")
    if not uuid:  # very old drivers: fall back to the PCI bus id, also unique per card on a host
        uuid = f"pci-{props.pci_domain_id:04x}-{props.pci_bus_id:02x}-{props.pci_device_id:02x}"
    return uuid if uuid.startswith(("GPU-", "MIG-", "pci-")) else f"GPU-{uuid}"


def lock_name(uuid: str) -> str:
    """The lock file's name for a card: ``<uuid>.lock`` (characters outside [A-Za-z0-9._-] become _)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", uuid) + ".lock"


def set_lock_dir(path: Path) -> None:
    """The folder of lock files used when a caller names none (the run's ``orchestration.gpu_lock_dir``)."""
    global _lock_dir
    _lock_dir = Path(path)


def set_extra_guard(factory: Callable[[str], AbstractContextManager] | None) -> None:
    """Install a context-manager factory taken inside the file lock, given the card's UUID."""
    global _extra_guard
    _extra_guard = factory


@contextmanager
def gpu_lock(device: str, lock_dir: Path | None = None, *, uuid: str | None = None):
    """Hold the card behind ``device`` exclusively for the block (threads, processes, containers).

    ``lock_dir`` defaults to :func:`set_lock_dir`'s folder; ``uuid`` names the card directly (tests).
    """
    lock_dir = Path(lock_dir or _lock_dir)
    uuid = uuid or card_uuid(device)
    if uuid is None:
        yield
        return
    with _thread_locks_guard:
        thread_lock = _thread_locks.setdefault(uuid, threading.RLock())
    held = getattr(_held, "cards", None)
    if held is None:
        held = _held.cards = {}
    with thread_lock:
        if held.get(uuid):  # this thread already holds the card (a load inside a locked call)
            held[uuid] += 1
            try:
                yield
            finally:
                held[uuid] -= 1
            return
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_dir / lock_name(uuid), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held[uuid] = 1
            guard = _extra_guard(uuid) if _extra_guard else nullcontext()
            with guard:
                yield
        finally:
            held[uuid] = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
