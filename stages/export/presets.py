"""Preset definitions (rules from ../shared/reference/marketplaces.md) and custom presets from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from packshot.errors import ConfigError


class Preset(BaseModel):
    name: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fill_fraction: float = Field(0.85, gt=0, le=1, description="product bounding box / frame, longest side")
    min_fill_fraction: float | None = Field(None, description="validator minimum for the product fill")
    background: tuple[int, int, int] = (255, 255, 255)
    pure_white_background: bool = Field(False, description="every non-product pixel must be exactly 255")
    format: Literal["JPEG", "PNG", "WEBP"] = "JPEG"
    quality: int = Field(92, ge=1, le=100)
    min_quality: int = Field(60, ge=1, le=100)
    max_bytes: int | None = None
    min_long_side: int | None = None
    max_long_side: int | None = None
    max_megapixels: float | None = None
    allow_generated: bool = True
    color_profile: Literal["sRGB"] = "sRGB"
    notes: str = ""


BUILTIN: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="amazon-main", width=2000, height=2000, fill_fraction=0.88, min_fill_fraction=0.85,
            pure_white_background=True, format="JPEG", quality=92, max_bytes=10_000_000,
            min_long_side=1000, max_long_side=10_000, allow_generated=False,
            notes="Amazon main image: pure white, product >= 85% of the frame, zoom needs >= 1000 px",
        ),
        Preset(
            name="shopify", width=2048, height=2048, fill_fraction=0.80, format="JPEG", quality=90,
            max_bytes=20_000_000, max_long_side=4472, max_megapixels=20.0,
            notes="Shopify: 2048 square recommended; 4472 px / 20 MP / 20 MB maximum (stricter source)",
        ),
    ]
}


def load_presets(extra_file: Path | None = None) -> dict[str, Preset]:
    presets = dict(BUILTIN)
    if extra_file:
        try:
            raw = yaml.safe_load(Path(extra_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read presets file {extra_file}: {exc}") from exc
        for name, body in (raw.get("presets") or {}).items():
            try:
                presets[name] = Preset(name=name, **(body or {}))
            except ValidationError as exc:
                raise ConfigError(f"{extra_file}: preset '{name}': {exc}") from exc
    return presets


def get_preset(name: str, extra_file: Path | None = None) -> Preset:
    presets = load_presets(extra_file)
    if name not in presets:
        raise ConfigError(f"unknown preset '{name}'; known presets: {', '.join(sorted(presets))}")
    return presets[name]
