"""Render a product on a new background (kind "background") or in a brand scene (kind "scene").

Steps: place the cutout on the preset's canvas (standing on the floor line), draw a palette
backdrop, let the generator fill everything outside the product (generative backends), undo the
VAE color drift, fill the product area from the new background, add a contact shadow and paste
the original product back through its matte. Pixels where the matte is 255 are copied from the
placed cutout byte for byte, whatever the model did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from packshot.imaging import Placement, apply_shadow, composite, contact_shadow, place_product
from packshot.schemas.brand import BrandStyle
from packshot.schemas.presets import Preset
from packshot.schemas.scenes import ScenePlan, derive_seed
from packshot.types import Cutout, Product, Rendered
from stages.background.classic import studio_backdrop
from stages.background.compose import finish_generated, protected_region, solid_core
from stages.background.generators import BackgroundGenerator

DEFAULT_BACKGROUND_PROMPT = (
    "professional product photograph of {title}, standing on a clean studio surface, soft diffused "
    "light, neutral seamless background, high detail"
)


def build_prompt(template: str, product: Product, brand: BrandStyle | None) -> str:
    """Fill ``{title}``/``{category}``/``{sku}``/``{brand}``; the title is prepended when the template
    does not mention it, and the LoRA's trigger words lead the prompt."""
    values = {"title": product.title, "category": product.category or "product", "sku": product.sku,
              "brand": brand.name if brand else ""}
    text = template.format_map(values)
    if "{title}" not in template:
        text = f"{product.title}, {text}"
    if product.category and "{category}" not in template:
        text = f"{text}, {product.category}"
    if brand is not None and brand.lora is not None and brand.lora.trigger_words:
        text = f"{', '.join(brand.lora.trigger_words)}, {text}"
    return text


def render_background(
    cutout: Cutout,
    product: Product,
    brand: BrandStyle | None,
    preset: Preset,
    generator: BackgroundGenerator,
    scene: ScenePlan | None = None,
) -> Rendered:
    """The product on a new background for ``preset``: the brand's background (``kind="background"``),
    or, given a lifestyle stage's ``scene`` plan, that scene (``kind="scene"``)."""
    if scene is not None:
        return render_product_image(cutout, product, brand, preset, generator, scene.template, scene.seed,
                                    kind="scene", scene=scene.index)
    template = brand.background_prompt if brand else DEFAULT_BACKGROUND_PROMPT
    seed = derive_seed(product.sku, None, brand.seed if brand else 0)
    return render_product_image(cutout, product, brand, preset, generator, template, seed,
                                kind="background", scene=None)


def render_backgrounds(
    cutout: Cutout,
    product: Product,
    brand: BrandStyle | None,
    preset: Preset,
    generator: BackgroundGenerator,
    scenes: list[ScenePlan | None],
) -> list[Rendered]:
    """:func:`render_background` for several shots of one product (``None``: the background, else a
    scene plan) in one :meth:`~stages.background.generators.FluxFillGenerator.fill_batch`: one
    pipeline call per ``speed.batch_size`` images, each with its own seed, so an image equals the
    one :func:`render_background` gives up to floating-point rounding."""
    shots = []
    for scene in scenes:
        if scene is not None:
            shots.append((scene.template, scene.seed, "scene", scene.index))
        else:
            template = brand.background_prompt if brand else DEFAULT_BACKGROUND_PROMPT
            seed = derive_seed(product.sku, None, brand.seed if brand else 0)
            shots.append((template, seed, "background", None))
    return render_product_images(cutout, product, brand, preset, generator, shots)


def render_product_image(
    cutout: Cutout,
    product: Product,
    brand: BrandStyle | None,
    preset: Preset,
    generator: BackgroundGenerator,
    template: str,
    seed: int,
    *,
    kind: str,
    scene: int | None,
) -> Rendered:
    shots = [(template, seed, kind, scene)]
    return render_product_images(cutout, product, brand, preset, generator, shots)[0]


def render_product_images(
    cutout: Cutout,
    product: Product,
    brand: BrandStyle | None,
    preset: Preset,
    generator: BackgroundGenerator,
    shots: list[tuple[str, int, str, int | None]],
) -> list[Rendered]:
    """One image per ``(template, seed, kind, scene index)`` shot, generated together."""
    notes = generator.use_brand(brand)
    jobs = [_prepare(cutout, product, brand, preset, generator, *shot) for shot in shots]
    if generator.generated:
        generated = generator.fill_batch([(j.guide, ~j.protect, j.prompt, j.seed) for j in jobs])
        for job, image in zip(jobs, generated, strict=True):
            h, w = job.alpha.shape
            core = solid_core(job.alpha, job.gen_size)
            job.background = finish_generated(image, job.guide, job.protect, core, (w, h))
            job.notes = [f"seed {job.seed}", f"prompt: {job.prompt}"]
    strength = generator.settings.shadow_strength
    return [
        Rendered(composite(apply_shadow(job.background, contact_shadow(job.placement, strength=strength)),
                           job.product_rgb, job.alpha),
                 job.alpha, kind=job.kind, preset=preset.name, generated=generator.generated,
                 scene=job.scene, notes=[*notes, *job.notes], placement=job.placement)
        for job in jobs
    ]


@dataclass
class _Job:
    """One image between placement and generation: the canvas-size backdrop and, for generative
    backends, the generation-size guide (``HxWx3 uint8``) and protected product area (``HxW bool``)."""

    placement: Placement
    product_rgb: np.ndarray
    alpha: np.ndarray
    background: np.ndarray
    seed: int
    kind: str
    scene: int | None
    prompt: str = ""
    guide: np.ndarray | None = None
    protect: np.ndarray | None = None
    gen_size: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)


def _prepare(cutout, product, brand, preset, generator, template, seed, kind, scene) -> _Job:
    settings = generator.settings
    size = (preset.width, preset.height)
    fill = brand.fill_fraction if brand and brand.fill_fraction else settings.fill_fraction
    floor_line = brand.floor_line if brand and brand.floor_line else settings.floor_line
    placement = place_product(cutout, size, fill, anchor="floor", floor_line=floor_line)
    product_rgb, alpha = placement.layer()
    palette = brand.palette if brand else None
    index = scene or 0
    backdrop = studio_backdrop(*size, palette, style=index if kind == "scene" else 0,
                               floor_line=floor_line, variant=index)
    job = _Job(placement, product_rgb, alpha, backdrop, seed, kind, scene)
    if generator.generated:
        h, w = alpha.shape
        job.gen_size = generator.generation_size(w, h)
        job.prompt = build_prompt(template, product, brand)
        job.guide = cv2.resize(composite(backdrop, product_rgb, alpha), job.gen_size,
                               interpolation=cv2.INTER_AREA)
        job.protect = protected_region(alpha, job.gen_size, settings.mask_grow_px)
    return job
