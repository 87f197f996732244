"""What a pool worker does for one product: prepare it (cutout, image plans, generator inputs), then
finish it (generated backgrounds, packshots, recolors, encode, validate, write, ``.done.json`` last).

Only arrays and small dataclasses cross the process boundary (:class:`ProductTask` in,
:class:`Prepared` / :class:`~packshot.schemas.results.ProductResult` out). Each worker process builds
its :class:`WorkerState` once, from the run options and settings (:func:`init_worker`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from orchestrator.options import RunOptions
from orchestrator.settings import Settings
from orchestrator.writer import ProductWriter
from packshot.cache import StageCache, array_sha, content_key
from packshot.config import GenerativeSettings
from packshot.imageio import resolve_local
from packshot.schemas.brand import BrandStyle
from packshot.schemas.results import ProductResult
from packshot.schemas.scenes import derive_seed
from packshot.storage import Storage, open_storage
from packshot.types import Cutout, Product, Rendered
from stages.background.render import (
    DEFAULT_BACKGROUND_PROMPT,
    ImagePlan,
    duplicates_background,
    finish_product_image,
    plan_product_image,
)
from stages.export import compose_packshot
from stages.lifestyle import plan_scenes
from stages.recolor import load_material_mask, recolor_variants


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
    cache_cutout: bool = False  # the parent's GPU segmenter just made ``cutout``: store it


@dataclass
class FillJob:
    """A generator call still to be made (by the GPU holder), and its stage-cache entry."""

    index: int  # into Prepared.plans
    stage: str  # "background" or "scenes"
    cache_key: str


@dataclass
class Prepared:
    """A prepared product: ``result`` is set when nothing was left for the GPU (finished here)."""

    task: ProductTask
    cutout: Cutout | None = None
    plans: list[ImagePlan] = field(default_factory=list)
    fills: dict[int, tuple[np.ndarray, list[str]]] = field(default_factory=dict)  # plan index -> (rgb, notes)
    jobs: list[FillJob] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cache_events: list[tuple[str, bool]] = field(default_factory=list)
    cutout_key: str | None = None  # set when the cutout is new and belongs in the stage cache
    result: ProductResult | None = None


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


def init_worker(options: RunOptions, settings: Settings, presets: dict) -> None:
    """Pool initializer: this process's state, built once. One worker is one core: OpenCV and numba
    (pymatting) run single-threaded here, instead of every worker starting a thread per core."""
    global _state
    cv2.setNumThreads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except ImportError:  # pragma: no cover - numba comes with pymatting
        pass
    _state = WorkerState.build(options, settings, presets)


def prepare_product(task: ProductTask, state: WorkerState | None = None) -> Prepared:
    """Cutout (given, cached or classic), image plans, cached fills; finishes the product right here
    when no generator call is left."""
    state = state or _state
    prep = Prepared(task, notes=list(task.notes))
    prep.cutout = task.cutout or _cut_out(task, state, prep)
    if task.cache_cutout and state.cache is not None:
        prep.cutout_key = cutout_key(task, state.settings)
    task.rgb = task.alpha = task.cutout = None  # the photo is not needed any more: do not send it back
    prep.notes += prep.cutout.notes
    if {"export", "recolor"} & set(task.stages):
        _plan_images(prep, state)
    if state.cache is not None:
        prep.cache_events = state.cache.drain()
    if not prep.jobs:
        prep.result = finish_product(prep, {}, state)
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
            plan = plan_product_image(prep.cutout, product, brand, preset, spec.settings, template, seed,
                                      kind=kind, scene=scene, gen_size=spec.sizes.get(name))
            prep.plans.append(plan)
            if plan.fill is not None:
                plan.backdrop = None  # the generator replaces it; not worth sending around
                _request_fill(prep, len(prep.plans) - 1, plan, state)


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


def finish_product(prep: Prepared, fills: dict[int, tuple[np.ndarray, list[str]]],
                   state: WorkerState | None = None) -> ProductResult:
    """Everything after the generator: finished images, packshots, recolors; files, ``.done.json`` last."""
    state = state or _state
    task, product = prep.task, prep.task.product
    if state.cache is not None:
        for job in prep.jobs:
            state.cache.put_fill(job.stage, job.cache_key, *fills[job.index])
    fills = {**prep.fills, **fills}
    rendered: list[Rendered] = []
    writer = ProductWriter(product, task.folder, state.storage, state.presets)
    png = writer.write_cutout(prep.cutout)
    if prep.cutout_key is not None and state.cache is not None:
        state.cache.put_cutout(prep.cutout_key, prep.cutout, png)
    notes = list(prep.notes)
    if {"export", "recolor"} & set(task.stages):
        rendered = [compose_packshot(prep.cutout, state.presets[n]) for n in task.presets]
        classic = state.classic_generator()
        for i, plan in enumerate(prep.plans):
            filled, model_notes = fills[i] if plan.fill is not None else (None, classic.use_brand(task.brand))
            rendered.append(finish_product_image(plan, filled, model_notes))
        notes += upscale_notes(prep.cutout, rendered)
        if "recolor" in task.stages and product.colors:
            rendered += _recolor_all(product, rendered, state)
        writer.write_rendered(rendered)
    result = ProductResult(sku=product.sku, status="done", outputs=writer.records, notes=notes, key=task.key,
                           source_file=product.source_file, source_line=product.source_line)
    state.storage.write_bytes(f"{task.folder}/.done.json", result.model_dump_json(indent=1).encode(),
                              "application/json")
    return result


def upscale_notes(cutout: Cutout, rendered: list[Rendered]) -> list[str]:
    """Warn when the photo is too small for the outputs: upscaled products look soft when zoomed."""
    x0, y0, x1, y1 = cutout.bbox
    source = max(x1 - x0, y1 - y0)
    worst = 0.0
    for item in rendered:
        _, _, w, h = cv2.boundingRect((item.product_alpha > 8).view(np.uint8))  # span - 1 = ptp
        if w:
            worst = max(worst, max(w - 1, h - 1) / max(source, 1))
    if worst <= 2.0:
        return []
    return [f"the product spans only {source} px in its photo and is upscaled {worst:.1f}x in the largest "
            "output; supply a larger photo for sharp zoom"]


def _recolor_all(product: Product, rendered: list[Rendered], state: WorkerState) -> list[Rendered]:
    source_mask = None
    if product.recolor_mask:
        source_mask = load_material_mask(resolve_local(product.recolor_mask, state.base_dir), None)
    out = []
    for item in rendered:
        mask = None
        if source_mask is not None and item.placement is not None:
            # The merchant's mask is drawn on the source photo: map it the way the cutout was placed.
            mask = item.placement.warp(source_mask)
        out += recolor_variants(item, product.colors, mask)  # finds the material once per image
    return out
