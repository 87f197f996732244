"""The run's use of the one catalog validation (:mod:`packshot.catalog.validation`): once a product's
image is loaded, the same checks as ``packshot validate`` (bbox inside the image, recolor mask,
brand style), so a product that would make blank or broken outputs fails with the row's message."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from packshot.catalog.validation import ValidationContext, product_problems
from packshot.errors import PackshotError
from packshot.schemas.brand import brand_style_dirs
from packshot.types import Product

if TYPE_CHECKING:
    from orchestrator.context import RunContext


@lru_cache(maxsize=32)
def _context(base_dir: Path, max_pixels: int, brands_dir: Path,
             default_brand: str | None) -> ValidationContext:
    return ValidationContext(base_dir, max_pixels, brand_style_dirs(brands_dir, base_dir), default_brand)


def run_validation_context(ctx: RunContext) -> ValidationContext:
    """One :class:`ValidationContext` per run setup (its brand style checks are cached)."""
    return _context(ctx.base_dir, ctx.settings.load.max_pixels, Path(ctx.settings.brand_styles_dir),
                    ctx.options.brand)


def check_loaded_product(product: Product, size: tuple[int, int], ctx: RunContext) -> None:
    """Raise :class:`PackshotError` with every problem of ``product`` whose main image is ``size``
    (width, height) and already decoded."""
    problems = product_problems(product, run_validation_context(ctx), image_size=size, probe_images=False)
    if problems:
        raise PackshotError("; ".join(f"{p.column}: {p.message}" for p in problems))
