"""Run the stages for products, without Prefect.

``process_batch(products, options)`` is what a Prefect task calls; it can also be called
directly (tests, notebooks). For each product: load the image safely, cut it out, compose
packshots for each export preset, render backgrounds and lifestyle scenes for its brand,
recolor every finished image into each color variant, encode and validate each file, and write
everything atomically. A product's ``.done.json`` is written last; a rerun whose content key
(image bytes, catalog row, settings, model identities) matches skips the product.

Inside a product, stage results are cached by content (:mod:`packshot.cache`): a new brand style
regenerates scenes but reuses the cutout. ``process_batch`` overlaps the work of three products:
a loader thread decodes the next images and checks their ``.done.json`` while the current product
holds the GPU, and a writer thread encodes, validates and uploads the previous one. Model calls
hold :func:`packshot.gpu.gpu_lock`, shared by every process on the host.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from packshot import progress
from packshot.cache import StageCache, array_sha, content_key
from packshot.config import Settings, get_settings, resolve_device
from packshot.errors import PackshotError
from packshot.gpu import gpu_lock
from packshot.imageio import resolve_local
from packshot.manifest import OutputRecord, ProductResult
from packshot.storage import Storage, open_storage
from packshot.types import Cutout, Product, Rendered

log = logging.getLogger(__name__)

StageName = Literal["segment", "background", "lifestyle", "recolor", "export", "video"]
DEFAULT_STAGES: list[StageName] = ["segment", "background", "lifestyle", "recolor", "export"]
PIPELINE_VERSION = "1"  # bump when output-affecting code changes so cached results are redone


class VideoOptions(BaseModel):
    """Ad clip options for a run; they override the ``PACKSHOT_VIDEO__*`` settings of the same name."""

    provider: Literal["runway", "sora", "local", "none"] = Field("none", description="who renders the clips")
    duration_s: int = Field(5, ge=1, le=20, description="clip length in seconds")
    ratio: str = Field("auto", description="'auto' or W:H such as 1280:720 or 9:16")
    camera_motion: str = Field("slow-push-in", description="camera move named in the clip prompt")
    max_spend_usd: float = Field(10.0, ge=0, description="spending cap for the whole run")


class RunOptions(BaseModel):
    """What to run. The same model is the CLI's options and the Prefect flow's parameters (the UI form)."""

    catalog: str = Field(description="catalog CSV: our format, a Shopify export or a WooCommerce export")
    out: str = Field("out/run", description="output folder or s3://bucket/prefix")
    brand: str | None = Field(None, description="brand style for rows naming none (brand_styles/<name>.yaml)")
    stages: list[StageName] = Field(default_factory=lambda: list(DEFAULT_STAGES), description="stages to run")
    presets: list[str] | None = Field(None, description="export presets; default from settings")
    batch_size: int | None = Field(None, ge=1, description="products per task; default from settings")
    limit: int | None = Field(None, ge=1, description="process only the first N products")
    video: VideoOptions | None = Field(None, description="ad clip options (with the video stage)")


def safe_dirname(sku: str) -> str:
    """A folder name for a SKU: the SKU itself when it is safe, else a slug plus a short hash."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", sku) and ".." not in sku:
        return sku
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", sku).strip("-.")[:60] or "sku"
    return f"{slug}-{hashlib.sha1(sku.encode()).hexdigest()[:8]}"


@dataclass
class RunContext:
    """Everything a worker needs, built once per process and reused for every batch."""

    settings: Settings
    options: RunOptions
    storage: Storage
    base_dir: Path
    device: str
    presets: dict
    segmenter: object
    generator: object | None
    cache: StageCache | None = None
    brands: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the generator's LoRA state is shared
    _s3: object | None = None

    def brand(self, name: str | None):
        if not name:
            return None
        if name not in self.brands:
            from stages.lifestyle import load_brand_style

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
        return str(getattr(self.segmenter, "identity", None) or self.segmenter.name)

    def generator_identity(self) -> str | None:
        """The base model (id@revision); the LoRA in use is part of the brand style in every key."""
        if self.generator is None:
            return None
        gen = self.generator
        return str(getattr(gen, "model_identity", None) or getattr(gen, "identity", None) or gen.name)

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


def get_context(options: RunOptions, settings: Settings | None = None) -> RunContext:
    """One context per (options, settings) per process: models stay loaded across batches."""
    settings = settings or get_settings()
    if options.video is not None:
        video = settings.video.model_copy(update=options.video.model_dump())
        settings = settings.model_copy(update={"video": video})
    key = options.model_dump_json() + settings.model_dump_json()
    with _contexts_lock:
        if key not in _contexts:
            _contexts[key] = _build_context(options, settings)
        return _contexts[key]


def _build_context(options: RunOptions, settings: Settings) -> RunContext:
    from stages.export import load_presets
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


@dataclass
class _Job:
    """A product between the phases of :func:`process_batch`: loaded, computed, written."""

    product: Product
    started: float
    folder: str = ""
    loaded: object | None = None
    key: str | None = None
    result: ProductResult | None = None  # set when the product is finished early (skipped, failed)
    cutout: Cutout | None = None
    rendered: list[Rendered] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cache_writes: list[Callable[[], None]] = field(default_factory=list)


def process_batch(products: list[Product], options: RunOptions) -> list[ProductResult]:
    """Process ``products`` in order, overlapping loading, model work and writing; each result is
    reported to :mod:`packshot.progress` as soon as the product's files are written."""
    ctx = get_context(options)
    return list(_pipelined(products, ctx))


def _pipelined(products: list[Product], ctx: RunContext) -> Iterator[ProductResult]:
    ahead = max(1, ctx.settings.orchestration.prefetch)
    in_flight = threading.BoundedSemaphore(ahead + 1)  # jobs computed but not yet written: flat memory
    with ThreadPoolExecutor(ahead, thread_name_prefix="packshot-load") as loader, \
            ThreadPoolExecutor(1, thread_name_prefix="packshot-write") as writer:
        loading: deque[Future[_Job]] = deque()
        writing: deque[Future[ProductResult]] = deque()
        queue = iter(products)

        def top_up() -> None:
            while len(loading) < ahead and (product := next(queue, None)) is not None:
                loading.append(loader.submit(_load_phase, product, ctx))

        def write_and_report(job: _Job) -> ProductResult:
            try:
                result = _write_phase(job, ctx)
                progress.emit(result)
                return result
            finally:
                in_flight.release()

        top_up()
        while loading:
            job = loading.popleft().result()
            top_up()
            if job.result is None:
                _compute_phase(job, ctx)
            in_flight.acquire()
            writing.append(writer.submit(write_and_report, job))
            while writing and writing[0].done():
                yield writing.popleft().result()
        while writing:
            yield writing.popleft().result()


def process_product(product: Product, ctx: RunContext) -> ProductResult:
    """One product start to finish in the calling thread (no overlap, no progress event)."""
    job = _load_phase(product, ctx)
    if job.result is None:
        _compute_phase(job, ctx)
    return _write_phase(job, ctx)


def _fail(job: _Job, exc: Exception) -> None:
    p = job.product
    base = {"sku": p.sku, "source_file": p.source_file, "source_line": p.source_line}
    if isinstance(exc, PackshotError):
        job.result = ProductResult(**base, status="failed", error=str(exc))
    else:  # a bug or an unexpected input: record it, keep the run going
        log.error("product %s failed:\n%s", p.sku, traceback.format_exc())
        error = f"internal error ({type(exc).__name__}: {exc})"
        job.result = ProductResult(**base, status="failed", error=error)


def _load_phase(product: Product, ctx: RunContext) -> _Job:
    """Loader thread: decode the image, compute the content key, finish early if nothing changed."""
    from packshot.imageio import load_image, read_local

    job = _Job(product, time.perf_counter(), folder=safe_dirname(product.sku))
    try:
        ref = product.images[0]
        # Local files: hash the bytes and check .done.json before decoding, so an unchanged
        # product costs one read and a hash (nightly reruns); a changed one decodes those same bytes.
        data = None if "://" in ref else read_local(ref, ctx.base_dir)
        unchanged = data is not None and _reuse_previous(
            job, _content_key(product, hashlib.sha256(data).hexdigest(), ctx), ctx
        )
        if unchanged:
            return job
        s3 = ctx.s3_client() if ref.startswith("s3://") else None
        job.loaded = load_image(ref, ctx.base_dir, ctx.settings.load, s3_client=s3, data=data)
        job.key = _content_key(product, job.loaded.sha256, ctx)
        _reuse_previous(job, job.key, ctx)
    except Exception as exc:
        _fail(job, exc)
    return job


def _reuse_previous(job: _Job, key: str, ctx: RunContext) -> bool:
    """Finish ``job`` as skipped when its ``.done.json`` has ``key`` and all its files still exist."""
    done_key = f"{job.folder}/.done.json"
    if not ctx.storage.exists(done_key):
        return False
    previous = ProductResult.model_validate_json(ctx.storage.read_bytes(done_key))
    if previous.key != key or not all(ctx.storage.exists(o.key) for o in previous.outputs):
        return False
    previous.status = "skipped"
    previous.notes = [*previous.notes, "unchanged since the last run: reused its outputs"]
    job.key, job.result = key, previous
    return True


def _compute_phase(job: _Job, ctx: RunContext) -> None:
    """Calling thread: the model work (cutout, backgrounds, scenes) and recolors, nothing written."""
    try:
        job.notes += list(job.loaded.notes)
        job.cutout = _cut_out(job, ctx)
        job.notes += job.cutout.notes
        brand = ctx.brand(job.product.brand_style or ctx.options.brand)
        job.rendered = _render_all(job, brand, ctx)
        job.notes += _upscale_notes(job.cutout, job.rendered)
        if "recolor" in ctx.options.stages and job.product.colors:
            job.rendered += _recolor_all(job.product, job.rendered, ctx)
    except Exception as exc:
        _fail(job, exc)


def _upscale_notes(cutout: Cutout, rendered: list[Rendered]) -> list[str]:
    """Warn when the photo is too small for the outputs: upscaled products look soft when zoomed."""
    x0, y0, x1, y1 = cutout.bbox
    source = max(x1 - x0, y1 - y0)
    worst = 0.0
    for item in rendered:
        ys, xs = np.nonzero(item.product_alpha > 8)
        if len(xs):
            worst = max(worst, max(np.ptp(xs), np.ptp(ys)) / max(source, 1))
    if worst <= 2.0:
        return []
    return [f"the product spans only {source} px in its photo and is upscaled {worst:.1f}x in the largest "
            "output; supply a larger photo for sharp zoom"]


def _write_phase(job: _Job, ctx: RunContext) -> ProductResult:
    """Writer thread: stage-cache entries, encoded files, then ``.done.json`` last."""
    if job.result is None:
        try:
            for put in job.cache_writes:
                put()
            writer = _Writer(job.product, job.folder, ctx)
            writer.write_cutout(job.cutout)
            if "export" in ctx.options.stages or "recolor" in ctx.options.stages:
                writer.write_rendered(job.rendered)
            job.result = ProductResult(
                sku=job.product.sku, status="done", outputs=writer.records, notes=job.notes, key=job.key,
                source_file=job.product.source_file, source_line=job.product.source_line,
            )
            ctx.storage.write_bytes(f"{job.folder}/.done.json", job.result.model_dump_json(indent=1).encode(),
                                    "application/json")
        except Exception as exc:
            _fail(job, exc)
    job.result.seconds = round(time.perf_counter() - job.started, 3)
    return job.result


def _content_key(product: Product, image_sha: str, ctx: RunContext) -> str:
    opts = ctx.options
    brand = ctx.brand(product.brand_style or opts.brand)
    presets = [ctx.presets[n].model_dump() for n in (opts.presets or ctx.settings.export.presets)]
    mask_sha = None
    if product.recolor_mask:
        mask_path = resolve_local(product.recolor_mask, ctx.base_dir)
        if mask_path.is_file():
            mask_sha = hashlib.sha256(mask_path.read_bytes()).hexdigest()
    payload = {
        "v": PIPELINE_VERSION,
        "image": image_sha,
        "row": product.model_dump(exclude={"source_file", "source_line"}),
        "mask": mask_sha,
        "brand": brand.model_dump() if brand is not None else None,
        "stages": sorted(opts.stages),
        "presets": presets,
        "models": ctx.identity(),
        "settings": ctx.settings.segment.model_dump_json() + ctx.settings.generative.model_dump_json(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _cut_out(job: _Job, ctx: RunContext) -> Cutout:
    loaded, product = job.loaded, job.product
    alpha = loaded.alpha
    if alpha is not None and (alpha < 16).mean() > 0.02 and (alpha > 240).mean() > 0.02:
        return Cutout(np.dstack([loaded.rgb, alpha]), backend="source-alpha",
                      notes=["segment: the image already had transparency; used its alpha as the cutout"])
    key = content_key("cutout", image=loaded.sha256, bbox=product.bbox, settings=ctx.settings.segment,
                      segmenter=ctx.segmenter_identity())
    if ctx.cache is not None and (cached := ctx.cache.get_cutout(key)) is not None:
        return cached
    with ctx.gpu():
        cutout = ctx.segmenter.segment(loaded.rgb, product.bbox)
    if ctx.cache is not None:
        job.cache_writes.append(lambda: ctx.cache.put_cutout(key, cutout))
    return cutout


def _cached_render(job: _Job, ctx: RunContext, stage: str, brand, preset, render) -> list[Rendered]:
    """``render()`` under the GPU lock, or its earlier result for the same cutout, prompt inputs,
    brand style (LoRA included), preset, settings and model."""
    if ctx.cache is None:
        with ctx.gpu(shared_state=True):
            return render()
    p = job.product
    key = content_key(
        stage, cutout=array_sha(job.cutout.rgba), sku=p.sku, title=p.title, category=p.category,
        brand=brand.model_dump() if brand is not None else None, preset=preset.model_dump(),
        settings=ctx.settings.generative, generator=ctx.generator_identity(),
    )
    cached = ctx.cache.get_rendered(stage, key)
    if cached is not None:
        return cached
    with ctx.gpu(shared_state=True):
        items = render()
    job.cache_writes.append(lambda: ctx.cache.put_rendered(stage, key, items))
    return items


def _render_all(job: _Job, brand, ctx: RunContext) -> list[Rendered]:
    from stages.export import compose_packshot

    opts, product, cutout = ctx.options, job.product, job.cutout
    if not {"export", "recolor"} & set(opts.stages):
        return []  # only the cutout is written
    names = opts.presets or ctx.settings.export.presets
    out = [compose_packshot(cutout, ctx.presets[n]) for n in names]
    scene_presets = _scene_presets(brand, names, ctx)
    if "background" in opts.stages and ctx.generator is not None:
        from stages.background import render_background

        for preset in scene_presets:
            def one_background(p=preset):
                return [render_background(cutout, product, brand, p, ctx.generator)]

            out += _cached_render(job, ctx, "background", brand, preset, one_background)
    if "lifestyle" in opts.stages and ctx.generator is not None:
        if brand is None:
            job.notes.append("lifestyle: skipped, no brand style (set brand_style in the catalog or --brand)")
        else:
            from stages.lifestyle import render_scenes

            for preset in scene_presets:
                def scenes(p=preset):
                    return render_scenes(cutout, product, brand, p, ctx.generator)

                out += _cached_render(job, ctx, "scenes", brand, preset, scenes)
    return out


def _scene_presets(brand, run_presets: list[str], ctx: RunContext) -> list:
    """Generated images never go to presets that forbid them (Amazon main)."""
    names = list(getattr(brand, "presets", None) or run_presets)
    return [ctx.presets[n] for n in names if n in ctx.presets and ctx.presets[n].allow_generated]


def _recolor_all(product: Product, rendered: list[Rendered], ctx: RunContext) -> list[Rendered]:
    from stages.recolor import load_material_mask, recolor_variants

    source_mask = None
    if product.recolor_mask:
        mask_path = resolve_local(product.recolor_mask, ctx.base_dir)
        source_mask = load_material_mask(mask_path, None)
    out = []
    for item in rendered:
        mask = None
        if source_mask is not None and item.placement is not None:
            # The merchant's mask is drawn on the source photo: map it the way the cutout was placed.
            mask = item.placement.warp(source_mask)
        out += recolor_variants(item, product.colors, mask)  # finds the material once per image
    return out


class _Writer:
    def __init__(self, product: Product, folder: str, ctx: RunContext):
        self.product, self.folder, self.ctx = product, folder, ctx
        self.records: list[OutputRecord] = []

    def _record(self, key: str, data: bytes, fmt: str, size, **kw) -> OutputRecord:
        uri = self.ctx.storage.write_bytes(key, data, f"image/{fmt.lower()}")
        rec = OutputRecord(
            sku=self.product.sku, key=key, uri=uri, format=fmt, width=size[0], height=size[1],
            bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
            source_file=self.product.source_file, source_line=self.product.source_line, **kw,
        )
        self.records.append(rec)
        return rec

    def write_cutout(self, cutout: Cutout) -> None:
        buf = io.BytesIO()
        Image.fromarray(cutout.rgba, "RGBA").save(buf, "PNG", optimize=False, compress_level=6)
        h, w = cutout.rgba.shape[:2]
        self._record(f"{self.folder}/cutout.png", buf.getvalue(), "PNG", (w, h), kind="cutout")

    def write_rendered(self, items: list[Rendered]) -> None:
        from stages.export import check, encode, order_for_listing

        by_preset: dict[str, list[Rendered]] = {}
        for item in items:
            by_preset.setdefault(item.preset, []).append(item)
        for preset_name, group in by_preset.items():
            preset = self.ctx.presets[preset_name]
            for position, item in enumerate(order_for_listing(group, preset), start=1):
                data = encode(item, preset)
                violations = [str(v) for v in check(data, preset, item.product_alpha, item.generated)]
                ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[preset.format]
                stem = item.kind if item.scene is None else f"{item.kind}{item.scene + 1}"
                sub = f"{item.variant}/" if item.variant else ""
                key = f"{self.folder}/{sub}{stem}-{preset_name}.{ext}"
                h, w = item.rgb.shape[:2]
                self._record(
                    key, data, preset.format, (w, h), kind=item.kind, preset=preset_name,
                    variant=item.variant, scene=item.scene, position=position,
                    generated=item.generated, checks=violations,
                )
