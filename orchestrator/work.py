"""What pool workers do for a product: prepare it (cutout, the images to make, generator inputs), then
finish it in parts, each in any worker: the cutout file, each packshot, each background or scene, each
with its recolor variants, encoded, validated and written. The parent lists the records and writes
``.done.json`` once every part is written.

Only arrays and small dataclasses cross the process boundary (:class:`ProductTask` and :class:`Part` in,
:class:`Prepared` and :class:`PartDone` out). Each worker process builds its :class:`WorkerState` once,
from the run options and settings (:func:`init_worker`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from orchestrator.options import RunOptions
from orchestrator.settings import Settings
from orchestrator.writer import ProductWriter
from packshot.cache import StageCache, array_sha, content_key
from packshot.config import GenerativeSettings
from packshot.imageio import resolve_local
from packshot.schemas.brand import BrandStyle
from packshot.schemas.results import OutputRecord
from packshot.schemas.scenes import derive_seed
from packshot.storage import Storage, open_storage
from packshot.types import Cutout, Product, Rendered
from stages.background.render import (
    DEFAULT_BACKGROUND_PROMPT,
    ImagePlan,
    duplicates_background,
    finish_product_image,
    plan_product_image,
    same_fill,
)
from stages.export import compose_packshot
from stages.lifestyle import plan_scenes
from stages.recolor import load_material_mask, recolor_variants

if TYPE_CHECKING:
    from stages.segment import Draft


@dataclass
class GeneratorSpec:
    """What a worker needs to know of the parent's generator: no model, only its inputs' shape."""

    identity: str
    generated: bool
    settings: GenerativeSettings
    sizes: dict[str, tuple[int, int]]  # preset -> generation size (w, h); empty for classic


@dataclass
class ProductTask:
    """One product for a worker. ``rgb`` ``HxWx3 uint8`` (and ``alpha`` ``HxW uint8`` or None) are the
    decoded photo; ``cutout`` is set when the parent's GPU segmenter made it already."""

    product: Product
    folder: str
    key: str
    image_sha: str
    rgb: np.ndarray | None
    alpha: np.ndarray | None
    notes: list[str]
    stages: list[str]
    presets: list[str]
    scene_presets: list[str]
    brand: BrandStyle | None
    generator: GeneratorSpec | None
    segmenter_identity: str
    segmenter_notes: list[str] = field(default_factory=list)  # what ``auto`` says about its choice
    cutout: Cutout | None = None
    draft: Draft | None = None  # the GPU segmenter's answer: finished (edges refined) here, in the pool
    size: tuple[int, int] | None = None  # the photo's (w, h): a recolor mask is mapped like the cutout
    cache_cutout: bool = False  # the parent's GPU segmenter just made ``cutout``: store it


@dataclass
class FillJob:
    """A generator call still to be made (by the GPU holder), and its stage-cache entry."""

    index: int  # into Prepared.images
    stage: str  # "background" or "scenes"
    cache_key: str


@dataclass
class ImageWork:
    """A background or scene to finish. Generative backends get their ``plan`` (with the fill request)
    while preparing; classic ones are planned by the worker that finishes them."""

    kind: str  # "background" or "scene"
    preset: str
    template: str
    seed: int
    scene: int | None
    plan: ImagePlan | None = None


@dataclass
class Prepared:
    """A prepared product: its cutout, the images to finish and the generator calls they still need."""

    task: ProductTask
    cutout: Cutout | None = None
    images: list[ImageWork] = field(default_factory=list)
    fills: dict[int, tuple[np.ndarray, list[str]]] = field(default_factory=dict)  # cached (rgb, notes)
    jobs: list[FillJob] = field(default_factory=list)
    shared: dict[int, int] = field(default_factory=dict)  # image index -> the image whose fill it reuses
    notes: list[str] = field(default_factory=list)
    cache_events: list[tuple[str, bool]] = field(default_factory=list)
    cutout_key: str | None = None  # set when the cutout is new and belongs in the stage cache
    source_span: int = 1  # the product's long side in its photo (px), for the upscale note
    done: PartDone | None = None  # the cutout is the only output: already written here
    review_reasons: list[str] = field(default_factory=list)  # why the cutout needs a person's look
    source_preview: str | None = None  # key of the photo's preview (review page), written here


@dataclass
class Part:
    """One piece of a product's finishing, for one worker: the cutout file, a packshot, or an image;
    each with its recolor variants, encoded, validated and written."""

    task: ProductTask
    kind: str  # "cutout", "packshot" or "image"
    preset: str | None = None
    cutout: Cutout | None = None
    image: ImageWork | None = None
    fill: tuple[np.ndarray, list[str]] | None = None
    fill_job: FillJob | None = None
    cutout_key: str | None = None


@dataclass
class PartDone:
    records: list[OutputRecord]
    span: int | None = None  # the product's long side in the original-color image (px)


@dataclass
class WorkerState:
    settings: Settings
    options: RunOptions
    storage: Storage
    presets: dict
    base_dir: Path
    cache: StageCache | None
    _segmenter: object | None = None
    _classic: object | None = None

    @classmethod
    def build(cls, options: RunOptions, settings: Settings, presets: dict) -> WorkerState:
        storage = open_storage(options.out)
        return cls(settings=settings, options=options, storage=storage, presets=presets,
                   base_dir=Path(options.catalog).resolve().parent,
                   cache=StageCache(storage, record_events=True) if settings.orchestration.stage_cache
                   else None)

    def segmenter(self):
        if self._segmenter is None:
            from stages.segment.classic import ClassicSegmenter

            self._segmenter = ClassicSegmenter(self.settings.segment)  # the only one that runs in the pool
        return self._segmenter

    def classic_generator(self):
        if self._classic is None:
            from stages.background import ClassicGenerator

            self._classic = ClassicGenerator(self.settings.generative)
        return self._classic


_state: WorkerState | None = None
_states: dict[str, WorkerState] = {}  # run key -> its state, most recent last (see in_run)
KEPT_STATES = 2  # runs whose state a worker keeps: a resident worker serves run after run


def init_process() -> None:
    """Pool initializer: one worker is one core, so OpenCV and numba (pymatting) run single-threaded
    here, instead of every worker starting a thread per core."""
    cv2.setNumThreads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except ImportError:  # pragma: no cover - numba comes with pymatting
        pass


def init_worker(options: RunOptions, settings: Settings, presets: dict,
                environ: dict[str, str] | None = None) -> None:
    """This process's state for one run, from the run options and settings. ``environ``: the
    environment of the process that submitted the run's work (credentials such as ``AWS_*``):
    workers fork from a server started earlier, whose environment may be older."""
    global _state
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    init_process()
    _state = WorkerState.build(options, settings, presets)


def in_run(key: str, init: tuple, fn, *args):
    """``fn(*args)`` with the state of run ``key`` (built on first use from ``init``, the arguments of
    :func:`init_worker`): one pool of worker processes serves every run of a process, so a resident
    GPU worker does not start (and leak) a pool per run."""
    global _state
    state = _states.pop(key, None)
    if state is None:
        init_worker(*init)
        state = _state
    elif state is not _state and init[3] is not None:  # back to another run: its environment too
        os.environ.clear()
        os.environ.update(init[3])
    _states[key] = _state = state
    while len(_states) > KEPT_STATES:
        _states.pop(next(iter(_states)))
    return fn(*args)


def prepare_product(task: ProductTask, state: WorkerState | None = None) -> Prepared:
    """Cutout (given, cached or classic), the images to make, their plans and cached fills for
    generative backends."""
    state = state or _state
    prep = Prepared(task, notes=list(task.notes))
    if task.cutout is None and task.draft is not None:  # finished here, off the card (segment.sam_draft)
        task.cutout, task.draft = task.draft.finish(task.rgb), None
    prep.cutout = task.cutout or _cut_out(task, state, prep)
    prep.review_reasons = list(prep.cutout.review_reasons)
    writer = ProductWriter(task.product, task.folder, state.storage, state.presets)
    prep.source_preview = writer.write_source_preview(task.rgb)
    if task.cache_cutout and state.cache is not None:
        prep.cutout_key = cutout_key(task, state.settings)
    task.rgb = task.alpha = task.cutout = None  # the photo is not needed any more: do not send it back
    prep.notes += prep.cutout.notes
    x0, y0, x1, y1 = prep.cutout.bbox
    prep.source_span = max(x1 - x0, y1 - y0, 1)
    if {"export", "recolor"} & set(task.stages):
        _plan_images(prep, state)
    else:  # one part only: write it here rather than send the cutout back and out again
        (only,) = parts(prep, {})
        prep.done, prep.cutout = finish_part(only, state), None
    if state.cache is not None:
        prep.cache_events = state.cache.drain()
    return prep


def has_source_alpha(alpha: np.ndarray | None) -> bool:
    """The photo already has a usable transparency (a cutout made elsewhere)."""
    return alpha is not None and (alpha < 16).mean() > 0.02 and (alpha > 240).mean() > 0.02


def _cut_out(task: ProductTask, state: WorkerState, prep: Prepared) -> Cutout:
    if has_source_alpha(task.alpha):
        return Cutout(np.dstack([task.rgb, task.alpha]), backend="source-alpha",
                      notes=["segment: the image already had transparency; used its alpha as the cutout"])
    key = cutout_key(task, state.settings)
    if state.cache is not None and (cached := state.cache.get_cutout(key, prep.notes)) is not None:
        return cached
    cutout = state.segmenter().segment(task.rgb, task.product.bbox)
    cutout.notes.extend(task.segmenter_notes)
    prep.cutout_key = key if state.cache is not None else None  # stored with cutout.png when finishing
    return cutout


def cutout_key(task: ProductTask, settings: Settings) -> str:
    return content_key("cutout", image=task.image_sha, bbox=task.product.bbox, settings=settings.segment,
                       segmenter=task.segmenter_identity)


def _plan_images(prep: Prepared, state: WorkerState) -> None:
    """Plans of the backgrounds and scenes for the brand's presets; fill requests for the generator."""
    task, product, brand, spec = prep.task, prep.task.product, prep.task.brand, prep.task.generator
    if spec is None:
        return
    wanted = []
    if "background" in task.stages:
        template = brand.background_prompt if brand else DEFAULT_BACKGROUND_PROMPT
        seed = derive_seed(product.sku, None, brand.seed if brand else 0)
        wanted.append(("background", template, seed, None))
    if "lifestyle" in task.stages:
        if brand is None:
            prep.notes.append("lifestyle: skipped, no brand style (set brand_style in the catalog or "
                              "--brand)")
        else:
            wanted += [("scene", p.template, p.seed, p.index) for p in plan_scenes(product, brand)]
    for name in task.scene_presets:
        preset = state.presets[name]
        for kind, template, seed, scene in wanted:
            if "background" in task.stages and duplicates_background(spec.generated, kind, scene):
                prep.notes.append(f"lifestyle: scene {scene + 1} for {name} not rendered: without a "
                                  "generative model it would be byte-identical to the background image")
                continue
            image = ImageWork(kind, name, template, seed, scene)
            prep.images.append(image)
            if spec.generated:
                image.plan = plan_product_image(prep.cutout, product, brand, preset, spec.settings, template,
                                                seed, kind=kind, scene=scene, gen_size=spec.sizes[name])
                image.plan.backdrop = None  # the generator replaces it; not worth sending around
                index = len(prep.images) - 1
                owner = _shared_fill(prep, image.plan) if state.settings.orchestration.share_fills else None
                if owner is None:
                    _request_fill(prep, index, image.plan, state)
                else:  # another preset of this size asks for the same image: generated once, fitted to each
                    prep.shared[index] = owner


def _shared_fill(prep: Prepared, plan: ImagePlan) -> int | None:
    """The earlier image of the product whose fill request ``plan``'s equals (:func:`same_fill`), if any."""
    for index, other in enumerate(prep.images[:-1]):
        if index not in prep.shared and other.plan is not None and same_fill(other.plan.fill, plan.fill):
            return index
    return None


def _request_fill(prep: Prepared, index: int, plan: ImagePlan, state: WorkerState) -> None:
    request, brand, spec = plan.fill, prep.task.brand, prep.task.generator
    stage = "background" if plan.kind == "background" else "scenes"
    key = content_key(stage, image=array_sha(request.image), mask=array_sha(request.mask),
                      prompt=request.prompt, seed=request.seed,
                      lora=brand.lora.model_dump() if brand and brand.lora else None,
                      settings=spec.settings, generator=spec.identity)
    cached = state.cache.get_fill(stage, key, prep.notes) if state.cache is not None else None
    if cached is not None:
        prep.fills[index] = cached
    else:
        prep.jobs.append(FillJob(index, stage, key))


def parts(prep: Prepared, fills: dict[int, tuple[np.ndarray, list[str]]]) -> list[Part]:
    """The finishing work of a prepared product, in the order its records are listed."""
    task = prep.task
    out = [Part(task, "cutout", cutout=prep.cutout, cutout_key=prep.cutout_key)]
    if {"export", "recolor"} & set(task.stages):
        out += [Part(task, "packshot", preset=name, cutout=prep.cutout) for name in task.presets]
        fills = {**prep.fills, **fills}
        jobs = {job.index: job for job in prep.jobs}
        for i, image in enumerate(prep.images):
            out.append(Part(task, "image", preset=image.preset, image=image,
                            fill=fills.get(prep.shared.get(i, i)),
                            fill_job=jobs.get(i), cutout=None if image.plan is not None else prep.cutout))
    return out


def finish_part(part: Part, state: WorkerState | None = None) -> PartDone:
    """Make, recolor, encode, validate and write one part (see :class:`Part`)."""
    state = state or _state
    task, product = part.task, part.task.product
    writer = ProductWriter(product, task.folder, state.storage, state.presets)
    if part.kind == "cutout":
        png = writer.write_cutout(part.cutout)
        if part.cutout_key is not None and state.cache is not None:
            state.cache.put_cutout(part.cutout_key, part.cutout, png)
        return PartDone(writer.records)
    if part.kind == "packshot":
        item = compose_packshot(part.cutout, state.presets[part.preset])
    else:
        item = _finish_image(part, state)
    span = _span(item.product_alpha)
    items = [item]
    if "recolor" in task.stages and product.colors:
        items += _recolor(product, item, state, task.size)
    for one in items:
        writer.write_item(one)
    return PartDone(writer.records, span)


def _finish_image(part: Part, state: WorkerState) -> Rendered:
    image, task = part.image, part.task
    if image.plan is None:  # classic: planned here, no model
        plan = plan_product_image(part.cutout, task.product, task.brand, state.presets[image.preset],
                                  task.generator.settings, image.template, image.seed, kind=image.kind,
                                  scene=image.scene)
        return finish_product_image(plan, None, state.classic_generator().use_brand(task.brand))
    if part.fill_job is not None and state.cache is not None:
        state.cache.put_fill(part.fill_job.stage, part.fill_job.cache_key, *part.fill)
    filled, model_notes = part.fill
    return finish_product_image(image.plan, filled, model_notes)


def _span(alpha: np.ndarray) -> int | None:
    """The long side of the product (alpha > 8) in an image, as max(ptp x, ptp y); None when empty."""
    _, _, w, h = cv2.boundingRect((alpha > 8).view(np.uint8))
    return max(w - 1, h - 1) if w else None


def upscale_notes(source: int, spans: list[int | None]) -> list[str]:
    """Warn when the photo is too small for the outputs: upscaled products look soft when zoomed.
    ``source``: the product's long side in its photo; ``spans``: its long side in each output."""
    worst = max([s / max(source, 1) for s in spans if s is not None], default=0.0)
    if worst <= 2.0:
        return []
    return [f"the product spans only {source} px in its photo and is upscaled {worst:.1f}x in the largest "
            "output; supply a larger photo for sharp zoom"]


def _recolor(product: Product, item: Rendered, state: WorkerState,
             size: tuple[int, int] | None) -> list[Rendered]:
    mask = None
    if product.recolor_mask and item.placement is not None:
        # The merchant's mask is drawn on the source photo: map it the way the cutout was placed.
        mask_path = resolve_local(product.recolor_mask, state.base_dir)
        source_mask = load_material_mask(mask_path, size)  # the photo's size: mapped like the cutout
        mask = item.placement.warp(source_mask)
    # finds the material and the product's own color once per image
    return recolor_variants(item, product.colors, mask, product=product, mode=state.settings.recolor.mode)
