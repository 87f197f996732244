"""Replace the product photo's background (FLUX.1 Fill, or classic studio backdrops without a model).

``get_background_generator(settings, device)`` picks the backend (``flux2-klein``, ``flux``,
``classic``, ``tiny``, ``tiny-klein``, ``auto``);
``render_background(cutout, product, brand, preset, generator)`` returns a
:class:`~packshot.types.Rendered` whose fully opaque product pixels equal the placed cutout's;
``render_backgrounds(..., scenes)`` renders a product's background and scenes in one batched fill.
"""

from stages.background.generators import (
    BackgroundGenerator,
    ClassicGenerator,
    FluxFillGenerator,
    get_background_generator,
)
from stages.background.klein import Flux2KleinGenerator  # registers flux2-klein in the backend table
from stages.background.render import build_prompt, render_background, render_backgrounds

__all__ = [
    "BackgroundGenerator",
    "ClassicGenerator",
    "FluxFillGenerator",
    "Flux2KleinGenerator",
    "get_background_generator",
    "render_background",
    "render_backgrounds",
    "build_prompt",
]
