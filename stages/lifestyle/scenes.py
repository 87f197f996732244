"""Plan a product's scenes in its brand's style: which prompt and seed each scene gets.

The background stage renders each plan (placement, generative fill, paste-back); this stage only
decides what the scenes are, so a brand's look is data, not code.
"""

from __future__ import annotations

from packshot.schemas.brand import BrandStyle
from packshot.schemas.scenes import ScenePlan, derive_seed
from packshot.types import Product


def plan_scenes(product: Product, brand: BrandStyle) -> list[ScenePlan]:
    """``brand.scenes_per_product`` plans (``index`` 0..n-1), cycling through the brand's scene prompts;
    each seed comes from the SKU, the scene index and the brand seed, so a rerun reproduces it."""
    return [
        ScenePlan(template=brand.scene_prompts[i % len(brand.scene_prompts)],
                  seed=derive_seed(product.sku, i, brand.seed_for(i)), index=i)
        for i in range(brand.scenes_per_product)
    ]
