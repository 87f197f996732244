"""The run context: settings, storage, presets and loaded backends, built once per process."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator import work
from orchestrator.options import RunOptions
from orchestrator.pool import CpuPool, pool_size
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
    _pool: CpuPool | None = None
    _pool_lock: threading.Lock = field(default_factory=threading.Lock)

    def cpu_pool(self) -> CpuPool:
        """The run's worker processes (one per core), started on first use and kept for later batches."""
        with self._pool_lock:
            if self._pool is None:
                args = (self.options, self.settings, self.presets)
                self._pool = CpuPool(pool_size(), work.init_worker, args)
            return self._pool

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

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
        brand = self.brand(product.brand_style or self.options.brand)
        names = self.options.presets or self.settings.export.presets
        scene_names = list(getattr(brand, "presets", None) or names)
        return work.ProductTask(
            product=product, folder=folder, key=key, image_sha=loaded.sha256, rgb=loaded.rgb,
            alpha=loaded.alpha,
            notes=list(loaded.notes), stages=list(self.options.stages), presets=list(names),
            scene_presets=[n for n in scene_names if n in self.presets and self.presets[n].allow_generated],
            brand=brand, generator=self._generator_spec(), segmenter_identity=self.segmenter_identity(),
            segmenter_notes=list(getattr(self.segmenter, "notes", None) or []), cutout=cutout,
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
            from packshot.schemas.brand import load_brand_style

            self.brands[name] = load_brand_style(name, self.settings.brand_styles_dir)
        return self.brands[name]

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
    """Forget every context of this process (tests; a worker that must reload settings); their pool
    worker processes end."""
    with _contexts_lock:
        contexts = list(_contexts.values())
        _contexts.clear()
    for ctx in contexts:
        ctx.close()


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
    )
