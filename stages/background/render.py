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

from packshot.config import GenerativeSettings
from packshot.imaging import Placement, apply_shadow, composite, contact_shadow, place_product
from packshot.schemas.brand import BrandStyle
from packshot.schemas.presets import Preset
from packshot.schemas.scenes import ScenePlan, derive_seed
from packshot.types import Cutout, Product, Rendered
from stages.background.classic import studio_backdrop
from stages.background.compose import finish_generated, protected_region, solid_core
from stages.background.generators import BackgroundGenerator, FillRequest

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
    """Plan, fill (generative backends) and finish one image in this process."""
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
    """One image per ``(template, seed, kind, scene index)`` shot: planned, generated together (one
    :meth:`fill_batch` for generative backends) and finished, in this process."""
    gen_size = generator.generation_size(preset.width, preset.height) if generator.generated else None
    plans = [plan_product_image(cutout, product, brand, preset, generator.settings, template, seed,
                                kind=kind, scene=scene, gen_size=gen_size)
             for template, seed, kind, scene in shots]
    notes = generator.use_brand(brand)
    filled: list[np.ndarray | None] = [None] * len(plans)
    if generator.generated:
        filled = fill_plans(generator, [plan.fill for plan in plans])
    return [finish_product_image(plan, image, notes) for plan, image in zip(plans, filled, strict=True)]


def fill_plans(generator: BackgroundGenerator, requests: list[FillRequest]) -> list[np.ndarray]:
    """The generator's images for ``requests``, in order: one ``fill_batch`` per generation size when
    the backend batches, else one ``fill`` each."""
    batch = getattr(generator, "fill_batch", None)
    if batch is None:
        return [generator.fill(r.image, r.mask, r.prompt, r.seed) for r in requests]
    out: list[np.ndarray | None] = [None] * len(requests)
    by_size: dict[tuple, list[int]] = {}
    for i, request in enumerate(requests):
        by_size.setdefault(request.mask.shape, []).append(i)
    for indices in by_size.values():
        for i, image in zip(indices, batch([requests[i] for i in indices]), strict=True):
            out[i] = image
    return out


@dataclass
class ImagePlan:
    """An image before (and without) its model call: the placed product, the backdrop, and for
    generative backends the fill request plus what finishing needs (protected region, solid core)."""

    kind: str
    preset: str
    scene: int | None
    placement: Placement
    backdrop: np.ndarray
    shadow_strength: float
    fill: FillRequest | None = None
    protect: np.ndarray | None = None
    core: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def plan_product_image(
    cutout: Cutout,
    product: Product,
    brand: BrandStyle | None,
    preset: Preset,
    settings: GenerativeSettings,
    template: str,
    seed: int,
    *,
    kind: str,
    scene: int | None,
    gen_size: tuple[int, int] | None = None,
) -> ImagePlan:
    """Everything of an image that needs no model; ``gen_size`` (w, h) for generative backends, None
    for the classic one (the backdrop is then the background)."""
    size = (preset.width, preset.height)
    fill = brand.fill_fraction if brand and brand.fill_fraction else settings.fill_fraction
    floor_line = brand.floor_line if brand and brand.floor_line else settings.floor_line
    placement = place_product(cutout, size, fill, anchor="floor", floor_line=floor_line)
    palette = brand.palette if brand else None
    index = scene or 0
    backdrop = studio_backdrop(*size, palette, style=index if kind == "scene" else 0,
                               floor_line=floor_line, variant=index)
    plan = ImagePlan(kind, preset.name, scene, placement, backdrop, settings.shadow_strength)
    if gen_size is not None:
        product_rgb, alpha = placement.layer()
        prompt = build_prompt(template, product, brand)
        guide = cv2.resize(composite(backdrop, product_rgb, alpha), gen_size, interpolation=cv2.INTER_AREA)
        plan.protect = protected_region(alpha, gen_size, settings.mask_grow_px)
        plan.core = solid_core(alpha, gen_size)
        plan.fill = FillRequest(guide, ~plan.protect, prompt, seed)
        plan.notes = [f"seed {seed}", f"prompt: {prompt}"]
    return plan


def finish_product_image(plan: ImagePlan, filled: np.ndarray | None, model_notes: list[str]) -> Rendered:
    """The finished image from its plan and, for generative backends, the generator's output
    (generation size); ``model_notes`` are what activating the brand on the generator said."""
    product_rgb, alpha = plan.placement.layer()
    if plan.fill is not None:
        if filled is None:
            raise ValueError(f"{plan.kind} for {plan.preset}: the generated image is missing")
        w, h = plan.placement.canvas_size
        background = finish_generated(filled, plan.fill.image, plan.protect, plan.core, (w, h))
    else:
        background = plan.backdrop
    background = apply_shadow(background, contact_shadow(plan.placement, strength=plan.shadow_strength))
    out = composite(background, product_rgb, alpha)
    return Rendered(out, alpha, kind=plan.kind, preset=plan.preset, generated=plan.fill is not None,
                    scene=plan.scene, notes=[*model_notes, *plan.notes], placement=plan.placement)


FILL_SHARE_EDGE_PX = 1  # how far (generation pixels) from the mask's edge two shared requests may differ


def same_fill(a: FillRequest, b: FillRequest, edge_px: int = FILL_SHARE_EDGE_PX) -> bool:
    """True when ``b`` would generate the image ``a`` generates, so one generator call serves both:
    same size, prompt and seed, and masks (``HxW bool``) that differ only within ``edge_px`` of
    ``a``'s mask edge. Presets of one aspect ratio place the product at the same fraction of the
    canvas, so their requests differ only by resampling at the product's edge (under 0.1% of the
    pixels at 1024 px); each preset then finishes the shared image with its own protected region,
    and the product is pasted back through its own matte, byte for byte."""
    if a.mask.shape != b.mask.shape or a.prompt != b.prompt or a.seed != b.seed:
        return False
    differ = a.mask != b.mask
    if not differ.any():
        return True
    kernel = np.ones((2 * edge_px + 1, 2 * edge_px + 1), np.uint8)
    mask = a.mask.astype(np.uint8)
    edge = cv2.dilate(mask, kernel) != cv2.erode(mask, kernel)
    return not (differ & ~edge).any()


def duplicates_background(generated: bool, kind: str, scene: int | None) -> bool:
    """True for the classic scene that would be byte-identical to the background image: without a
    model, scene index 0 draws the background's own backdrop (style 0, variant 0) and shadow."""
    return not generated and kind == "scene" and not scene
