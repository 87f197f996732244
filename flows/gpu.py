"""The optional cluster-wide GPU guard: a Prefect global concurrency limit per GPU slot.

The file lock in :mod:`packshot.gpu` already keeps one stage per GPU on a host. With
``PACKSHOT_ORCHESTRATION__GPU_CONCURRENCY_LIMIT=gpu`` every model call also takes one slot of the
global limit ``gpu-<host>-cuda<N>`` (create it with ``prefect gcl create gpu-<host>-cuda0 --limit 1``),
so the Prefect UI shows who holds which GPU. Limits that do not exist are skipped by Prefect.
"""

from __future__ import annotations

import socket

from orchestrator.settings import Settings
from packshot import gpu


def use_prefect_gpu_limit(settings: Settings) -> None:
    prefix = settings.orchestration.gpu_concurrency_limit
    if not prefix:
        gpu.set_extra_guard(None)
        return
    from prefect.concurrency.sync import concurrency

    host = socket.gethostname()
    gpu.set_extra_guard(lambda slot: concurrency(f"{prefix}-{host}-{slot}", occupy=1))
