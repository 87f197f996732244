"""Memory plans: how a diffusers pipeline is placed on one card, chosen from the card's free memory.

Plans, heaviest first (``PLAN_ORDER``); an out-of-memory error retries once with the next one:

``full``
    every part in bf16 on the card (fastest).
``text-offload``
    the denoiser (FLUX / LTX / Wan transformer) on the card; the text encoders (T5, CLIP, umT5) stay in
    host memory and are streamed to the card layer by layer with CUDA streams when a prompt is encoded.
``fp8``
    as ``text-offload``, with the denoiser's linear layers stored in FP8, quantised as they are read:
    torchao's dynamic FP8 on cards with compute capability 8.9 or more (RTX 4090, L40S, H100), torchao FP8
    weights with bf16 compute on older cards, FP8 storage with bf16 compute (diffusers' layerwise casting)
    without torchao. This is the 24 GB plan for FLUX Fill + SAM.
``group-offload``
    the bf16 denoiser stays in host memory and its blocks are streamed to the card one group at a time
    (diffusers group offloading with CUDA streams; about 3.5x slower per pass, diffusers benchmarks).

Sizes (bf16 bytes, counted on the meta device: ``docs/sources.md``) and the working
memory allowances below are arithmetic, not measurements; ``docs/benchmarks.md`` shows the sums.
Nothing here loads a model: :func:`plan_phase` is what ``packshot plan`` prints and what the loaders use;
:mod:`packshot.placement` applies a plan to a loaded pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from packshot.errors import ConfigError

GIB = 1024**3
PLAN_ORDER = ("full", "text-offload", "fp8", "group-offload")
PlanName = Literal["full", "text-offload", "fp8", "group-offload"]
PLAN_SETTING = {"image": "PACKSHOT_GENERATIVE__MEMORY_PLAN", "video": "PACKSHOT_VIDEO__MEMORY_PLAN"}
CONTEXT_BYTES = int(1.0 * GIB)  # CUDA context, cuBLAS workspace and allocator slack: an allowance
CARD_RESERVE_BYTES = int(0.5 * GIB)  # what a card of N GiB does not offer as free memory: an allowance
SUMMARIES = {
    "full": "all parts bf16 on the card",
    "text-offload": "denoiser bf16 on the card, text encoders streamed from host memory",
    "fp8": "denoiser FP8 on the card, text encoders streamed from host memory",
    "group-offload": "denoiser and text encoders streamed from host memory block by block",
}


@dataclass(frozen=True)
class Footprint:
    """One model's parts in bytes (bf16 unless noted) and the working memory of one call.

    ``denoiser_params``: parameters of the part FP8 applies to; ``blocks`` / ``text_layers``: how many
    groups group offloading streams (two are on the card at once: the one running and the one prefetched).
    ``plannable``: False for models always loaded whole (SAM).
    """

    name: str
    denoiser: int
    text: int = 0
    rest: int = 0
    work: int = 0
    denoiser_params: float = 0.0
    blocks: int = 1
    text_layers: int = 1
    plannable: bool = True

    def card_bytes(self, plan: str) -> int:
        """Weights resident on the card under ``plan`` (working memory excluded)."""
        if not self.plannable or plan == "full":
            return self.denoiser + self.text + self.rest
        text = 2 * self.text // max(self.text_layers, 1)
        if plan == "text-offload":
            denoiser = self.denoiser
        elif plan == "fp8":  # 1 byte per linear weight; norms, embeddings and scales stay bf16 (~2%)
            denoiser = int(self.denoiser_params * 1.02)
        else:
            denoiser = 2 * self.denoiser // max(self.blocks, 1)
        return denoiser + text + self.rest

    def room_bytes(self, plan: str) -> int:
        """What loading this model under ``plan`` must find free on the card: weights, one call's
        working memory and the context (the registry frees other models until it fits)."""
        return self.card_bytes(plan) + self.work + CONTEXT_BYTES

    def host_bytes(self, plan: str) -> int:
        """Host memory the plan keeps (offloaded parts); see :meth:`load_host_bytes` for loading."""
        if not self.plannable or plan == "full":
            return 0
        return self.text + (self.denoiser if plan == "group-offload" else 0)

    def load_host_bytes(self, plan: str, quantise_at_load: bool = True) -> int:
        """Host memory at the peak of loading under ``plan`` (:func:`packshot.placement.load_denoiser`).

        The denoiser is read first and on its own: straight onto the card (``full``, ``text-offload``, and
        ``fp8`` with torchao, quantised weight by weight), or into host memory where the plan keeps it
        (``group-offload``) or, ``fp8`` without torchao (``quantise_at_load`` False), where it is cast to FP8
        before it moves. The other parts then pass through host memory. Models not planned (SAM) are read
        whole."""
        others = self.text + self.rest
        if not self.plannable or plan == "group-offload":
            return self.denoiser + others
        if plan == "fp8" and not quantise_at_load:
            return max(self.denoiser, others)
        return others


def _gib(x: float) -> int:
    return int(x * GIB)


# bf16 sizes from performance.md; work: activations of one call at the default size (allowances).
FOOTPRINTS: dict[str, Footprint] = {
    # FLUX.1 Fill 1024x1024: 4608 tokens x 3072 hidden; VAE decode at 1024 px dominates (about 3 GiB).
    "flux-fill": Footprint("FLUX.1 Fill", _gib(22.17), _gib(8.87), _gib(0.39), _gib(3.0), 11.90e9, 57, 24),
    # FLUX.2 [klein] 4B, counted on the meta device from its published shapes (5 double + 20 single blocks,
    # 24 heads x 128, 128 latent channels; Qwen3-4B text encoder, 36 layers): 3.88 B + 4.41 B parameters.
    # 1024 px: 4096 image tokens x 3072 hidden, a 2 GiB allowance with the VAE decode.
    "flux2-klein": Footprint("FLUX.2 [klein] 4B", _gib(7.22), _gib(8.22), _gib(0.16), _gib(2.0), 3.88e9,
                             25, 36),
    # SAM ViT-H in bf16 (0.64 B params); its 4 global-attention layers hold 16 x 4096 x 4096 scores: ~1.5 GiB
    # per image embedded at once (``work`` is per image; multiplied by the SAM batch size).
    "sam-vit_h": Footprint("SAM ViT-H", _gib(1.19), work=_gib(1.5), plannable=False),
    "sam-vit_l": Footprint("SAM ViT-L", _gib(0.58), work=_gib(1.0), plannable=False),
    "sam-vit_b": Footprint("SAM ViT-B", _gib(0.17), work=_gib(0.5), plannable=False),
    # LTX-Video 2B at 768 px, 121 frames, VAE tiling: an 8 GiB allowance for the decode.
    "ltx-video": Footprint("LTX-Video 2B", _gib(3.6), _gib(8.9), _gib(0.8), _gib(8.0), 1.9e9, 28, 24),
    # Wan2.1 I2V 14B at 480p, 81 frames: 32760 tokens x 5120 hidden; CLIP image encoder + VAE 1.44 GiB.
    "wan-i2v-14b": Footprint("Wan2.1 I2V 14B", _gib(30.5), _gib(10.6), _gib(1.44), _gib(8.0), 14.0e9, 40, 24),
    "tiny": Footprint("tiny test model", 1 << 20, 1 << 20, 1 << 20, 1 << 20, 5e5, 2, 1),
}


def video_footprint(model: str, pipeline: str) -> Footprint:
    """The footprint of a local video model, by its name or pipeline class (LTX when unknown)."""
    text = f"{model} {pipeline}".lower()
    if model == "tiny":
        return FOOTPRINTS["tiny"]
    return FOOTPRINTS["wan-i2v-14b"] if "wan" in text else FOOTPRINTS["ltx-video"]


@dataclass
class ModelPlan:
    footprint: Footprint
    plan: str
    card_bytes: int
    host_bytes: int


@dataclass
class PhasePlan:
    """The models resident together in one phase (image: SAM + FLUX; video: the video model)."""

    phase: str
    free_bytes: int
    models: list[ModelPlan] = field(default_factory=list)
    peak_bytes: int = 0
    fits: bool = True
    why: str = ""
    load_host_bytes: int = 0  # host memory at the peak of loading (orchestrator.plans.load_host_bytes)

    @property
    def plan(self) -> str:
        """The plan of the phase's plannable model (``full`` when it has none)."""
        return next((m.plan for m in self.models if m.footprint.plannable), "full")


def phase_peak(models: list[Footprint], plan: str, work_scale: dict[str, int] | None = None) -> int:
    """Expected peak bytes on the card: resident weights + the largest call's working memory + context.

    Models of a phase take turns on the card (one GPU lock), so only one call's working memory counts.
    """
    scale = work_scale or {}
    weights = sum(m.card_bytes(plan) for m in models)
    work = max((m.work * scale.get(m.name, 1) for m in models), default=0)
    return weights + work + CONTEXT_BYTES


def plan_phase(phase: str, models: list[Footprint], free_bytes: int, setting: str = "auto",
               work_scale: dict[str, int] | None = None) -> PhasePlan:
    """The heaviest plan whose expected peak fits in ``free_bytes`` (``auto``), or the one ``setting`` names.

    ``work_scale``: footprint name -> multiplier of its working memory (the SAM batch size).
    """
    if setting != "auto" and setting not in PLAN_ORDER:
        raise ConfigError(f"{PLAN_SETTING.get(phase, 'memory plan')}={setting!r}: use auto, "
                          f"{', '.join(PLAN_ORDER)}")
    candidates = PLAN_ORDER if setting == "auto" else (setting,)
    result = PhasePlan(phase, free_bytes)
    for plan in candidates:
        peak = phase_peak(models, plan, work_scale)
        if peak <= free_bytes or plan == candidates[-1]:
            result.models = [ModelPlan(m, plan if m.plannable else "full", m.card_bytes(plan),
                                       m.host_bytes(plan)) for m in models]
            result.peak_bytes, result.fits = peak, peak <= free_bytes
            break
    names = " + ".join(m.name for m in models)
    if not result.fits:
        lightest = "the lightest plan" if setting == "auto" else f"plan {setting}"
        result.why = (f"{names} cannot fit: {lightest} ({result.plan}) needs {gib(result.peak_bytes)} and "
                      f"the card has {gib(free_bytes)} free")
    elif setting != "auto":
        result.why = f"{PLAN_SETTING.get(phase, 'memory plan')}={setting}"
    else:
        heavier = PLAN_ORDER[: PLAN_ORDER.index(result.plan)]
        skipped = [f"{p} needs {gib(phase_peak(models, p, work_scale))}" for p in heavier]
        result.why = f"{result.plan} is the fastest plan that fits {gib(free_bytes)} free" + (
            f" ({'; '.join(skipped)})" if skipped else "")
    return result


def lighter_plan(plan: str) -> str | None:
    """The next plan after ``plan`` in ``PLAN_ORDER``, or None after the lightest."""
    index = PLAN_ORDER.index(plan)
    return PLAN_ORDER[index + 1] if index + 1 < len(PLAN_ORDER) else None


def gib(nbytes: float) -> str:
    return f"{nbytes / GIB:.1f} GiB"


def card_free_bytes(device: str) -> int | None:
    """Free bytes on a CUDA ``device`` (``torch.cuda.mem_get_info``), None for other devices."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def host_total_bytes() -> int | None:
    """This machine's physical memory (``sysconf``), None where it cannot be read."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def card_total_bytes(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)


def resolve_plan(phase: str, setting: str, models: list[Footprint], device: str,
                 work_scale: dict[str, int] | None = None, free_bytes: int | None = None) -> PhasePlan:
    """:func:`plan_phase` against the free memory of ``device`` now (``full`` off CUDA: nothing to plan)."""
    free = free_bytes if free_bytes is not None else card_free_bytes(device)
    if free is None:
        result = plan_phase(phase, models, 1 << 62, "full" if setting == "auto" else setting, work_scale)
        result.free_bytes, result.why = 0, f"{device} is not a CUDA device: weights stay in host memory"
        return result
    return plan_phase(phase, models, free, setting, work_scale)
