"""Render a product on a new background (kind "background") or in a brand scene (kind "scene").

Steps: place the cutout on the preset's canvas (standing on the floor line), draw a palette
backdrop, let the generator fill everything outside the product (generative backends), undo the
VAE color drift, fill the product area from the new background, add a contact shadow and paste
the original product back through its matte. Pixels where the matte is 255 are copied from the
placed cutout byte for byte, whatever the model did.
"""

from __future__ import annotations

import cv2
import numpy as np

from packshot.imaging import apply_shadow, composite, contact_shadow, place_product
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
    notes = generator.use_brand(brand)
    if generator.generated:
        prompt = build_prompt(template, product, brand)
        background = _generate(generator, backdrop, product_rgb, alpha, prompt, seed)
        notes = [*notes, f"seed {seed}", f"prompt: {prompt}"]
    else:
        background = backdrop
    background = apply_shadow(background, contact_shadow(placement, strength=settings.shadow_strength))
    out = composite(background, product_rgb, alpha)
    return Rendered(out, alpha, kind=kind, preset=preset.name, generated=generator.generated,
                    scene=scene, notes=notes, placement=placement)


def _generate(generator, backdrop, product_rgb, alpha, prompt: str, seed: int) -> np.ndarray:
    """Background for the full canvas from the generator (``HxWx3 uint8``, canvas size)."""
    h, w = alpha.shape
    gen_size = generator.generation_size(w, h)
    guide = cv2.resize(composite(backdrop, product_rgb, alpha), gen_size, interpolation=cv2.INTER_AREA)
    protect = protected_region(alpha, gen_size, generator.settings.mask_grow_px)
    generated = generator.fill(guide, ~protect, prompt, seed)
    return finish_generated(generated, guide, protect, solid_core(alpha, gen_size), (w, h))
