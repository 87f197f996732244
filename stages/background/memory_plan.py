"""Memory plans for FLUX Fill on one card, as the GPU benchmark applies them (``bench/flux_gpu.py``).

The plans themselves, their automatic choice and ``packshot plan`` live in :mod:`packshot.memory`
(issue 13); this keeps the benchmark's entry point and its older plan names: ``80gb`` is ``full``,
``24gb`` is ``fp8`` (FP8 transformer on the card, text encoders streamed from host memory) and
``24gb-offload`` is ``group-offload``. Nothing here has been measured on a GPU.
"""

from __future__ import annotations

from typing import Any

from packshot import memory
from packshot.config import FluxSpeedSettings
from packshot.errors import ConfigError
from packshot.placement import apply_memory_plan as place

ALIASES = {"80gb": "full", "24gb": "fp8", "24gb-offload": "group-offload"}
PLANS = (*ALIASES, *memory.PLAN_ORDER)


def apply_memory_plan(pipe: Any, plan: str, device: str = "cuda") -> tuple[FluxSpeedSettings, list[str]]:
    """Place ``pipe``'s parts for ``plan`` (:func:`packshot.placement.apply_memory_plan`) and return the speed
    settings the generator must use with it (the plan already did what they would) and the notes."""
    if plan not in PLANS:
        raise ConfigError(f"memory plan {plan!r} is not one of {', '.join(PLANS)}")
    name = ALIASES.get(plan, plan)
    notes = place(pipe, name, device)
    return FluxSpeedSettings(), notes
