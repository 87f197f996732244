"""Run the stages for products, without Prefect.

``process_batch(products, options)`` is what a Prefect task calls; it can also be called directly
(tests, notebooks). Each photo of a product is a job of its own (:mod:`orchestrator.photos`: its
folder, key and ``.done.json``); the product's result joins its photos'. For each photo: load the image
safely, cut it out, compose packshots for each
export preset, render backgrounds and lifestyle scenes for its brand, recolor every finished image into
each color variant, encode and validate each file, and write everything atomically. A product's
``.done.json`` is written last; a rerun whose content key (image bytes, catalog row, settings, model
identities) matches skips the product.

Who does what:

- loader threads (``prefetch`` of them) read and hash the next images, check their ``.done.json`` and
  decode them (and make a GPU segmenter's prompts: its CPU work before the model);
- the calling thread is the GPU holder: it only makes model calls (a GPU segmenter's masks for up to
  its batch size of products in one call, a product's generator fills, batched per generation size),
  each under the card lock through
  :func:`orchestrator.oom.on_gpu` (one retry with a lighter memory plan when out of memory; then the run
  stops, after the products past their model calls are written), taking them from a queue that may hold
  several products' requests, and hands everything else to the pool (a GPU cutout's mask cleanup and
  edge refinement included: a :class:`stages.segment.Draft`, finished by the worker that prepares it);
- a pool of worker processes, one per core (:mod:`orchestrator.pool`, :mod:`orchestrator.work`),
  prepares products (classic cutout, placements, generator inputs; first in line, so the GPU never waits)
  and finishes them (generated backgrounds, packshots, recolors, encode, validate, write, ``.done.json``).

At most ``pool size + 2 x prefetch`` photos are in flight at once (flat memory; ``+ batch - 1`` with
a GPU segmenter that batches, so a full batch can gather), and results are
reported to :mod:`packshot.progress` in catalog order, in this process, as soon as all of a product's
files are written. Stage results are cached by content (:mod:`packshot.cache`).
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from orchestrator import work
from orchestrator.checks import check_loaded_product
from orchestrator.context import RunContext, using_context
from orchestrator.incremental import key_from_source, refresh_version
from orchestrator.keys import load_previous_result, product_key, safe_dirname
from orchestrator.oom import RunStopped, on_gpu
from orchestrator.options import RunOptions
from orchestrator.photos import Photo, merge_results, photo_key_extra, photos_of, tag_records
from orchestrator.pool import NORMAL, URGENT
from orchestrator.review.rerun import carried_over
from orchestrator.writer import check_listing_order, listed
from packshot import progress
from packshot.errors import PackshotError
from packshot.imageio import load_image, read_local
from packshot.schemas.results import ProductResult
from packshot.types import Cutout, Product
from stages.background.render import fill_plans
from stages.segment import Draft, model_batch, model_batch_size, model_prompt

log = logging.getLogger(__name__)


@dataclass
class _Group:
    """A product whose photos are in flight, one job each; its result is reported when all are done."""

    product: Product
    photos: list[Photo]
    started: float
    results: list[ProductResult] = field(default_factory=list)


@dataclass
class _Job:
    """One photo of a product in flight: loaded, maybe cut out on the GPU, prepared, then finished
    (``result``). ``product`` is the product seen through this photo (:class:`orchestrator.photos.Photo`)."""

    product: Product
    started: float
    photo: Photo | None = None
    group: _Group | None = None
    folder: str = ""
    loaded: object | None = None
    key: str | None = None
    cutout: Cutout | None = None  # from the GPU segmenter or the parent's cache lookup
    prompt: object | None = None  # what the GPU segmenter asks its model for this photo (made by a loader)
    draft: Draft | None = None  # the GPU segmenter's answer, finished by the worker that prepares the product
    prepared: work.Prepared | None = None
    done_parts: list[work.PartDone | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_span: int = 1
    review_reasons: list[str] = field(default_factory=list)  # the cutout's doubts: the product needs review
    source_preview: str | None = None  # key of the photo's preview for the review page
    image_sha: str | None = None
    generator_calls: int = 0  # images generated for it in this run; the shared ones count once
    fills_shared: int = 0
    run_id: str | None = None  # the run this photo is made for (recorded in its .done.json)
    result: ProductResult | None = None

    def take(self, prepared: work.Prepared) -> None:
        """What the parent keeps of a prepared product for its ``.done.json``."""
        self.notes, self.source_span, self.key = prepared.notes, prepared.source_span, prepared.task.key
        self.review_reasons, self.source_preview = prepared.review_reasons, prepared.source_preview
        self.image_sha = prepared.task.image_sha
        self.generator_calls, self.fills_shared = len(prepared.jobs), len(prepared.shared)


def process_batch(products: list[Product], options: RunOptions,
                  run_id: str | None = None) -> list[ProductResult]:
    """Process ``products``, overlapping loading, model work and CPU work; each result is reported to
    :mod:`packshot.progress` as soon as the product's files are written, in catalog order. ``run_id``
    goes into each ``.done.json``: a second attempt of the same run (a retried shard) reports what the
    first attempt finished as done, not as skipped, and does not make it again."""
    with using_context(options) as ctx:  # not retired by another run while this batch runs
        return list(_pipelined(products, ctx, run_id))


def _pipelined(products: list[Product], ctx: RunContext,
               run_id: str | None = None) -> Iterator[ProductResult]:
    pool = ctx.cpu_pool()
    ahead = max(1, ctx.settings.orchestration.prefetch)
    batch = 1 if ctx.segment_in_pool() else model_batch_size(ctx.segmenter)
    limit = pool.size + 2 * ahead + batch - 1
    order: deque[_Job] = deque()  # photos in flight, catalog order
    gpu_queue: deque[tuple[str, _Job]] = deque()  # ("segment" | "fill", job), in the order they came
    pending: dict[Future, tuple[str, _Job]] = {}
    queue = deque(products)
    admit: deque[_Job] = deque()  # photos of the product being admitted
    with ThreadPoolExecutor(ahead, thread_name_prefix="packshot-load") as loader:
        while True:
            while len(order) < limit and (admit or queue):
                if not admit:  # the next product: one job per photo, admitted one at a time (flat memory)
                    # a box from the review replaces the catalog's
                    product = ctx.rerun.corrected(queue.popleft())
                    photos = photos_of(product, safe_dirname(product.sku))
                    group = _Group(product, photos, time.perf_counter())
                    admit.extend(_Job(ph.product, group.started, photo=ph, group=group, folder=ph.folder,
                                      run_id=run_id) for ph in photos)
                job = admit.popleft()
                order.append(job)
                pending[loader.submit(_load_phase, job, ctx)] = ("load", job)
            for future in [f for f in pending if f.done()]:
                _advance(*pending.pop(future), future, gpu_queue, pending, loader, ctx)
            step = _next_gpu_step(gpu_queue, pending, batch)
            if step is not None:  # model work first: everything else is already handed out
                try:
                    _gpu_step(*step, pending, ctx)
                except RunStopped:  # no more model calls; what is past them still gets its files
                    _drain(gpu_queue, pending, loader, ctx)
                    yield from _finished(order)
                    raise
                continue
            yield from _finished(order)
            if not order:
                if not queue and not admit:
                    return
                continue  # every product in flight was reported: admit the next ones
            wait(list(pending), return_when=FIRST_COMPLETED)


def _finished(order: deque[_Job]) -> Iterator[ProductResult]:
    """The products at the front of ``order`` whose photos are all finished, in catalog order."""
    while order and order[0].result is not None:
        job = order.popleft()
        group = job.group
        group.results.append(job.result)
        if len(group.results) == len(group.photos):
            yield _report(group)


def _advance(stage: str, job: _Job, future: Future, gpu_queue: deque, pending: dict,
             io: ThreadPoolExecutor, ctx: RunContext) -> None:
    """React to a finished load / prepare / part / ``.done.json``: queue the product's next step."""
    try:
        if stage == "load":
            future.result()
            if job.result is not None:
                return
            on_gpu = not ctx.segment_in_pool() and not work.has_source_alpha(job.loaded.alpha)
            if job.cutout is None and on_gpu:
                gpu_queue.append(("segment", job))
            else:
                _submit_prepare(job, pending, ctx)
        elif stage == "prepare":
            prepared = future.result()
            ctx.count_cache(prepared.cache_events)
            if prepared.done is not None:
                job.take(prepared)
                job.done_parts = [prepared.done]
                pending[io.submit(_write_done, job, ctx)] = ("done", job)
            elif prepared.jobs:
                job.prepared = prepared
                gpu_queue.append(("fill", job))
            else:
                _submit_parts(job, prepared, {}, pending, ctx)
        elif stage.startswith("part"):
            if job.result is not None:  # an earlier part failed
                return
            job.done_parts[int(stage[4:])] = future.result()
            if all(p is not None for p in job.done_parts):
                pending[io.submit(_write_done, job, ctx)] = ("done", job)
        else:
            future.result()
    except Exception as exc:
        _fail(job, exc)


def _drain(gpu_queue: deque, pending: dict, io: ThreadPoolExecutor, ctx: RunContext) -> None:
    """The run stops: finish the products already past their model calls (their ``.done.json`` is
    written, so a resume reuses them) and make no further model call."""
    while pending:
        wait(list(pending), return_when=FIRST_COMPLETED)
        for future in [f for f in pending if f.done()]:
            _advance(*pending.pop(future), future, gpu_queue, pending, io, ctx)
        gpu_queue.clear()


def _next_gpu_step(gpu_queue: deque, pending: dict, batch: int) -> tuple[str, list[_Job]] | None:
    """The GPU holder's next model call, taken off ``gpu_queue``: the oldest request, where cutouts go
    ``batch`` products to a call. A batch still short waits while photos are loading (they may join
    it), and a product's fills run meanwhile; None when there is nothing to do yet."""
    if not gpu_queue:
        return None
    stage, job = gpu_queue[0]
    if stage == "fill":
        gpu_queue.popleft()
        return "fill", [job]
    cutouts = [entry for entry in gpu_queue if entry[0] == "segment"][:batch]
    if len(cutouts) < batch and any(stage == "load" for stage, _ in pending.values()):
        fill = next((entry for entry in gpu_queue if entry[0] == "fill"), None)
        if fill is None:
            return None
        gpu_queue.remove(fill)
        return "fill", [fill[1]]
    for entry in cutouts:
        gpu_queue.remove(entry)
    return "segment", [job for _, job in cutouts]


def _gpu_step(stage: str, jobs: list[_Job], pending: dict, ctx: RunContext) -> None:
    """The GPU holder's work for some products' cutouts (one model call), or for all one product's
    generator fills."""
    if stage == "segment":
        for job, made in _segment_on_gpu(jobs, ctx):
            if isinstance(made, Exception):
                _fail(job, made)
                continue
            if isinstance(made, Cutout):
                job.cutout = made
            else:
                job.draft = made
            _submit_prepare(job, pending, ctx, cache_cutout=True)
        return
    (job,) = jobs
    try:
        prepared, job.prepared = job.prepared, None
        fills = _fills_on_gpu(prepared, ctx)
        _submit_parts(job, prepared, fills, pending, ctx)
    except Exception as exc:
        _fail(job, exc)


def _segment_on_gpu(jobs: list[_Job], ctx: RunContext) -> list[tuple[_Job, Draft | Cutout | Exception]]:
    """One model call for the products' photos under the card lock (retried once with a lighter memory
    plan when out of memory: :func:`orchestrator.oom.on_gpu`): a draft each where the segmenter leaves
    its edge refinement for later (SAM; refined in the pool, off the card), else a cutout each. When the
    call fails, each product is tried alone, so one bad photo fails only its own product."""
    images = [job.loaded.rgb for job in jobs]
    boxes = [job.product.bbox for job in jobs]
    prompts = [job.prompt for job in jobs]
    try:
        made = on_gpu(ctx, lambda: model_batch(ctx.segmenter, images, boxes, prompts), what="cutout")
        return list(zip(jobs, made, strict=True))
    except RunStopped:
        raise
    except Exception as exc:
        if len(jobs) == 1:
            return [(jobs[0], exc)]
    return [pair for job in jobs for pair in _segment_on_gpu([job], ctx)]


def _fills_on_gpu(prepared: work.Prepared, ctx: RunContext) -> dict[int, tuple[np.ndarray, list[str]]]:
    """The generator's fills for a product's images (its brand's LoRA made active first), batched per
    generation size (``speed.batch_size`` per pipeline call)."""
    requests = [prepared.images[j.index].plan.fill for j in prepared.jobs]
    brand = prepared.task.brand

    def call():
        notes = ctx.generator.use_brand(brand)
        return fill_plans(ctx.generator, requests), notes

    images, notes = on_gpu(ctx, call, shared_state=True, what="background")
    return {j.index: (image, list(notes)) for j, image in zip(prepared.jobs, images, strict=True)}


def _submit_parts(job: _Job, prepared: work.Prepared, fills: dict, pending: dict, ctx: RunContext) -> None:
    """Hand a product's finishing to the pool, one task per part (the cutout, each packshot, each image)."""
    parts = work.parts(prepared, fills)
    check_listing_order(parts, ctx.presets)
    job.take(prepared)
    job.done_parts = [None] * len(parts)
    for i, part in enumerate(parts):
        pending[ctx.cpu_pool().submit(work.finish_part, part, priority=NORMAL)] = (f"part{i}", job)


def _write_done(job: _Job, ctx: RunContext) -> None:
    """I/O thread: the product's record, ``.done.json`` written after every one of its files."""
    p = job.product
    records = [r for part in job.done_parts for r in part.records]
    spans = [part.span for part in job.done_parts]
    reasons = list(job.review_reasons)
    reasons += dict.fromkeys(r for rec in records if rec.recolor for r in rec.recolor.review_reasons)
    result = ProductResult(
        sku=p.sku, status="needs_review" if reasons else "done",
        outputs=tag_records(listed(records, ctx.presets), job.photo),
        key=job.key, notes=[*job.notes, *work.upscale_notes(job.source_span, spans)], review_reasons=reasons,
        source_file=p.source_file, source_line=p.source_line, source_version=p.source_version,
        image_sha256=job.image_sha, source_image=p.images[0], source_preview=job.source_preview,
        generator_calls=job.generator_calls, fills_shared=job.fills_shared, run_id=job.run_id,
    )
    ctx.storage.write_bytes(f"{job.folder}/.done.json", result.model_dump_json(indent=1).encode(),
                            "application/json")
    job.done_parts, job.result = [], result


def _submit_prepare(job: _Job, pending: dict, ctx: RunContext, cache_cutout: bool = False) -> None:
    task = ctx.product_task(job.product, job.folder, job.key, job.loaded, job.cutout)
    task.draft, task.cache_cutout = job.draft, cache_cutout
    task.notes = [*job.notes, *task.notes]  # what loading said (a damaged .done.json) stays in the record
    job.loaded = job.cutout = job.draft = job.prompt = None  # the task holds the arrays now
    pending[ctx.cpu_pool().submit(work.prepare_product, task, priority=URGENT)] = ("prepare", job)


def _report(group: _Group) -> ProductResult:
    result = merge_results(group.product, group.photos, group.results)
    result.seconds = round(time.perf_counter() - group.started, 3)
    progress.emit(result)
    return result


def _fail(job: _Job, exc: Exception) -> None:
    if isinstance(exc, RunStopped):  # out of GPU memory even on the lightest plan: stop the whole run
        raise exc
    p = job.product
    base = {"sku": p.sku, "source_file": p.source_file, "source_line": p.source_line}
    if isinstance(exc, PackshotError):
        job.result = ProductResult(**base, status="failed", error=str(exc))
    else:  # a bug or an unexpected input: record it, keep the run going
        log.error("product %s failed:\n%s", p.sku, "".join(traceback.format_exception(exc)))
        error = f"internal error ({type(exc).__name__}: {exc})"
        job.result = ProductResult(**base, status="failed", error=error)


def _load_phase(job: _Job, ctx: RunContext) -> None:
    """Loader thread: decode the image, compute the content key, finish early if nothing changed; with a
    GPU segmenter, also look its cutout up in the stage cache, else make what it will ask its model."""
    product = job.product
    if not ctx.rerun.is_chosen(product.sku):  # --sku / --from-review: the others keep their files
        job.result = carried_over(product, ctx.storage, job.folder, ctx.rerun)
        return
    try:
        extra = photo_key_extra(job.photo)
        if (key := key_from_source(product, job.folder, ctx, extra)) and _reuse_previous(job, key, ctx):
            return  # the store reports it unchanged: skipped without a download (incremental.py)
        ref = product.images[0]
        # Local files: hash the bytes and check .done.json before decoding, so an unchanged
        # product costs one read and a hash (nightly reruns); a changed one decodes those same bytes.
        data = None if "://" in ref else read_local(ref, ctx.base_dir)
        unchanged = data is not None and _reuse_previous(
            job, product_key(product, hashlib.sha256(data).hexdigest(), ctx, extra), ctx
        )
        if unchanged:
            return
        s3 = ctx.s3_client() if ref.startswith("s3://") else None
        job.loaded = load_image(ref, ctx.base_dir, ctx.settings.load, s3_client=s3, data=data)
        check_loaded_product(product, job.loaded.size, ctx)  # the checks of `packshot validate`
        job.key = product_key(product, job.loaded.sha256, ctx, extra)
        if _reuse_previous(job, job.key, ctx):
            refresh_version(ctx.storage, job.folder, job.result, product)
            return
        if ctx.segment_in_pool() or work.has_source_alpha(job.loaded.alpha):
            return
        if ctx.cache is not None:
            notes: list[str] = []
            task = ctx.product_task(product, job.folder, job.key, job.loaded, None)
            job.cutout = ctx.cache.get_cutout(work.cutout_key(task, ctx.settings), notes)
            job.loaded.notes = (*job.loaded.notes, *notes)
        if job.cutout is None:  # the segmenter's CPU work before its model call: here, not under the lock
            job.prompt = model_prompt(ctx.segmenter, job.loaded.rgb, product.bbox)
    except Exception as exc:
        _fail(job, exc)


def _reuse_previous(job: _Job, key: str, ctx: RunContext) -> bool:
    """Finish ``job`` as skipped when its ``.done.json`` has ``key`` and all its files still exist (as
    done when this same run made it: an earlier attempt of a retried shard)."""
    done_key = f"{job.folder}/.done.json"
    previous = load_previous_result(ctx.storage, done_key, job.notes)  # damaged counts as absent
    if previous is None or previous.key != key \
            or not all(ctx.storage.exists(o.key) for o in previous.outputs):
        return False
    if job.run_id is not None and previous.run_id == job.run_id:
        # Made by an earlier attempt of this very run (a shard run whose worker was lost, retried):
        # this run's work, done once, even with --force; it keeps its status and generator calls.
        previous.notes = [*previous.notes, "made by an earlier attempt of this run (retried): not made again"]
        job.key, job.result = key, previous
        return True
    if ctx.rerun.force:
        return False
    previous.status = ctx.rerun.status_of_unchanged(previous)  # doubtful until approved
    previous.notes = [*previous.notes, "unchanged since the last run: reused its outputs"]
    previous.generator_calls = previous.fills_shared = 0  # nothing generated for it in this run
    job.key, job.result = key, previous
    return True
