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
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from orchestrator.checks import check_loaded_product
from orchestrator.context import RunContext, get_context
from orchestrator.incremental import key_from_source, refresh_version
from orchestrator.keys import load_previous_result, product_key, safe_dirname
from orchestrator.oom import RunStopped, on_gpu
from orchestrator.options import RunOptions
from orchestrator.review.rerun import carried_over
from orchestrator.writer import ProductWriter
from packshot import progress
from packshot.cache import array_sha, content_key
from packshot.errors import PackshotError
from packshot.imageio import load_image, read_local, resolve_local
from packshot.schemas.results import ProductResult
from packshot.types import Cutout, Product, Rendered
from stages.background import render_background
from stages.export import compose_packshot
from stages.lifestyle import plan_scenes
from stages.recolor import load_material_mask, recolor_variants

log = logging.getLogger(__name__)

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


def _fail(job: _Job, exc: Exception) -> None:
    if isinstance(exc, RunStopped):  # out of GPU memory even on the lightest plan: stop the whole run
        raise exc
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
    product = ctx.rerun.corrected(product)  # a box from the review replaces the catalog's
    job = _Job(product, time.perf_counter(), folder=safe_dirname(product.sku))
    if not ctx.rerun.is_chosen(product.sku):  # --sku / --from-review: the others keep their files
        job.result = carried_over(product, ctx.storage, job.folder, ctx.rerun)
        return job
    try:
        if (key := key_from_source(product, job.folder, ctx)) and _reuse_previous(job, key, ctx):
            return job  # the store reports it unchanged: skipped without a download (incremental.py)
        ref = product.images[0]
        # Local files: hash the bytes and check .done.json before decoding, so an unchanged
        # product costs one read and a hash (nightly reruns); a changed one decodes those same bytes.
        data = None if "://" in ref else read_local(ref, ctx.base_dir)
        unchanged = data is not None and _reuse_previous(
            job, product_key(product, hashlib.sha256(data).hexdigest(), ctx), ctx
        )
        if unchanged:
            return job
        s3 = ctx.s3_client() if ref.startswith("s3://") else None
        job.loaded = load_image(ref, ctx.base_dir, ctx.settings.load, s3_client=s3, data=data)
        check_loaded_product(product, job.loaded.size, ctx)  # the checks of `packshot validate`
        job.key = product_key(product, job.loaded.sha256, ctx)
        if _reuse_previous(job, job.key, ctx):
            refresh_version(ctx.storage, job.folder, job.result, product)
    except Exception as exc:
        _fail(job, exc)
    return job


def _reuse_previous(job: _Job, key: str, ctx: RunContext) -> bool:
    """Finish ``job`` as skipped when its ``.done.json`` has ``key`` and all its files still exist."""
    done_key = f"{job.folder}/.done.json"
    if ctx.rerun.force:
        return False
    previous = load_previous_result(ctx.storage, done_key, job.notes)  # damaged counts as absent
    if previous is None or previous.key != key \
            or not all(ctx.storage.exists(o.key) for o in previous.outputs):
        return False
    previous.status = ctx.rerun.status_of_unchanged(previous)  # doubtful until approved
    previous.notes = [*previous.notes, "unchanged since the last run: reused its outputs"]
    job.key, job.result = key, previous
    return True


def _compute_phase(job: _Job, ctx: RunContext) -> None:
    """Calling thread: the model work (cutout, backgrounds, scenes) and recolors, nothing written."""
    try:
        job.notes += list(job.loaded.notes)
        job.cutout = _cut_out(job, ctx)
        job.notes += job.cutout.notes
        brand = ctx.product_brand(job.product)
        job.rendered = _render_all(job, brand, ctx)
        job.notes += _upscale_notes(job.cutout, job.rendered)
        if "recolor" in ctx.options.stages and job.product.colors:
            job.rendered += _recolor_all(job.product, job.rendered, ctx, job.loaded.size)
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
            writer = ProductWriter(job.product, job.folder, ctx)
            writer.write_cutout(job.cutout)
            preview = writer.write_source_preview(job.loaded.rgb)
            if "export" in ctx.options.stages or "recolor" in ctx.options.stages:
                writer.write_rendered(job.rendered)
            reasons = list(job.cutout.review_reasons)
            job.result = ProductResult(
                sku=job.product.sku, status="needs_review" if reasons else "done", outputs=writer.records,
                notes=job.notes, key=job.key, review_reasons=reasons,
                source_file=job.product.source_file, source_line=job.product.source_line,
                source_version=job.product.source_version, image_sha256=job.loaded.sha256,
                source_image=job.product.images[0], source_preview=preview,
            )
            ctx.storage.write_bytes(f"{job.folder}/.done.json", job.result.model_dump_json(indent=1).encode(),
                                    "application/json")
        except Exception as exc:
            _fail(job, exc)
    job.result.seconds = round(time.perf_counter() - job.started, 3)
    return job.result


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
    cutout = on_gpu(ctx, lambda: ctx.segmenter.segment(loaded.rgb, product.bbox), what="cutout")
    if ctx.cache is not None:
        job.cache_writes.append(lambda: ctx.cache.put_cutout(key, cutout))
    return cutout


def _cached_render(job: _Job, ctx: RunContext, stage: str, brand, preset, render) -> list[Rendered]:
    """``render()`` under the GPU lock, or its earlier result for the same cutout, prompt inputs,
    brand style (LoRA included), preset, settings and model."""
    if ctx.cache is None:
        return on_gpu(ctx, render, shared_state=True, what=stage)
    p = job.product
    key = content_key(
        stage, cutout=array_sha(job.cutout.rgba), sku=p.sku, title=p.title, category=p.category,
        brand=brand.model_dump() if brand is not None else None, preset=preset.model_dump(),
        settings=ctx.settings.generative, generator=ctx.generator_identity(),
    )
    cached = ctx.cache.get_rendered(stage, key)
    if cached is not None:
        return cached
    items = on_gpu(ctx, render, shared_state=True, what=stage)
    job.cache_writes.append(lambda: ctx.cache.put_rendered(stage, key, items))
    return items


def _render_all(job: _Job, brand, ctx: RunContext) -> list[Rendered]:
    opts, product, cutout = ctx.options, job.product, job.cutout
    if not {"export", "recolor"} & set(opts.stages):
        return []  # only the cutout is written
    names = opts.presets or ctx.settings.export.presets
    out = [compose_packshot(cutout, ctx.presets[n]) for n in names]
    scene_presets = _scene_presets(brand, names, ctx)
    if "background" in opts.stages and ctx.generator is not None:
        for preset in scene_presets:
            def one_background(p=preset):
                return [render_background(cutout, product, brand, p, ctx.generator)]

            out += _cached_render(job, ctx, "background", brand, preset, one_background)
    if "lifestyle" in opts.stages and ctx.generator is not None:
        if brand is None:
            job.notes.append("lifestyle: skipped, no brand style (set brand_style in the catalog or --brand)")
        else:
            for preset in scene_presets:
                def scenes(p=preset):
                    return [render_background(cutout, product, brand, p, ctx.generator, scene=plan)
                            for plan in plan_scenes(product, brand)]

                out += _cached_render(job, ctx, "scenes", brand, preset, scenes)
    return out


def _scene_presets(brand, run_presets: list[str], ctx: RunContext) -> list:
    """Generated images never go to presets that forbid them (Amazon main)."""
    names = list(getattr(brand, "presets", None) or run_presets)
    return [ctx.presets[n] for n in names if n in ctx.presets and ctx.presets[n].allow_generated]


def _recolor_all(product: Product, rendered: list[Rendered], ctx: RunContext,
                 size: tuple[int, int]) -> list[Rendered]:
    source_mask = None
    if product.recolor_mask:
        mask_path = resolve_local(product.recolor_mask, ctx.base_dir)
        source_mask = load_material_mask(mask_path, size)  # the photo's size: mapped like the cutout
    out = []
    for item in rendered:
        mask = None
        if source_mask is not None and item.placement is not None:
            # The merchant's mask is drawn on the source photo: map it the way the cutout was placed.
            mask = item.placement.warp(source_mask)
        out += recolor_variants(item, product.colors, mask)  # finds the material once per image
    return out


