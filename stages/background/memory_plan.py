"""Memory plans for FLUX Fill on one card: a PLACEHOLDER default for the benchmark.

Issue 13 (the resident GPU process) owns the real plans, their automatic choice and
``packshot plan``; it is expected to replace the body of :func:`apply_memory_plan` and keep its
signature, so ``bench/flux_throughput.py`` measures whatever the project ships. Nothing here has
been measured on a GPU yet.

- ``80gb``: everything in bf16 on the card (about 31 GiB of weights).
- ``24gb``: on a card with FP8 (compute capability 8.9+), the transformer's linear layers in FP8
  (about 11 GiB instead of 22.2), the text encoders on the CPU (prompt embeddings cached, so T5 runs
  once per distinct prompt), VAE and CLIP-sized parts on the card; on an older card, group offload
  of the bf16 transformer block by block with CUDA streams (about 3.5x slower per step, diffusers).
- ``24gb-offload``: the group-offload variant on any card.
"""

from __future__ import annotations

from typing import Any

from packshot.config import FluxSpeedSettings
from packshot.errors import ConfigError

PLANS = ("80gb", "24gb", "24gb-offload")


def apply_memory_plan(pipe: Any, plan: str, device: str = "cuda") -> tuple[FluxSpeedSettings, list[str]]:
    """Move ``pipe``'s parts for ``plan`` and return (speed settings the generator must use, notes).

    The pipe is expected on ``device`` in bf16 (as built by the benchmark or ``from_pretrained``).
    """
    import torch

    if plan not in PLANS:
        raise ConfigError(f"memory plan {plan!r} is not one of {', '.join(PLANS)}")
    if plan == "80gb":
        return FluxSpeedSettings(), ["memory plan 80gb: bf16, all on the card"]
    capability = torch.cuda.get_device_capability(torch.device(device))
    if plan == "24gb" and capability >= (8, 9):
        speed = FluxSpeedSettings(fp8="dynamic", text_encoder_device="cpu")
        return speed, ["memory plan 24gb: FP8 transformer on the card, text encoders on the CPU "
                       "(placeholder)"]
    pipe.transformer.to("cpu")
    pipe.transformer.enable_group_offload(
        onload_device=torch.device(device), offload_device=torch.device("cpu"),
        offload_type="block_level", num_blocks_per_group=1, use_stream=True,
    )
    torch.cuda.empty_cache()
    return (FluxSpeedSettings(text_encoder_device="cpu"),
            [f"memory plan {plan}: bf16 transformer group-offloaded per block with streams, "
             "text encoders on the CPU (placeholder)"])
