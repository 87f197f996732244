"""Run the stages for products, without Prefect.

``process_batch(products, options)`` is what a Prefect task calls; it can also be called
directly (tests, notebooks). For each product: load the image safely, cut it out, compose
packshots for each export preset, render backgrounds and lifestyle scenes for its brand,
recolor every finished image into each color variant, encode and validate each file, and write
everything atomically. A product's ``.done.json`` is written last; a rerun whose content key
(image bytes, catalog row, settings, model identities) matches skips the product.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from packshot import progress
from packshot.config import Settings, get_settings, resolve_device
from packshot.errors import PackshotError
from packshot.manifest import OutputRecord, ProductResult
from packshot.storage import Storage, open_storage
from packshot.types import Cutout, Product, Rendered

log = logging.getLogger(__name__)

StageName = Literal["segment", "background", "lifestyle", "recolor", "export", "video"]
DEFAULT_STAGES: list[StageName] = ["segment", "background", "lifestyle", "recolor", "export"]
PIPELINE_VERSION = "1"  # bump when output-affecting code changes so cached results are redone


class RunOptions(BaseModel):
    """What to run. The same model is the CLI's options and the Prefect flow's parameters."""

    catalog: str = Field(description="catalog CSV: our format, a Shopify export or a WooCommerce export")
    out: str = Field("out/run", description="output folder or s3://bucket/prefix")
    brand: str | None = Field(None, description="brand style for rows that name none (brand_styles/<name>.yaml)")
    stages: list[StageName] = Field(default_factory=lambda: list(DEFAULT_STAGES))
    presets: list[str] | None = Field(None, description="export presets; default from settings")
    batch_size: int | None = Field(None, ge=1, description="products per task; default from settings")
    limit: int | None = Field(None, ge=1, description="process only the first N products")


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
    brands: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

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

    def identity(self) -> str:
        gen = getattr(self.generator, "identity", None) if self.generator else None
        return f"segment={self.segmenter.name};generator={gen}"


_contexts: dict[str, RunContext] = {}
_contexts_lock = threading.Lock()


def get_context(options: RunOptions, settings: Settings | None = None) -> RunContext:
    """One context per (options, settings) per process: models stay loaded across batches."""
    settings = settings or get_settings()
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
        raise PackshotError(f"unknown preset(s) {', '.join(unknown)}; known: {', '.join(sorted(all_presets))}")
    generator = None
    if {"background", "lifestyle"} & set(options.stages):
        from stages.background import get_background_generator

        generator = get_background_generator(settings.generative, device)
    return RunContext(
        settings=settings, options=options, storage=open_storage(options.out),
        base_dir=Path(options.catalog).resolve().parent, device=device,
        presets=all_presets, segmenter=get_segmenter(settings.segment, device), generator=generator,
    )


def process_batch(products: list[Product], options: RunOptions) -> list[ProductResult]:
    ctx = get_context(options)
    results = []
    for product in products:
        result = process_product(product, ctx)
        progress.emit(result)
        results.append(result)
    return results


def process_product(product: Product, ctx: RunContext) -> ProductResult:
    started = time.perf_counter()
    base = {"sku": product.sku, "source_file": product.source_file, "source_line": product.source_line}
    try:
        result = _process(product, ctx)
    except PackshotError as exc:
        result = ProductResult(**base, status="failed", error=str(exc))
    except Exception as exc:  # a bug or an unexpected input: record it, keep the run going
        log.error("product %s failed:\n%s", product.sku, traceback.format_exc())
        result = ProductResult(**base, status="failed", error=f"internal error ({type(exc).__name__}: {exc})")
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _content_key(product: Product, image_sha: str, ctx: RunContext) -> str:
    opts = ctx.options
    brand = ctx.brand(product.brand_style or opts.brand)
    presets = [ctx.presets[n].model_dump() for n in (opts.presets or ctx.settings.export.presets)]
    mask_sha = None
    if product.recolor_mask:
        mask_path = _inside(ctx.base_dir, product.recolor_mask)
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


def _process(product: Product, ctx: RunContext) -> ProductResult:
    from packshot.imageio import load_image

    folder = safe_dirname(product.sku)
    loaded = load_image(product.images[0], ctx.base_dir, ctx.settings.load)
    key = _content_key(product, loaded.sha256, ctx)
    done_key = f"{folder}/.done.json"
    if ctx.storage.exists(done_key):
        previous = ProductResult.model_validate_json(ctx.storage.read_bytes(done_key))
        if previous.key == key and all(ctx.storage.exists(o.key) for o in previous.outputs):
            previous.status = "skipped"
            previous.notes = [*previous.notes, "unchanged since the last run: reused its outputs"]
            return previous

    notes: list[str] = []
    cutout = _cut_out(product, loaded, ctx)
    notes += cutout.notes
    writer = _Writer(product, folder, ctx)
    writer.write_cutout(cutout)

    brand = ctx.brand(product.brand_style or ctx.options.brand)
    rendered = _render_all(product, cutout, brand, ctx, notes)
    if "recolor" in ctx.options.stages and product.colors:
        rendered += _recolor_all(product, rendered, ctx)
    if "export" in ctx.options.stages or "recolor" in ctx.options.stages:
        writer.write_rendered(rendered)

    result = ProductResult(
        sku=product.sku, status="done", outputs=writer.records, notes=notes, key=key,
        source_file=product.source_file, source_line=product.source_line,
    )
    ctx.storage.write_bytes(done_key, result.model_dump_json(indent=1).encode(), "application/json")
    return result


def _cut_out(product: Product, loaded, ctx: RunContext) -> Cutout:
    alpha = loaded.alpha
    if alpha is not None and (alpha < 16).mean() > 0.02 and (alpha > 240).mean() > 0.02:
        return Cutout(np.dstack([loaded.rgb, alpha]), backend="source-alpha",
                      notes=["segment: the image already had transparency; used its alpha as the cutout"])
    with ctx.lock if ctx.device.startswith("cuda") else _nullcontext():
        return ctx.segmenter.segment(loaded.rgb, product.bbox)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _render_all(product: Product, cutout: Cutout, brand, ctx: RunContext, notes: list[str]) -> list[Rendered]:
    from stages.export import compose_packshot

    opts = ctx.options
    names = opts.presets or ctx.settings.export.presets
    out = [compose_packshot(cutout, ctx.presets[n]) for n in names]
    scene_presets = _scene_presets(brand, names, ctx)
    if "background" in opts.stages and ctx.generator is not None:
        from stages.background import render_background

        for preset in scene_presets:
            out.append(render_background(cutout, product, brand, preset, ctx.generator))
    if "lifestyle" in opts.stages and ctx.generator is not None:
        if brand is None:
            notes.append("lifestyle: skipped, no brand style (set brand_style in the catalog or --brand)")
        else:
            from stages.lifestyle import render_scenes

            for preset in scene_presets:
                out.extend(render_scenes(cutout, product, brand, preset, ctx.generator))
    return out


def _scene_presets(brand, run_presets: list[str], ctx: RunContext) -> list:
    """Generated images never go to presets that forbid them (Amazon main)."""
    names = list(getattr(brand, "presets", None) or run_presets)
    return [ctx.presets[n] for n in names if n in ctx.presets and ctx.presets[n].allow_generated]


def _recolor_all(product: Product, rendered: list[Rendered], ctx: RunContext) -> list[Rendered]:
    from stages.recolor import load_material_mask, recolor

    source_mask = None
    if product.recolor_mask:
        mask_path = _inside(ctx.base_dir, product.recolor_mask)
        source_mask = load_material_mask(mask_path, None)
    out = []
    for item in rendered:
        mask = None
        if source_mask is not None and item.placement is not None:
            # The merchant's mask is drawn on the source photo: map it the way the cutout was placed.
            mask = item.placement.warp(source_mask)
        for color in product.colors:
            out.append(recolor(item, color, mask))
    return out


def _inside(base_dir: Path, ref: str) -> Path:
    path = (base_dir / ref).resolve()
    if not path.is_relative_to(base_dir.resolve()):
        raise PackshotError(f"{ref}: files must live inside the catalog's folder {base_dir}")
    return path


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
        from stages.export import check, encode

        by_preset: dict[str, list[Rendered]] = {}
        for item in items:
            by_preset.setdefault(item.preset, []).append(item)
        for preset_name, group in by_preset.items():
            preset = self.ctx.presets[preset_name]
            for position, item in enumerate(_listing_order(group, preset), start=1):
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


def _listing_order(items: list[Rendered], preset) -> list[Rendered]:
    try:
        from stages.export import order_for_listing
    except ImportError:
        return sorted(items, key=lambda r: (r.generated, r.variant or "", r.kind != "packshot"))
    return order_for_listing(items, preset)
