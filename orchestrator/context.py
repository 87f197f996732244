"""The run context: settings, storage, presets and loaded backends, built once per process.

Building a context loads every configured model before the first batch, under the card lock
(:func:`packshot.gpu.gpu_lock`), so missing weights, a wrong folder or a gated model without a token
stop the run at its start with the stage's message, never one product at a time. The memory plan of
the image models (and of the local video model) is chosen here from the card's free memory
(:mod:`orchestrator.plans`). When the registry frees one of the context's models (to make room for
another large model), the context lets go of it too and is rebuilt on its next use.

In a served run (``PACKSHOT_ORCHESTRATION__GPU_WORKERS=served``) the models live in the GPU task worker;
the flow's own process only holds a described context (:func:`use_described_backends`).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import uuid
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator import work
from orchestrator.options import RunOptions
from orchestrator.pool import CpuPool, RunPool, pool_size
from orchestrator.review.rerun import RerunPlan, make_plan, with_seed_offset
from orchestrator.settings import Settings, get_settings
from packshot import gpu, memory
from packshot.cache import StageCache
from packshot.config import resolve_device
from packshot.errors import PackshotError
from packshot.extras import loaded
from packshot.gpu import gpu_lock
from packshot.registry import models
from packshot.storage import Storage, open_storage
from stages.background import BackgroundGenerator
from stages.segment import Segmenter

log = logging.getLogger(__name__)


@dataclass
class DescribedBackend:
    """What a run records about a backend that is not loaded in this process (name, keys, licence)."""

    name: str
    identity: str
    licence: str | None = None
    generated: bool = False
    model_identity: str | None = None

    @classmethod
    def of(cls, backend) -> DescribedBackend:
        return cls(name=backend.name, identity=str(getattr(backend, "identity", None) or backend.name),
                   licence=getattr(backend, "licence", None),
                   generated=bool(getattr(backend, "generated", False)),
                   model_identity=getattr(backend, "model_identity", None))

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class RunContext:
    """Everything a worker needs, built once per process and reused for every batch."""

    settings: Settings
    options: RunOptions
    storage: Storage
    base_dir: Path
    device: str
    presets: dict
    segmenter: Segmenter | DescribedBackend  # described: freed by the registry, or in a served flow process
    generator: BackgroundGenerator | DescribedBackend | None
    cache: StageCache | None = None
    brands: dict = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)  # the generator's LoRA state is shared
    image_plan: str = "full"  # the memory plan the generator was loaded with
    model_keys: set[str] = field(default_factory=set)  # registry keys of the models this context holds
    stale: bool = False  # a model was freed by the registry: rebuild before the next batch
    _s3: object | None = None
    rerun: RerunPlan = field(default_factory=RerunPlan)  # --sku, --force, --from-review, review corrections
    _pool: RunPool | None = None  # its share of the CPU worker processes (orchestrator.pool)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0  # batches running on this context now (:func:`using_context`); a busy one is never retired
    _listener: object | None = None  # its registry listener (models.on_free), removed when it closes

    def release_models(self) -> None:
        """Drop the loaded backends (keeping their descriptions for the manifest) so their memory is freed."""
        for attr in ("segmenter", "generator"):
            backend = getattr(self, attr)
            if backend is not None and not isinstance(backend, DescribedBackend):
                setattr(self, attr, DescribedBackend.of(backend))
        self.stale = True

    def describe(self) -> dict:
        """The backends as plain data (what a GPU worker sends back to a served flow)."""
        out = {"segment": DescribedBackend.of(self.segmenter).as_dict(), "image_plan": self.image_plan}
        if self.generator is not None:
            out["background"] = DescribedBackend.of(self.generator).as_dict()
        return out

    def use_lighter_image_plan(self) -> str | None:
        """Reload the generator with the next lighter memory plan (an out-of-memory retry); returns the
        new plan, or None when there is none (then nothing changed)."""
        from packshot.memory import lighter_plan
        from stages.background import get_background_generator

        lighter = lighter_plan(self.image_plan)
        if lighter is None or self.generator is None or not getattr(self.generator, "generated", False):
            return None
        with self.lock, gpu_lock(self.device):
            old_key = getattr(self.generator, "key", None)
            self.generator = None  # our reference goes first, so freeing the entry releases the card
            if old_key:
                self.model_keys.discard(old_key)
                models.free(old_key)
            gc.collect()
            generative = self.settings.generative.model_copy(update={"memory_plan": lighter})
            with models.recording() as keys:
                self.generator = get_background_generator(generative, self.device)
            self.model_keys |= keys
            self.image_plan = lighter
        from orchestrator.plans import kept_plans

        kept_plans.demote(self.device, lighter)
        log.warning("out of GPU memory: image models reloaded with memory plan %s", lighter)
        return lighter

    def cpu_pool(self) -> RunPool:
        """The run's share of the process's worker processes (one per core, :func:`shared_pool`):
        started on first use and kept for later batches and later runs."""
        with self._pool_lock:
            if self._pool is None:
                init = (self.options, self.settings, self.presets, dict(os.environ))
                self._pool = RunPool(shared_pool(), uuid.uuid4().hex, init)
            return self._pool

    def close(self) -> None:
        """Let go of the run's share of the worker processes and stop listening to the registry; the
        models stay loaded in the registry, and the processes serve the next run of this process."""
        with self._pool_lock:
            self._pool = None
        if self._listener is not None:
            models.remove_listener(self._listener)
            self._listener = None

    def segment_in_pool(self) -> bool:
        """The classic segmenter needs no GPU: it runs in the pool workers, not on the GPU holder."""
        from stages.segment import _Noted
        from stages.segment.classic import ClassicSegmenter

        seg = self.segmenter.inner if type(self.segmenter) is _Noted else self.segmenter
        return type(seg) is ClassicSegmenter

    def count_cache(self, events: list[tuple[str, bool]]) -> None:
        """Add the stage-cache lookups a worker made to this process's statistics."""
        if self.cache is not None:
            for stage, hit in events:
                self.cache.count(stage, hit)

    def product_task(self, product, folder: str, key: str | None, loaded, cutout) -> work.ProductTask:
        """What a pool worker needs for ``product`` (arrays and small models only)."""
        brand = self.product_brand(product)
        names = self.options.presets or self.settings.export.presets
        scene_names = list(getattr(brand, "presets", None) or names)
        return work.ProductTask(
            product=product, folder=folder, key=key, image_sha=loaded.sha256, rgb=loaded.rgb,
            alpha=loaded.alpha,
            notes=list(loaded.notes), stages=list(self.options.stages), presets=list(names),
            scene_presets=[n for n in scene_names if n in self.presets and self.presets[n].allow_generated],
            brand=brand, generator=self._generator_spec(), segmenter_identity=self.segmenter_identity(),
            segmenter_notes=list(getattr(self.segmenter, "notes", None) or []), cutout=cutout,
            size=tuple(loaded.size),
        )

    def _generator_spec(self) -> work.GeneratorSpec | None:
        gen = self.generator
        if gen is None:
            return None
        sizes = ({name: tuple(gen.generation_size(p.width, p.height)) for name, p in self.presets.items()}
                 if gen.generated else {})
        return work.GeneratorSpec(self.generator_identity(), bool(gen.generated), gen.settings, sizes)

    def brand(self, name: str | None):
        if not name:
            return None
        if name not in self.brands:
            from packshot.schemas.brand import brand_style_dirs, load_brand_style

            dirs = brand_style_dirs(self.settings.brand_styles_dir, self.base_dir)
            self.brands[name] = load_brand_style(name, dirs)
        return self.brands[name]

    def product_brand(self, product):
        """The brand style ``product`` is rendered with: its own or the run's, with the seeds moved
        by the product's reviews ("new seed")."""
        brand = self.brand(product.brand_style or self.options.brand)
        return with_seed_offset(brand, self.rerun.seed_offset(product.sku))

    def backends(self) -> dict[str, str]:
        out = {"segment": self.segmenter.name}
        if self.generator is not None:
            out["background"] = self.generator.name
        return out

    def s3_client(self):
        """One boto3 client for every s3:// image of the run (thread-safe; a new one costs ~50 ms)."""
        if self._s3 is None:
            from packshot.storage import make_s3_client

            self._s3 = make_s3_client()
        return self._s3

    def segmenter_identity(self) -> str:
        return self.segmenter.identity

    def generator_identity(self) -> str | None:
        """The generator's identity, plus ``+fp8`` when its weights are FP8 (their pixels differ)."""
        if self.generator is None:
            return None
        base = self.generator.identity
        fp8 = self.image_plan == "fp8" and getattr(self.generator, "generated", False)
        return f"{base}+fp8" if fp8 else base

    def identity(self) -> str:
        return f"segment={self.segmenter_identity()};generator={self.generator_identity()}"

    @contextmanager
    def gpu(self, *, shared_state: bool = False):
        """Hold the device for a model call; ``shared_state`` also serialises threads of this process
        (the generator's active LoRA is per pipeline, so a brand switch and its fill must not interleave)."""
        lock_dir = self.settings.orchestration.gpu_lock_dir
        if shared_state:
            with self.lock, gpu_lock(self.device, lock_dir):
                yield
        else:
            with gpu_lock(self.device, lock_dir):
                yield


_contexts: dict[str, RunContext] = {}
_contexts_lock = threading.Lock()
_pool: CpuPool | None = None
_shared_pool_lock = threading.Lock()


def shared_pool() -> CpuPool:
    """The process's CPU worker processes, one per core, shared by every run (each task carries its
    run's state key: :class:`~orchestrator.pool.RunPool`); a pool broken by a killed worker is replaced."""
    global _pool
    with _shared_pool_lock:
        if _pool is not None and _pool.broken:
            _pool.shutdown()
            _pool = None
        if _pool is None:
            _pool = CpuPool(pool_size(), work.init_process, ())
        return _pool


def clear_contexts() -> None:
    """Forget every context of this process (tests; a worker that must reload settings); the pool's
    worker processes end."""
    global _pool
    with _contexts_lock:
        contexts = list(_contexts.values())
        _contexts.clear()
    for ctx in contexts:
        ctx.close()
    with _shared_pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown()


def run_settings(options: RunOptions, settings: Settings) -> Settings:
    """The settings as this run uses them: the run's video options over ``PACKSHOT_VIDEO__*``, and the
    local video model on the run's device unless it names its own."""
    video = settings.video.model_copy(update={"device": settings.video.device or settings.device})
    if options.video is not None:
        video = video.model_copy(update=options.video.model_dump(exclude_unset=True))  # what was chosen
    return settings.model_copy(update={"video": video})


def _key(options: RunOptions, settings: Settings) -> str:
    return options.model_dump_json() + settings.model_dump_json()


def get_context(options: RunOptions, settings: Settings | None = None) -> RunContext:
    """One context per (options, settings) per process: models stay loaded across batches and, in a
    long-lived worker, across flow runs. A context whose models were freed is rebuilt here.

    A card keeps one context: a new run's context retires the idle contexts of earlier runs on the same
    device (their worker processes end; the models stay in the registry and are reused), so a resident
    worker serving run after run keeps its process count and memory flat."""
    return _context(options, settings, use=False)


@contextmanager
def using_context(options: RunOptions, settings: Settings | None = None):
    """:func:`get_context` for the length of a batch: the context is not retired while it runs."""
    ctx = _context(options, settings, use=True)
    try:
        yield ctx
    finally:
        with _contexts_lock:
            ctx.users -= 1


def _context(options: RunOptions, settings: Settings | None, *, use: bool) -> RunContext:
    settings = run_settings(options, settings or get_settings())
    key = _key(options, settings)
    retired: list[RunContext] = []
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None or ctx.stale:
            if ctx is not None:
                retired.append(_contexts.pop(key))  # its worker processes end; the new one starts its own
            retired += _retire_idle(resolve_device(settings.device))
            _contexts[key] = ctx = _build_context(options, settings)
        ctx.users += use
    for old in retired:
        old.close()
    return ctx


def _retire_idle(device: str) -> list[RunContext]:
    """Take the idle contexts of earlier runs on ``device`` out of the table (caller holds the lock)."""
    idle = [k for k, c in _contexts.items() if c.device == device and not c.users]
    return [_contexts.pop(k) for k in idle]


def use_described_backends(options: RunOptions, described: dict,
                           settings: Settings | None = None) -> RunContext:
    """The flow process of a served run: a context whose backends are descriptions sent by the GPU
    worker (:meth:`RunContext.describe`); it writes the manifest and report but never loads a model."""
    settings = run_settings(options, settings or get_settings())
    ctx = _base_context(options, settings, resolve_device(settings.device))
    ctx.segmenter = DescribedBackend(**described["segment"])
    ctx.generator = DescribedBackend(**described["background"]) if "background" in described else None
    ctx.image_plan = described.get("image_plan", "full")
    with _contexts_lock:
        _contexts[_key(options, settings)] = ctx
    return ctx


def _base_context(options: RunOptions, settings: Settings, device: str) -> RunContext:
    from packshot.schemas.presets import load_presets

    all_presets = load_presets(settings.export.presets_file)
    names = options.presets or settings.export.presets
    unknown = [n for n in names if n not in all_presets]
    if unknown:
        known = ", ".join(sorted(all_presets))
        raise PackshotError(f"unknown preset(s) {', '.join(unknown)}; known: {known}")
    storage = open_storage(options.out)
    return RunContext(
        settings=settings, options=options, storage=storage,
        base_dir=Path(options.catalog).resolve().parent, device=device,
        presets=all_presets, segmenter=None, generator=None,
        cache=StageCache(storage) if settings.orchestration.stage_cache else None,
        rerun=make_plan(options.skus, options.force, options.from_review, storage),
    )


def _build_context(options: RunOptions, settings: Settings) -> RunContext:
    from orchestrator.plans import kept_plans, plan_run
    from stages.segment import get_segmenter

    device = resolve_device(settings.device)
    ctx = _base_context(options, settings, device)
    gpu.set_lock_dir(settings.orchestration.gpu_lock_dir)
    with gpu_lock(device):  # loading is GPU work too: two runs on one card never load at once
        if device.startswith("cuda") and models.budget_bytes is None:
            models.budget_from_card(device)
        free = memory.card_free_bytes(device)
        if free is not None:  # what this process holds can be reused or freed: it counts as free
            free += sum(models.gpu_bytes().values())
        plan = plan_run(settings, list(options.stages), device, free_bytes=free)
        for note in kept_plans.apply(plan, settings, list(options.stages), device):  # once per card
            log.warning("%s", note)
        _check_fits(plan, settings)
        ctx.image_plan = plan.image.plan if plan.image else "full"
        for note in plan.notes:
            log.info("%s", note)
        with models.recording() as keys, _out_of_memory_at_start(ctx.image_plan):
            if {"background", "lifestyle"} & set(options.stages):
                from stages.background import get_background_generator

                generative = settings.generative.model_copy(update={"memory_plan": ctx.image_plan})
                ctx.generator = get_background_generator(generative, device)
            ctx.segmenter = get_segmenter(settings.segment, device)
            if "video" in options.stages and settings.video.provider == "local":
                fits = plan.video is not None and plan.together and plan.video.fits
                _prepare_video_model(settings, load=fits)
        ctx.model_keys = keys
    ctx._listener = _release_on_free(weakref.ref(ctx))
    models.on_free(ctx._listener)
    return ctx


def _check_fits(plan, settings: Settings) -> None:
    """Stop at the start when even the lightest plan cannot fit the card's free memory (``auto`` only: a
    plan named in the settings is tried as asked)."""
    phases = ((plan.image, settings.generative.memory_plan), (plan.video, settings.video.memory_plan))
    for phase, setting in phases:
        if phase is not None and not phase.fits and setting == "auto":
            name = memory.PLAN_SETTING[phase.phase]
            raise PackshotError(
                f"{phase.why}. Other processes may hold the card: stop them or let one GPU task worker own "
                f"it (PACKSHOT_ORCHESTRATION__GPU_WORKERS=served); `packshot plan` shows the sums; set "
                f"{name} to try a plan anyway")


@contextmanager
def _out_of_memory_at_start(plan: str):
    """A CUDA out-of-memory error while the models load becomes a clear stop with the setting to change."""
    try:
        yield
    except Exception as exc:
        torch = loaded("torch")  # never imported: nothing ran on torch, so this is no CUDA OOM
        if torch is None or not isinstance(exc, torch.OutOfMemoryError):
            raise
        lighter = memory.lighter_plan(plan)
        advice = (f"set {memory.PLAN_SETTING['image']}={lighter}" if lighter else
                  "use a card with more free memory")
        raise PackshotError(
            f"out of GPU memory while loading the models with memory plan {plan}: {advice}, or stop the "
            "other processes on the card (`packshot plan` shows what each plan needs)") from None


def _release_on_free(ref: weakref.ref):
    def listener(key: str) -> None:
        ctx = ref()
        if ctx is not None and key in ctx.model_keys:
            ctx.release_models()

    return listener


def _prepare_video_model(settings: Settings, *, load: bool) -> None:
    """Load the local video model now when it can stay resident beside the image models, else read its
    config only (the registry frees the image models before it loads, after the batches)."""
    from stages.video.providers.base import ClipFailedError
    from stages.video.providers.local import LocalProvider

    provider = LocalProvider(settings.video)
    model = settings.video.model or settings.video.local_model or ""
    try:
        provider.check_model(model)
        if load:
            provider.load(model)
        else:
            provider.check_source(model)
    except ClipFailedError as exc:  # a model that cannot load is a configuration error: stop at the start
        raise PackshotError(str(exc)) from None
