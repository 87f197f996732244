"""Background generator backends: ``flux`` (FLUX.1 Fill), ``tiny`` (random tiny FLUX Fill) and
``classic`` (no model). The generative ones share one loading path and one fill call."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packshot.backends import BackendSpec, BackendTable
from packshot.config import GenerativeSettings, resolve_device
from packshot.errors import ModelUnavailableError, PackshotError
from packshot.extras import installed
from packshot.placement import FP8_KERNEL_CAPABILITY
from packshot.registry import models
from stages.background.compose import generation_size
from stages.background.prompts import PromptEmbeddings

if TYPE_CHECKING:
    from packshot.schemas.brand import BrandStyle

log = logging.getLogger(__name__)

FLUX_FILL_DEFAULT = "black-forest-labs/FLUX.1-Fill-dev"
FLUX_FILL_URL = "https://huggingface.co/black-forest-labs/FLUX.1-Fill-dev"
FLUX_DEV_LICENCE = (
    "FLUX.1 [dev] Non-Commercial License (black-forest-labs/FLUX.1-Fill-dev): generated images may be "
    "used commercially, but running the model for a commercial service needs a BFL licence"
)
TINY_LICENCE = "tiny random-weight FLUX Fill built locally for tests (no licence terms; not for production)"
CLASSIC_LICENCE = "no generative model (studio backdrops drawn in code)"
MODEL_SETTING = "PACKSHOT_GENERATIVE__FLUX_MODEL"


@dataclass
class ClassicGenerator:
    """No model: studio sweeps and soft gradients from the brand palette (CPU-only installs)."""

    settings: GenerativeSettings
    notes: list[str] = field(default_factory=list)
    name: str = "classic"
    generated: bool = False
    licence: str = CLASSIC_LICENCE
    identity: str = "classic:v1"

    def use_brand(self, brand: BrandStyle | None) -> list[str]:
        if brand is not None and brand.lora is not None:
            return [f"brand LoRA for '{brand.name}' not applied: no generative model (classic backend)"]
        return []


@dataclass(frozen=True)
class FillRequest:
    """One image to generate: ``image`` ``HxWx3 uint8`` guide, ``mask`` ``HxW bool`` (True = generate)."""

    image: np.ndarray
    mask: np.ndarray
    prompt: str
    seed: int


class FluxFillGenerator:
    """A loaded ``FluxFillPipeline`` plus the settings of how this backend calls it.

    ``fill`` takes an ``HxWx3 uint8`` guide image and an ``HxW bool`` mask (True = generate) at a
    size from :meth:`generation_size` and returns the generated ``HxWx3 uint8`` image;
    ``fill_batch`` does the same for several equal-size requests, ``speed.batch_size`` per pipeline
    call, each with its own seed, so a batched image equals the same image rendered alone (up to
    floating-point rounding). The speed options (``settings.speed``) are applied to the pipe once
    (:func:`stages.background.speed.prepare_pipeline`); ``speed_state`` reports them.
    """

    generated = True
    prompt_cache_class: type = PromptEmbeddings  # FLUX.1: CLIP pooled + T5 sequence per prompt

    def __init__(
        self,
        pipe: Any,
        *,
        name: str,
        key: str,
        model_identity: str,
        licence: str,
        settings: GenerativeSettings,
        long_side: int,
        steps: int,
        max_sequence_length: int,
        notes: list[str] | None = None,
        device: str | None = None,
    ):
        from stages.background.speed import compile_safe, prepare_pipeline

        speed, speed_notes = compile_safe(settings.speed)
        settings = settings.model_copy(update={"speed": speed})
        notes = [*(notes or []), *speed_notes]
        self.pipe = pipe
        self.name = name
        self.key = key
        self.identity = model_identity  # the base model; content keys record the brand (LoRA) separately
        self.licence = licence
        self.settings = settings
        self.long_side = long_side
        self.steps = steps
        self.max_sequence_length = max_sequence_length
        self.device = device or str(pipe.transformer.device)
        self.speed_state = prepare_pipeline(pipe, settings.speed, self.device)
        self.notes = [*(notes or []), *self.speed_state.notes]
        self.prompts = _shared_prompt_cache(pipe, settings.speed.prompt_cache, self.device,
                                            self.prompt_cache_class)
        self.active_lora: tuple[str, float] | None = None
        self.pipeline_calls = 0  # counters: what the card was asked for (run reports, tests, benchmarks)
        self.images_generated = 0

    @property
    def active_identity(self) -> str:
        """The base model plus the LoRA now active (what the registry reports for the loaded pipeline)."""
        if self.active_lora is None:
            return self.identity
        name, scale = self.active_lora
        return f"{self.identity}+lora:{name}@{scale:g}"

    @property
    def attention_backend(self) -> str:
        return self.speed_state.attention_backend

    @property
    def recompiles(self) -> int:
        """Graphs compiled after the first generation (brand switches should cause none)."""
        return self.speed_state.recompiles

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        return generation_size(width, height, self.long_side)

    def use_brand(self, brand: BrandStyle | None) -> list[str]:
        """Activate the brand's LoRA (loaded once, then switched by adapter name or hot-swapped) or none."""
        from stages.background.lora import activate_lora

        self.active_lora = activate_lora(self.pipe, brand, self.settings)
        models.set_identity(self.key, self.active_identity)
        if brand is not None and brand.lora is not None and brand.lora.licence:
            return [f"LoRA licence: {brand.lora.licence}"]
        return []

    def fill(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        return self.fill_batch([FillRequest(image, mask, prompt, seed)])[0]

    def fill_batch(self, requests: list[FillRequest | tuple]) -> list[np.ndarray]:
        """Generated ``HxWx3 uint8`` images, one per request, in order. All requests must share one size.

        A compiled pipe always gets ``speed.batch_size`` images per call: a shorter (last) chunk is padded
        with copies of its last request, whose images are dropped. A padded slot costs one image's compute;
        a new batch size would cost a recompile (about a minute on an H100)."""
        requests = [r if isinstance(r, FillRequest) else FillRequest(*r) for r in requests]
        shapes = {r.mask.shape for r in requests}
        if len(shapes) > 1:
            raise ValueError(f"fill_batch needs requests of one size, got {sorted(shapes)}")
        size = self.settings.speed.batch_size
        images: list[np.ndarray] = []
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            pad = size - len(chunk) if self.speed_state.compiled else 0
            images += self._call(chunk + [chunk[-1]] * pad)[: len(chunk)]
        return images

    def free_text_encoders(self) -> None:
        """Release CLIP and T5 once every prompt is cached (see :class:`PromptEmbeddings`)."""
        self.prompts.free_encoders()

    def _call(self, requests: list[FillRequest]) -> list[np.ndarray]:
        import torch
        from PIL import Image

        h, w = requests[0].mask.shape
        prompt_embeds, pooled = self.prompts.batch([r.prompt for r in requests], self.max_sequence_length)
        result = self.pipe(
            prompt_embeds=prompt_embeds,
            pooled_prompt_embeds=pooled,
            image=[Image.fromarray(r.image, "RGB") for r in requests],  # never RGBA: Fill expects 3 channels
            mask_image=[Image.fromarray(r.mask.astype(np.uint8) * 255, "L") for r in requests],  # white=fill
            height=h,
            width=w,
            num_inference_steps=self.steps,
            guidance_scale=self.settings.guidance_scale,
            generator=[torch.Generator("cpu").manual_seed(r.seed) for r in requests],  # same noise anywhere
            max_sequence_length=self.max_sequence_length,
            output_type="np",
        )
        self.speed_state.mark_warm()
        self.pipeline_calls += 1
        self.images_generated += len(requests)  # padded slots included: the card computed them
        return [np.clip(np.round(img * 255), 0, 255).astype(np.uint8) for img in result.images]


def _shared_prompt_cache(pipe: Any, max_entries: int, device: str, factory):
    """One prompt cache per pipe, shared by every generator made on it (runs, scenes, backgrounds)."""
    cache = getattr(pipe, "_packshot_prompts", None)
    if cache is None or cache.max_entries != max_entries:
        cache = factory(pipe, max_entries, device)
        pipe._packshot_prompts = cache
    return cache


BackgroundGenerator = ClassicGenerator | FluxFillGenerator


def _classic(settings: GenerativeSettings, device: str) -> ClassicGenerator:
    return ClassicGenerator(settings)


def _tiny(settings: GenerativeSettings, device: str) -> FluxFillGenerator:
    from stages.background.tiny import ensure_tiny_fill_model

    directory = ensure_tiny_fill_model(settings.tiny_model_dir)
    return fill_generator(
        "tiny", str(directory), None, True, device, settings, TINY_LICENCE,
        long_side=settings.generate_long_side or 64, steps=min(settings.steps, 2), max_sequence_length=64,
        notes=["background: tiny random-weight FLUX Fill (test backend): images are noise, not products"],
    )


def _flux(settings: GenerativeSettings, device: str) -> FluxFillGenerator:
    if not settings.flux_model:
        raise ModelUnavailableError(
            f"PACKSHOT_GENERATIVE__BACKEND=flux needs {MODEL_SETTING}: a local directory with the "
            f"FLUX.1 Fill weights or the hub id {FLUX_FILL_DEFAULT} "
            f"(gated: accept the licence at {FLUX_FILL_URL})"
        )
    source, local = locate_model(settings.flux_model, MODEL_SETTING, FLUX_FILL_DEFAULT, FLUX_FILL_URL)
    notes = []
    if not device.startswith("cuda"):
        notes.append(f"background: FLUX Fill runs on {device}; expect minutes per image without a GPU")
    return fill_generator(
        "flux", source, settings.flux_revision, local, device, settings,
        settings.flux_licence or FLUX_DEV_LICENCE,
        long_side=settings.generate_long_side or 1024, steps=settings.steps,
        max_sequence_length=settings.max_sequence_length, notes=notes,
    )


BACKENDS: BackendTable[GenerativeSettings, BackgroundGenerator] = BackendTable(
    "background", "PACKSHOT_GENERATIVE__BACKEND"
)
# Registration order is auto's preference: stages.background.klein registers the licence-clean
# FLUX.2 [klein] before FLUX.1 Fill [dev].
GENERATIVE_MODULES = ("torch", "diffusers", "transformers")  # the "generative" extra
BACKENDS.register(BackendSpec(
    "flux", _flux, f"FLUX.1 Fill from {MODEL_SETTING}",
    unavailable=lambda s: None if s.flux_model else f"no FLUX model configured (set {MODEL_SETTING})",
    licence="flux-1-dev", extra="generative", modules=GENERATIVE_MODULES,
))
BACKENDS.register(BackendSpec("classic", _classic, "no model: studio sweeps and brand palette gradients"))
BACKENDS.register(BackendSpec("tiny", _tiny, "a random-weight tiny FLUX Fill (tests)", auto=False,
                              licence="test", extra="generative", modules=GENERATIVE_MODULES))


def get_background_generator(settings: GenerativeSettings, device: str = "cpu") -> BackgroundGenerator:
    """The backend the settings ask for (:data:`BACKENDS`); ``auto`` is ``flux`` when a model is
    configured, else ``classic`` with a note saying why. A configured model that cannot load raises
    :class:`ModelUnavailableError` naming the setting."""
    generator, notes = BACKENDS.create(settings.backend, settings, resolve_device(device))
    generator.notes[:0] = notes
    return generator


def locate_model(model: str, setting: str, hub_id: str, url: str) -> tuple[str, bool]:
    """(source, is_local) of ``setting``'s value ``model``. A path that does not exist is an error;
    anything else is a hub id. ``hub_id`` and ``url`` name the official weights in the messages."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelUnavailableError(
                f"{setting}={model} is a directory without model_index.json; it should hold a "
                f"diffusers pipeline (e.g. `hf download {hub_id} --local-dir {model}`)"
            )
        return str(path), True
    looks_like_path = model.startswith(("/", ".", "~")) or model.count("/") != 1
    if looks_like_path:
        raise ModelUnavailableError(
            f"{setting}={model}: no such directory. Download the official weights from {url} "
            f"(accept the licence, then `hf download {hub_id} --local-dir {model}`)"
        )
    return model, False


def fill_generator(name, source, revision, local, device, settings, licence, *, long_side, steps,
                   max_sequence_length, notes, footprint: str | None = None, loader=None,
                   generator_class: type[FluxFillGenerator] = FluxFillGenerator) -> FluxFillGenerator:
    """Load (once per process, through the registry) and wrap a fill pipeline: FLUX.1 Fill by default,
    or the ``loader`` / ``generator_class`` / memory ``footprint`` of another model (FLUX.2 [klein])."""
    from packshot.memory import FOOTPRINTS, resolve_plan
    from stages.background.speed import speed_signature

    loader = loader or load_fill_pipeline
    footprint = FOOTPRINTS[footprint or ("flux-fill" if name == "flux" else "tiny")]
    plan = resolve_plan("image", settings.memory_plan, [footprint], device)  # the orchestrator passes it
    settings = settings.model_copy(update={"speed": plan_speed(settings.speed, plan.plan, device)})
    kind = "flux-fill" if generator_class is FluxFillGenerator else name
    key = (f"{kind}:{source}@{revision or 'main'}:{device}:{speed_signature(settings.speed)}"
           f":{plan.plan}")
    identity = f"{name}:{source}@{revision or 'main'}"
    pipe = models.get(
        key,
        lambda: loader(source, revision=revision, device=device, local=local, plan=plan.plan),
        size_hint=footprint.room_bytes(plan.plan) if device.startswith("cuda") else 0,
        identity=identity,
    )
    notes = [*notes, f"background: memory plan {plan.plan} ({plan.why})"]
    return generator_class(
        pipe, name=name, key=key, model_identity=identity, licence=licence, settings=settings,
        long_side=long_side, steps=steps, max_sequence_length=max_sequence_length, notes=notes,
        device=device,
    )



def speed_under_plan(speed, plan: str, capability: tuple[int, int] | None = None):
    """The speed options left to apply after memory ``plan`` placed the pipe: the ``fp8`` plan has
    quantised the transformer already, and plans that stream the text encoders keep them in host memory.

    ``capability``: the card's CUDA compute capability (None off CUDA). Where it runs dynamic FP8
    kernels, the ``fp8`` plan is compiled by default: eager FP8 is no faster than bf16, and compiling
    changes the pixels by rounding only (at most 2 levels on the tiny model, tests/test_speed_options.py)."""
    from stages.background.speed import compile_safe

    fp8_kernels = capability is not None and capability >= FP8_KERNEL_CAPABILITY
    if plan == "fp8" and fp8_kernels and not speed.compile:
        speed = speed.model_copy(update={"compile": True})
    speed = compile_safe(speed)[0]
    update = {}
    if plan == "group-offload" and speed.compile:
        update["compile"] = False  # diffusers' group offload does not support a fullgraph compile
    if plan == "fp8" and speed.fp8 != "off":
        update["fp8"] = "off"
    if plan != "full" and speed.text_encoder_device != "same":
        update["text_encoder_device"] = "same"
    return speed.model_copy(update=update) if update else speed


def plan_speed(speed, plan: str, device: str):
    """:func:`speed_under_plan` for ``device``'s compute capability (:func:`_capability`). Without torchao
    the ``fp8`` plan stores FP8 and computes in bf16 whatever the card (no FP8 kernels): not compiled."""
    return speed_under_plan(speed, plan, _capability(device) if installed("torchao") else None)


def _capability(device: str) -> tuple[int, int] | None:
    """The CUDA compute capability of ``device``, None off CUDA."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(torch.device(device)))


def load_fill_pipeline(source: str, *, revision: str | None, device: str, local: bool, plan: str = "full"):
    """``FluxFillPipeline.from_pretrained`` (see :func:`load_pipeline`)."""
    from stages.background.compat import import_diffusers

    return load_pipeline(import_diffusers().FluxFillPipeline, source, revision=revision, device=device,
                         local=local, plan=plan, label="FLUX Fill", setting=MODEL_SETTING, url=FLUX_FILL_URL)


def load_pipeline(pipeline_class, source: str, *, revision: str | None, device: str, local: bool, plan: str,
                  label: str, setting: str, url: str, dtype=None):
    """``pipeline_class.from_pretrained`` in bf16 on CUDA (float32 on CPU; ``dtype`` overrides), offline for
    local files, placed on ``device`` by memory ``plan``.

    The denoiser is loaded first and on its own, straight into the plan's placement and precision
    (:func:`packshot.placement.load_denoiser`: the ``fp8`` plan quantises each linear weight as it is read),
    then handed to the pipeline, whose other parts are read into host memory and placed by
    :func:`packshot.placement.apply_memory_plan`. So loading needs about the text encoders' size of host
    memory, not the whole model's (31.6 GiB for FLUX.1 Fill).

    A hub id is first looked up in the local Hugging Face cache without network access. A model that
    cannot load is a :class:`ModelUnavailableError` naming ``setting`` and the official weights' ``url``.
    """
    import torch

    from packshot.placement import load_pipeline_for_plan

    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    attempts = [True] if local else [True, False]
    error: Exception | None = None
    for offline in attempts:
        try:
            pipe, notes = load_pipeline_for_plan(pipeline_class, source, plan=plan, device=device,
                                                 dtype=dtype, revision=revision, local_files_only=offline)
            break
        except (torch.OutOfMemoryError, PackshotError):
            raise  # the card is full (a lighter plan may fit) or a setting is wrong: not a missing model
        except Exception as exc:  # diffusers raises OSError, ValueError or hub errors for missing files
            error = exc
    else:
        raise ModelUnavailableError(
            f"cannot load {label} from {setting}={source}: {error}. Point the setting at a local "
            f"directory with the weights or a reachable hub id; official weights: {url}"
        ) from error
    for note in notes:
        log.info("%s: %s", source, note)
    pipe.set_progress_bar_config(disable=True)
    return pipe
