"""The run context: settings, storage, presets and loaded backends, built once per process."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.options import RunOptions
from orchestrator.review.rerun import RerunPlan, make_plan, with_seed_offset
from orchestrator.settings import Settings, get_settings
from packshot.cache import StageCache
from packshot.config import resolve_device
from packshot.errors import PackshotError
from packshot.gpu import gpu_lock
from packshot.storage import Storage, open_storage
from stages.background import BackgroundGenerator
from stages.segment import Segmenter


@dataclass
class RunContext:
    """Everything a worker needs, built once per process and reused for every batch."""

    settings: Settings
    options: RunOptions
    storage: Storage
    base_dir: Path
    device: str
    presets: dict
    segmenter: Segmenter
    generator: BackgroundGenerator | None
    cache: StageCache | None = None
    brands: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the generator's LoRA state is shared
    _s3: object | None = None
    rerun: RerunPlan = field(default_factory=RerunPlan)  # --sku, --force, --from-review, review corrections

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
        """The base model (id@revision); the LoRA in use is part of the brand style in every key."""
        return None if self.generator is None else self.generator.identity

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


def clear_contexts() -> None:
    """Forget every context of this process (tests; a worker that must reload settings)."""
    with _contexts_lock:
        _contexts.clear()


def run_settings(options: RunOptions, settings: Settings) -> Settings:
    """The settings as this run uses them: the run's video options over ``PACKSHOT_VIDEO__*``, and the
    local video model on the run's device unless it names its own."""
    video = settings.video.model_copy(update={"device": settings.video.device or settings.device})
    if options.video is not None:
        video = video.model_copy(update=options.video.model_dump())
    return settings.model_copy(update={"video": video})


def get_context(options: RunOptions, settings: Settings | None = None) -> RunContext:
    """One context per (options, settings) per process: models stay loaded across batches."""
    settings = run_settings(options, settings or get_settings())
    key = options.model_dump_json() + settings.model_dump_json()
    with _contexts_lock:
        if key not in _contexts:
            _contexts[key] = _build_context(options, settings)
        return _contexts[key]


def _build_context(options: RunOptions, settings: Settings) -> RunContext:
    from packshot.schemas.presets import load_presets
    from stages.segment import get_segmenter

    device = resolve_device(settings.device)
    all_presets = load_presets(settings.export.presets_file)
    names = options.presets or settings.export.presets
    unknown = [n for n in names if n not in all_presets]
    if unknown:
        known = ", ".join(sorted(all_presets))
        raise PackshotError(f"unknown preset(s) {', '.join(unknown)}; known: {known}")
    generator = None
    if {"background", "lifestyle"} & set(options.stages):
        from stages.background import get_background_generator

        generator = get_background_generator(settings.generative, device)
    storage = open_storage(options.out)
    return RunContext(
        settings=settings, options=options, storage=storage,
        base_dir=Path(options.catalog).resolve().parent, device=device,
        presets=all_presets, segmenter=get_segmenter(settings.segment, device), generator=generator,
        cache=StageCache(storage) if settings.orchestration.stage_cache else None,
        rerun=make_plan(options.skus, options.force, options.from_review, storage),
    )
