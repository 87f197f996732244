"""Applying a memory plan (:mod:`packshot.memory`) to a diffusers pipeline, whatever its model: FLUX Fill,
FLUX.2 [klein], LTX-Video, Wan. The denoiser is the ``transformer`` (or ``unet``) component, the text
encoders are the ``text_encoder*`` components, everything else (VAE, image encoder) goes on the card.

:func:`load_denoiser` loads the denoiser straight into the plan's placement and precision (``fp8``: each
linear weight quantised by torchao as it is read, on the card), so host memory never holds the whole
model; :func:`apply_memory_plan` places the rest of a loaded pipeline (and a denoiser that was
not placed at load).
"""

from __future__ import annotations

import logging
from typing import Any

from packshot.errors import ConfigError
from packshot.extras import installed
from packshot.memory import PLAN_ORDER, SUMMARIES

log = logging.getLogger(__name__)

FP8_KERNEL_CAPABILITY = (8, 9)  # torchao's dynamic FP8 matmuls (L4, RTX 4090, H100 and later)


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

    A denoiser that :func:`load_denoiser` already placed for ``plan`` is left as it is. On a CPU device
    every plan leaves the weights where they are except ``fp8`` (FP8 weights) and the offload plans'
    hooks, so tests run the same code paths without a GPU.
    """
    import torch

    _check_plan(plan)
    denoiser_name, text_names, rest_names = pipeline_parts(pipe)
    target = torch.device(device)
    notes = [f"memory plan {plan}: {SUMMARIES[plan]}"]
    if plan == "full" or denoiser_name is None:
        pipe.to(device)
        return notes
    for name in rest_names:
        getattr(pipe, name).to(target)
    for name in text_names:  # layer by layer, the next layer prefetched on a side stream
        _group_offload(getattr(pipe, name), target, "leaf_level", target.type == "cuda")
    denoiser = getattr(pipe, denoiser_name)
    placed = getattr(denoiser, "_packshot_placed", None)
    if placed == (plan, str(target)):
        notes.append(getattr(denoiser, "_packshot_placed_note", "denoiser placed at load"))
    else:
        notes.append(place_denoiser(denoiser, plan, device))
    return notes


def place_denoiser(module: Any, plan: str, device: str) -> str:
    """Put a loaded denoiser where ``plan`` keeps it (``fp8``: quantised on the way); returns a note."""
    import torch

    _check_plan(plan)
    target = torch.device(device)
    if plan in ("full", "text-offload"):
        module.to(target)
        note = f"{plan}: denoiser on {target}"
    elif plan == "fp8":
        note = _to_fp8(module, target)
    else:
        _group_offload(module, target, "block_level", target.type == "cuda")
        note = "group-offload: denoiser blocks streamed from host memory"
    return _mark_placed(module, plan, target, note)


def load_denoiser(model_class: Any, source: str, *, plan: str, device: str, dtype: Any,
                  **kwargs) -> tuple[Any, str]:
    """``model_class.from_pretrained(source, **kwargs)`` straight into ``plan``'s placement and precision.

    ``full`` / ``text-offload``: each weight is read onto ``device`` (``device_map``), never the whole model
    in host memory. ``fp8`` with torchao installed: diffusers' ``TorchAoConfig`` quantises each linear
    weight as it is read, on ``device`` (dynamic FP8 on compute capability 8.9+, FP8 weights with bf16/fp32
    compute elsewhere); without torchao the model is read into host memory, stored in FP8 there
    (layerwise casting) and moved, before any other component loads. ``group-offload``: host memory, where
    the plan keeps it. Returns the model and a note saying what was done.
    """
    import torch

    _check_plan(plan)
    target = torch.device(device)
    config = fp8_load_config(target) if plan == "fp8" else None
    if plan in ("full", "text-offload") or config is not None:
        kwargs["device_map"] = {"": target}
    if config is not None:
        from diffusers import TorchAoConfig

        kwargs["quantization_config"] = TorchAoConfig(config)
    module = model_class.from_pretrained(source, dtype=dtype, low_cpu_mem_usage=True, **kwargs)
    if config is None:
        return module, place_denoiser(module, plan, device)
    kind = type(config).__name__.removesuffix("Config")
    return module, _mark_placed(module, plan, target, f"fp8: linear layers quantised while loading, on "
                                                      f"{target} (torchao {kind})")


def _mark_placed(module: Any, plan: str, target: Any, note: str) -> str:
    """Remember on ``module`` that it sits where ``plan`` keeps it on ``target`` (so
    :func:`apply_memory_plan` leaves it there); returns ``note``."""
    module._packshot_placed = (plan, str(target))
    module._packshot_placed_note = note
    return note


def load_pipeline_for_plan(pipeline_class: Any, source: str, *, plan: str, device: str, dtype: Any,
                           **options) -> tuple[Any, list[str]]:
    """``pipeline_class.from_pretrained(source, **options)`` placed by ``plan``; returns (pipe, notes).

    The denoiser (class read from ``model_index.json``) is loaded first, on its own, by
    :func:`load_denoiser`, and handed to the pipeline; the other parts are read into host memory and
    placed by :func:`apply_memory_plan`. Host memory holds about the text encoders' size, never the whole
    model (before, every part was read, 31.6 GiB for FLUX.1 Fill, and only then placed; the measurement
    and what it means for memory-mapped weights are in docs/benchmarks.md)."""
    import importlib

    # Not a pipeline-level PipelineQuantizationConfig: the pipeline reads each component into host memory
    # before anything is placed, and its device_map moves all of them; the denoiser alone can be read
    # straight to the card (device_map) and quantised there weight by weight (TorchAoConfig).
    index = pipeline_class.load_config(source, **options)
    name = next((n for n in ("transformer", "unet") if isinstance(index.get(n), list | tuple)), None)
    parts, notes = {}, []
    if name is not None:
        library, class_name = index[name]
        model_class = getattr(importlib.import_module(library), class_name)
        parts[name], note = load_denoiser(model_class, source, plan=plan, device=device, dtype=dtype,
                                          subfolder=name, **options)
        notes.append(note)
    pipe = pipeline_class.from_pretrained(source, dtype=dtype, **options, **parts)
    return pipe, [*apply_memory_plan(pipe, plan, device), *notes]


def fp8_load_config(target: Any):
    """The torchao config the ``fp8`` plan loads with on ``target``, or None without torchao."""
    if not installed("torchao"):
        return None
    import torch
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, Float8WeightOnlyConfig, PerRow

    if target.type == "cuda" and torch.cuda.get_device_capability(target) >= FP8_KERNEL_CAPABILITY:
        return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    # FP8 weights, per-row scales, matmuls in the weights' original dtype: any card, and the CPU (tests).
    # No inductor flags set process-wide where no FP8 kernel is compiled.
    return Float8WeightOnlyConfig(set_inductor_config=target.type == "cuda")


def _check_plan(plan: str) -> None:
    if plan not in PLAN_ORDER:
        raise ConfigError(f"memory plan {plan!r} is not one of {', '.join(PLAN_ORDER)}")


def _group_offload(module: Any, target: Any, offload_type: str, cuda: bool) -> None:
    import torch
    from diffusers.hooks import apply_group_offloading

    kwargs = {"num_blocks_per_group": 1} if offload_type == "block_level" else {}
    # low_cpu_mem_usage: pin each group when it is streamed instead of a pinned copy of the whole module
    # up front (that copy doubled the host memory of the offloaded weights, issue 23).
    apply_group_offloading(module, onload_device=target, offload_device=torch.device("cpu"),
                           offload_type=offload_type, use_stream=cuda, low_cpu_mem_usage=True, **kwargs)


def _to_fp8(module: Any, target: Any) -> str:
    """FP8 linear weights of a loaded module, as :func:`fp8_load_config` chooses; FP8 storage with bf16/fp32
    compute (diffusers' layerwise casting) where torchao is not installed."""
    import torch

    config = fp8_load_config(target)
    if config is not None:
        from torchao.quantization import quantize_

        # device=: each linear moves to the card just before it is quantised (no bf16 copy on the card)
        quantize_(module, config, filter_fn=lambda m, _name: isinstance(m, torch.nn.Linear), device=target)
        module.to(target)
        return f"fp8: torchao {type(config).__name__.removesuffix('Config')} on the linear layers"
    if target.type == "cuda":
        log.warning("torchao is not installed: FP8 storage with bf16 compute instead of torchao FP8")
    compute = torch.bfloat16 if target.type == "cuda" else torch.float32
    module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute)
    module.to(target)
    return f"fp8: weights stored in float8_e4m3fn, computed in {str(compute).removeprefix('torch.')}"
