"""Render a product into its brand's scenes."""

from __future__ import annotations

from packshot.types import Cutout, Product, Rendered
from stages.background.generators import BackgroundGenerator
from stages.background.render import derive_seed, render_product_image
from stages.export.presets import Preset
from stages.lifestyle.brand import BrandStyle


def render_scenes(
    cutout: Cutout, product: Product, brand: BrandStyle, preset: Preset, generator: BackgroundGenerator
) -> list[Rendered]:
    """``brand.scenes_per_product`` images (``kind="scene"``, ``scene=0..n-1``), cycling through the
    brand's scene prompts; each scene's seed comes from the SKU, the scene index and the brand seed,
    so a rerun reproduces it. Without a generative model the scenes are palette backdrops in
    different styles (sweep, two-tone, glow)."""
    scenes = []
    for i in range(brand.scenes_per_product):
        template = brand.scene_prompts[i % len(brand.scene_prompts)]
        seed = derive_seed(product.sku, i, brand.seed_for(i))
        scenes.append(render_product_image(cutout, product, brand, preset, generator, template, seed,
                                           kind="scene", scene=i))
    return scenes
