"""Applying a memory plan (:mod:`packshot.memory`) to a loaded diffusers pipeline, whatever its model:
FLUX Fill, LTX-Video, Wan. The denoiser is the ``transformer`` (or ``unet``) component, the text encoders
are the ``text_encoder*`` components, everything else (VAE, image encoder) goes on the card.
"""

from __future__ import annotations

import logging
from typing import Any

from packshot.errors import ConfigError
from packshot.memory import PLAN_ORDER, SUMMARIES

log = logging.getLogger(__name__)




def pipeline_parts(pipe: Any) -> tuple[str | None, list[str], list[str]]:
    """(denoiser component, text encoder components, other modules) of a diffusers pipeline."""
    import torch

    modules = {n: m for n, m in pipe.components.items() if isinstance(m, torch.nn.Module)}
    denoiser = next((n for n in ("transformer", "unet") if n in modules), None)
    text = [n for n in modules if n.startswith("text_encoder")]
    rest = [n for n in modules if n != denoiser and n not in text]
    return denoiser, text, rest


def apply_memory_plan(pipe: Any, plan: str, device: str) -> list[str]:
    """Place ``pipe`` (loaded in host memory) on ``device`` the way ``plan`` says; returns notes.

    On a CPU device every plan leaves the weights where they are except ``fp8`` (FP8 storage) and the
    offload plans' hooks, so tests run the same code paths without a GPU.
    """
    import torch

    if plan not in PLAN_ORDER:
        raise ConfigError(f"memory plan {plan!r} is not one of {', '.join(PLAN_ORDER)}")
    denoiser_name, text_names, rest_names = pipeline_parts(pipe)
    target = torch.device(device)
    cuda = target.type == "cuda"
    notes = [f"memory plan {plan}: {SUMMARIES[plan]}"]
    if plan == "full" or denoiser_name is None:
        pipe.to(device)
        return notes
    for name in rest_names:
        getattr(pipe, name).to(target)
    for name in text_names:  # layer by layer, the next layer prefetched on a side stream
        _group_offload(getattr(pipe, name), target, "leaf_level", cuda)
    denoiser = getattr(pipe, denoiser_name)
    if plan == "text-offload":
        denoiser.to(target)
    elif plan == "fp8":
        notes.append(_to_fp8(denoiser, target))
    else:
        _group_offload(denoiser, target, "block_level", cuda)
    return notes


def _group_offload(module: Any, target: Any, offload_type: str, cuda: bool) -> None:
    import torch
    from diffusers.hooks import apply_group_offloading

    kwargs = {"num_blocks_per_group": 1} if offload_type == "block_level" else {}
    apply_group_offloading(module, onload_device=target, offload_device=torch.device("cpu"),
                           offload_type=offload_type, use_stream=cuda, **kwargs)


def _to_fp8(module: Any, target: Any) -> str:
    """FP8 linear weights: torchao dynamic FP8 on cc >= 8.9, else FP8 storage with bf16/fp32 compute."""
    import torch

    if target.type == "cuda" and torch.cuda.get_device_capability(target) >= (8, 9):
        try:
            from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_
        except ImportError:
            log.warning("torchao is not installed: FP8 storage with bf16 compute instead of dynamic FP8")
        else:
            # device=: each linear moves to the card just before it is quantised (no bf16 copy on the card)
            quantize_(module, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
                      filter_fn=lambda m, _name: isinstance(m, torch.nn.Linear), device=target)
            module.to(target)
            return "fp8: torchao dynamic FP8 (activations and weights) on the linear layers"
    compute = torch.bfloat16 if target.type == "cuda" else torch.float32
    module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute)
    module.to(target)
    return f"fp8: weights stored in float8_e4m3fn, computed in {str(compute).removeprefix('torch.')}"
