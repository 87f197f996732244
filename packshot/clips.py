"""Turn catalog products into video clip requests (shared by ``packshot estimate`` and the flow)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from packshot.errors import ConfigError, PackshotError
from packshot.types import Product


def brand_video_style(brand_name: str | None, brand_styles_dir: Path):
    """The brand YAML's optional ``video:`` mapping as a validated BrandVideoStyle, or None."""
    if not brand_name:
        return None
    from stages.lifestyle import load_brand_style
    from stages.video import BrandVideoStyle

    brand = load_brand_style(brand_name, brand_styles_dir)
    raw = getattr(brand, "video", None)
    if not raw:
        return None
    try:
        return BrandVideoStyle.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"video.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(
            f"brand style '{brand_name}' ({brand_styles_dir}/{brand_name}.yaml): {problems}"
        ) from None


def clip_requests(
    products: list[Product],
    image_for: Callable[[Product], np.ndarray | bytes],
    brand_styles_dir: Path,
    default_brand: str | None = None,
    **overrides,
) -> tuple[list, list[tuple[Product, str]]]:
    """One clip request per product; products whose image cannot be had are returned with the reason."""
    from stages.video import ClipRequest

    requests, problems = [], []
    styles: dict[str | None, object] = {}
    for product in products:
        brand = product.brand_style or default_brand
        try:
            if brand not in styles:
                styles[brand] = brand_video_style(brand, brand_styles_dir)
            image = image_for(product)
        except PackshotError as exc:
            problems.append((product, str(exc)))
            continue
        prompt = f"{product.title}" + (f", {product.category}" if product.category else "")
        requests.append(
            ClipRequest(
                sku=product.sku,
                image=image,
                prompt=prompt,
                brand=styles[brand],
                **{k: v for k, v in overrides.items() if v is not None},
            )
        )
    return requests, problems
