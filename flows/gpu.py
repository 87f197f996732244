"""The optional cluster-wide GPU guard: a Prefect global concurrency limit per card.

The file lock in :mod:`packshot.gpu` already keeps one holder per card. With
``PACKSHOT_ORCHESTRATION__GPU_CONCURRENCY_LIMIT=gpu`` every model call also takes one slot of the
global limit ``gpu-<card uuid>`` (create it with ``prefect gcl create gpu-GPU-5f1c... --limit 1``; the
UUIDs are in ``nvidia-smi -L``), so the Prefect UI shows who holds which card. Limits that do not exist
are skipped by Prefect.
"""

from __future__ import annotations

from orchestrator.settings import Settings
from packshot import gpu


def use_prefect_gpu_limit(settings: Settings) -> None:
    prefix = settings.orchestration.gpu_concurrency_limit
    if not prefix:
        gpu.set_extra_guard(None)
        return
    from prefect.concurrency.sync import concurrency

    gpu.set_extra_guard(lambda card_uuid: concurrency(f"{prefix}-{card_uuid}", occupy=1))
