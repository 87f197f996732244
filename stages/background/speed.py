"""Speed options of the FLUX Fill pipeline (``GenerativeSettings.speed``), applied once per loaded pipe.

Order matters and is fixed here: text encoders placed, FP8 quantisation of the transformer's
linear layers (before any LoRA wraps them), attention backend, the LoRA hot-swap slot (before the
first LoRA, see :mod:`stages.background.lora`), then regional compilation of the repeated blocks,
so that later brand switches copy weights in place and never recompile. Compilations are
counted with dynamo's process-wide counters: ``SpeedState.recompiles`` is the number of graphs
compiled after the first generation (0 when hot-swapping works as intended).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Any

from packshot.config import FluxSpeedSettings
from packshot.errors import ConfigError

log = logging.getLogger(__name__)

SETTING = "PACKSHOT_GENERATIVE__SPEED__"
HOTSWAP_SLOT = "packshot_brand"  # the one adapter name brand LoRAs are swapped into


@dataclass
class SpeedState:
    """What was applied to one pipe, for the run report (``notes``) and the benchmark."""

    signature: str
    attention_backend: str = "native"
    compiled: bool = False
    hotswap: bool = False
    fp8: str = "off"
    text_encoder_device: str = "same"
    notes: list[str] = field(default_factory=list)
    graphs_at_setup: int = 0
    graphs_when_warm: int | None = None

    @property
    def graphs_compiled(self) -> int:
        """Graphs dynamo compiled since this pipe was prepared (process-wide counter)."""
        return max(0, compiled_graphs() - self.graphs_at_setup)

    @property
    def recompiles(self) -> int:
        """Graphs compiled after the first generation: each one is a stall a brand switch caused."""
        # max: ``torch._dynamo.reset()`` clears the process-wide counter
        return 0 if self.graphs_when_warm is None else max(0, compiled_graphs() - self.graphs_when_warm)

    def mark_warm(self) -> None:
        if self.graphs_when_warm is None:
            self.graphs_when_warm = compiled_graphs()


def compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def speed_signature(speed: FluxSpeedSettings) -> str:
    """Part of the registry key: pipes prepared differently are different models."""
    parts = []
    if speed.fp8 != "off":
        parts.append(f"fp8-{speed.fp8}")
    if speed.attention_backend != "native":
        parts.append(f"attn-{speed.attention_backend}")
    if speed.lora_hotswap:
        parts.append(f"hotswap-r{speed.lora_max_rank}")
    if speed.compile:
        parts.append(f"compile-{speed.compile_backend}")
    if speed.text_encoder_device != "same":
        parts.append(f"text-{speed.text_encoder_device}")
    return "+".join(parts) or "plain"


def compile_safe(speed: FluxSpeedSettings) -> tuple[FluxSpeedSettings, list[str]]:
    """``speed`` with compile implying the LoRA hot-swap slot: without it every brand switch changes the
    compiled modules and recompiles (6 recompiles in 4 switches measured). The slot starts at zero,
    so the output without a brand LoRA is the base model's."""
    if speed.compile and not speed.lora_hotswap:
        note = (f"background: {SETTING}COMPILE turns {SETTING}LORA_HOTSWAP on (rank {speed.lora_max_rank}): "
                "without the slot every brand switch would recompile")
        return speed.model_copy(update={"lora_hotswap": True}), [note]
    return speed, []


def prepare_pipeline(pipe: Any, speed: FluxSpeedSettings, device: str) -> SpeedState:
    """Apply ``speed`` to ``pipe`` once; a second call with the same options returns the same state.

    Raises :class:`ConfigError` naming the setting when an option cannot run here.
    """
    signature = speed_signature(speed)
    state = getattr(pipe, "_packshot_speed", None)
    if state is not None:
        if state.signature != signature:
            raise ConfigError(
                f"this FLUX pipeline was prepared with speed options {state.signature!r}, not {signature!r}; "
                "load a separate pipeline for different options"
            )
        return state
    state = SpeedState(signature=signature, text_encoder_device=speed.text_encoder_device)
    if speed.text_encoder_device == "cpu":
        place_text_encoders(pipe, "cpu")
        state.notes.append("background: text encoders kept on the CPU; prompt embeddings moved to the GPU")
    if speed.fp8 != "off":
        quantize_fp8(pipe.transformer, speed.fp8, device)
        state.fp8 = speed.fp8
        state.notes.append(f"background: transformer linear layers quantised to FP8 ({speed.fp8}, torchao)")
    state.attention_backend, reason = choose_attention_backend(speed.attention_backend, device)
    if state.attention_backend != "native" or speed.attention_backend != "native":
        pipe.transformer.set_attention_backend(state.attention_backend)
    state.notes.append(f"background: attention backend {state.attention_backend} ({reason})")
    if speed.lora_hotswap:
        add_hotswap_slot(pipe, speed.lora_max_rank)
        state.hotswap = True
        state.notes.append(
            f"background: LoRA hot-swap slot of rank {speed.lora_max_rank} on every linear layer of the "
            "transformer (brand switches copy weights in place)"
        )
    state.graphs_at_setup = compiled_graphs()
    if speed.compile:
        pipe.transformer.compile_repeated_blocks(fullgraph=True, backend=speed.compile_backend)
        state.compiled = True
        state.notes.append(f"background: transformer blocks compiled regionally ({speed.compile_backend})")
    pipe._packshot_speed = state
    return state


def choose_attention_backend(requested: str, device: str) -> tuple[str, str]:
    """(backend name for ``set_attention_backend``, why). ``auto`` prefers FlashAttention 3 on
    Hopper, then flash-attn, then cuDNN attention (compute capability 8.0+), else native SDPA."""
    from diffusers.models.attention_dispatch import (
        AttentionBackendName,
        _check_attention_backend_requirements,
    )

    if requested != "auto":
        try:
            backend = AttentionBackendName(requested)
        except ValueError:
            names = ", ".join(b.value for b in AttentionBackendName if not b.value.endswith("_hub"))
            raise ConfigError(
                f"{SETTING}ATTENTION_BACKEND={requested!r} is not a diffusers attention backend; use auto "
                f"or one of {names}"
            ) from None
        if backend.value.endswith("_hub"):
            raise ConfigError(
                f"{SETTING}ATTENTION_BACKEND={requested}: hub kernels are downloaded at run time; install "
                "the kernel package instead and choose its local backend"
            )
        try:
            _check_attention_backend_requirements(backend)
        except RuntimeError as exc:
            raise ConfigError(f"{SETTING}ATTENTION_BACKEND={requested} cannot run here: {exc}") from None
        return backend.value, "default PyTorch SDPA" if backend.value == "native" else "set"
    if not str(device).startswith("cuda"):
        return "native", f"auto on {device}"
    import torch

    major, minor = torch.cuda.get_device_capability(torch.device(device))
    card = f"{torch.cuda.get_device_name(torch.device(device))}, compute capability {major}.{minor}"
    if major == 9 and importlib.util.find_spec("flash_attn_interface") is not None:
        return "_flash_3", f"auto: FlashAttention 3 on {card}"
    if major >= 8 and importlib.util.find_spec("flash_attn") is not None:
        return "flash", f"auto: flash-attn on {card}"
    if major >= 8 and torch.backends.cudnn.is_available():
        return "_native_cudnn", f"auto: cuDNN attention on {card}"
    return "native", f"auto: PyTorch SDPA on {card}"


def quantize_fp8(transformer: Any, mode: str, device: str) -> None:
    """Quantise every ``nn.Linear`` of ``transformer`` in place with torchao.

    ``dynamic``: FP8 weights and per-row dynamically scaled FP8 activations (CUDA compute
    capability 8.9+, e.g. L4, 4090, H100); ``weight_only``: FP8 weights, bf16 compute (runs anywhere,
    saves memory, not time).
    """
    import torch

    if importlib.util.find_spec("torchao") is None:
        raise ConfigError(
            f"{SETTING}FP8={mode} needs the torchao package (pip install 'packshot[gpu]' or torchao); "
            f"or set {SETTING}FP8=off"
        )
    if mode == "dynamic":
        cuda = str(device).startswith("cuda")
        capability = torch.cuda.get_device_capability(torch.device(device)) if cuda else None
        if capability is None or capability < (8, 9):
            where = f"compute capability {capability[0]}.{capability[1]}" if capability else device
            raise ConfigError(
                f"{SETTING}FP8=dynamic needs a CUDA GPU with compute capability 8.9+ (this is {where}); "
                f"use {SETTING}FP8=weight_only to save memory only, or off"
            )
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        PerRow,
        quantize_,
    )

    config = (Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()) if mode == "dynamic"
              else Float8WeightOnlyConfig())
    quantize_(transformer, config, filter_fn=lambda module, _name: isinstance(module, torch.nn.Linear))


def add_hotswap_slot(pipe: Any, max_rank: int) -> None:
    """``enable_lora_hotswap`` then load a zero LoRA of rank ``max_rank`` into ``HOTSWAP_SLOT`` on every
    linear layer of the transformer (a superset of what brand LoRAs adapt): the output is unchanged
    and the compiled graph already holds the LoRA layers that every brand's weights are later copied
    into."""
    import torch

    pipe.enable_lora_hotswap(target_rank=max_rank)
    state_dict = {}
    for name, module in pipe.transformer.named_modules():
        if isinstance(module, torch.nn.Linear):
            dtype, dev = _param_dtype_device(module)
            state_dict[f"transformer.{name}.lora_A.weight"] = torch.zeros(max_rank, module.in_features,
                                                                          dtype=dtype, device=dev)
            state_dict[f"transformer.{name}.lora_B.weight"] = torch.zeros(module.out_features, max_rank,
                                                                          dtype=dtype, device=dev)
    pipe.load_lora_weights(state_dict, adapter_name=HOTSWAP_SLOT)
    lora_layers_in_compute_dtype(pipe.transformer)
    pipe._packshot_slot_holds = None


FLOAT8 = ("float8_e4m3fn", "float8_e5m2")


def lora_layers_in_compute_dtype(transformer: Any) -> None:
    """LoRA layers that peft gave the FP8 storage dtype of their base layer (diffusers' layerwise casting, the
    ``fp8`` plan without torchao), moved to the dtype the transformer computes in: no matmul takes float8
    weights, so every brand LoRA failed there. Others are left as they are."""
    import torch

    float8 = {getattr(torch, name) for name in FLOAT8 if hasattr(torch, name)}
    compute = next((p.dtype for p in transformer.parameters()
                    if p.dtype not in float8 and p.dtype.is_floating_point), None)
    if compute is None:
        return
    for module in transformer.modules():
        for attr in ("lora_A", "lora_B"):
            layers = getattr(module, attr, None)
            if isinstance(layers, torch.nn.ModuleDict):
                for layer in layers.values():
                    if any(p.dtype in float8 for p in layer.parameters()):
                        layer.to(compute)


def slot_modules(pipe: Any) -> set[str]:
    """Names of the transformer modules the hot-swap slot covers."""
    return {name for name, module in pipe.transformer.named_modules()
            if HOTSWAP_SLOT in getattr(module, "lora_A", {})}


def clear_hotswap_slot(pipe: Any) -> None:
    """Zero the slot's B matrices in place: the base model's output, no recompile."""
    for module in pipe.transformer.modules():
        lora_b = getattr(module, "lora_B", None)
        if lora_b is not None and HOTSWAP_SLOT in lora_b:
            lora_b[HOTSWAP_SLOT].weight.data.zero_()
    pipe._packshot_slot_holds = None


def place_text_encoders(pipe: Any, device: str) -> None:
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            encoder.to(device)


def _param_dtype_device(module: Any):
    import torch

    weight = module.weight  # a torchao FP8 tensor reports its original dtype
    dtype = weight.dtype if weight.dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.bfloat16
    return dtype, weight.device
