"""Lifestyle scenes in a brand's style (scene prompts, palette, optional LoRA).

``load_brand_style(name, directory)`` reads ``brand_styles/<name>.yaml``;
``render_scenes(cutout, product, brand, preset, generator)`` returns one
:class:`~packshot.types.Rendered` per scene (``kind="scene"``).
"""

from stages.lifestyle.brand import BrandStyle, LoraSpec, available_brands, load_brand_style
from stages.lifestyle.scenes import render_scenes

__all__ = ["BrandStyle", "LoraSpec", "available_brands", "load_brand_style", "render_scenes"]
