"""Preset definitions (rules and their sources: docs/sources.md) and custom presets from YAML.

A custom presets file looks like::

    presets:
      lookbook:
        size: 1600          # long side in px; or width/height
        aspect: "4:5"       # width:height; with size, the short side follows
        fill_fraction: 0.8
        background: "#F4F1EC"   # or [244, 241, 236]
        format: JPEG        # JPEG, PNG or WEBP
        quality: 88
        max_bytes: 2000000
        color_profile: sRGB
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from packshot.errors import ConfigError


class Preset(BaseModel):
    """What a marketplace wants from one image: output size and encoding, and the rules the
    validator checks on the finished file."""

    name: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fill_fraction: float = Field(0.85, gt=0, le=1, description="product bounding box / frame, binding side")
    min_fill_fraction: float | None = Field(
        None, gt=0, le=1, description="validator minimum for the product's bounding box / frame"
    )
    background: tuple[int, int, int] = (255, 255, 255)
    pure_white_background: bool = Field(False, description="every non-product pixel must be exactly 255")
    format: Literal["JPEG", "PNG", "WEBP"] = "JPEG"
    quality: int = Field(92, ge=1, le=100, description="starting JPEG/WebP quality")
    min_quality: int = Field(60, ge=1, le=100, description="lowest quality tried to fit max_bytes")
    subsampling: Literal["auto", "4:4:4", "4:2:2", "4:2:0"] = Field(
        "auto", description="JPEG chroma subsampling; auto: 4:4:4 (no chroma blocks on saturated colors) "
        "unless only 4:2:0 fits max_bytes")
    max_bytes: int | None = Field(None, gt=0)
    min_long_side: int | None = None
    max_long_side: int | None = None
    min_short_side: int | None = None
    max_megapixels: float | None = None
    check_aspect: bool = Field(False, description="validator: the file must have this preset's aspect ratio")
    allow_generated: bool = True
    first_image_real: bool = Field(False, description="the listing's first image must not be generated")
    color_profile: Literal["sRGB"] = "sRGB"
    notes: str = ""

    @field_validator("background", mode="before")
    @classmethod
    def _parse_background(cls, value: Any) -> Any:
        if isinstance(value, str):
            from packshot.colors import parse_color

            try:
                return parse_color(value).rgb
            except ValueError as exc:
                raise ValueError(f"background: {exc}") from exc
        return value

    @model_validator(mode="before")
    @classmethod
    def _size_and_aspect(cls, data: Any) -> Any:
        """``size`` (long side) + ``aspect`` ("4:5", "1:1" or a number) -> width and height."""
        if not isinstance(data, dict) or "size" not in data:
            return data
        data = dict(data)
        size = int(data.pop("size"))
        aspect = _parse_aspect(data.pop("aspect", "1:1"))
        if aspect >= 1:
            data.setdefault("width", size)
            data.setdefault("height", round(size / aspect))
        else:
            data.setdefault("height", size)
            data.setdefault("width", round(size * aspect))
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Preset:
        if self.min_quality > self.quality:
            raise ValueError(f"min_quality {self.min_quality} is above quality {self.quality}")
        if self.min_fill_fraction is not None and self.min_fill_fraction > self.fill_fraction:
            raise ValueError(
                f"min_fill_fraction {self.min_fill_fraction} is above fill_fraction {self.fill_fraction}: "
                "the packshots this preset makes would fail its own check"
            )
        return self


def _parse_aspect(value: Any) -> float:
    if isinstance(value, int | float):
        ratio = float(value)
    else:
        w, sep, h = str(value).partition(":")
        try:
            ratio = float(w) / float(h) if sep else float(w)
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"aspect {value!r}: write it as width:height, e.g. '4:5'") from exc
    if ratio <= 0:
        raise ValueError(f"aspect {value!r} must be positive")
    return ratio


# Where marketplaces.md gives a range or sources disagree, the stricter value is used (noted per preset).
BUILTIN: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            # JPEG at quality 95 with 4:4:4 chroma: 8x8 blocks with no product pixel decode to exactly
            # 255 (no chroma upsampling bleeds across blocks); see validate.white_background.
            name="amazon-main", width=2000, height=2000, fill_fraction=0.88, min_fill_fraction=0.85,
            pure_white_background=True, format="JPEG", quality=95, min_quality=80, subsampling="4:4:4",
            max_bytes=10_000_000, min_long_side=1000, max_long_side=10_000, allow_generated=False,
            notes="Amazon main image: pure white 255, product >= 85% of the frame, >= 1000 px for zoom",
        ),
        Preset(
            name="amazon-additional", width=2000, height=2000, fill_fraction=0.85, format="JPEG",
            quality=92, max_bytes=10_000_000, min_long_side=1000, max_long_side=10_000,
            notes="Amazon additional images: product in use / lifestyle scenes allowed; >= 1000 px for zoom",
        ),
        Preset(
            name="shopify", width=2048, height=2048, fill_fraction=0.80, format="JPEG", quality=90,
            max_bytes=20_000_000, max_long_side=4472, max_megapixels=20.0,
            notes="Shopify: 2048 square recommended; 4472 px / 20 MP / 20 MB maximum (stricter source)",
        ),
        Preset(
            name="etsy", width=2000, height=2000, fill_fraction=0.80, format="JPEG", quality=90,
            max_bytes=10_000_000, first_image_real=True,
            # About 2000 px on the short side is a recommendation, not a rule: rendered at 2000, not enforced.
            notes="Etsy: about 2000 px shortest side recommended, 10 MB; a generated scene is never the "
            "first image",
        ),
        Preset(
            name="google-merchant", width=1500, height=1500, fill_fraction=0.85, format="JPEG", quality=90,
            max_bytes=16_000_000, min_short_side=500, max_megapixels=64.0,
            notes="Google Merchant Center: 1500 px recommended; 500 px minimum (from 31 Jan 2027, the "
            "stricter rule); 64 MP / 16 MB; generated images keep their IPTC AI metadata",
        ),
        Preset(
            name="ebay", width=1600, height=1600, fill_fraction=0.85, format="JPEG", quality=92,
            min_quality=90, min_long_side=500,
            notes="eBay: >= 500 px longest side, 1000+ for zoom; JPEG quality 90 or higher recommended",
        ),
    ]
}


def load_presets(extra_file: Path | None = None) -> dict[str, Preset]:
    """Built-in presets plus the ``presets:`` of ``extra_file`` (a custom name replaces a built-in)."""
    presets = dict(BUILTIN)
    if extra_file:
        try:
            raw = yaml.safe_load(Path(extra_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read presets file {extra_file}: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("presets") or {}, dict):
            raise ConfigError(f"{extra_file}: expected a 'presets:' mapping of name -> settings")
        for name, body in (raw.get("presets") or {}).items():
            try:
                presets[name] = Preset(name=name, **(body or {}))
            except (ValidationError, TypeError) as exc:
                raise ConfigError(f"{extra_file}: preset '{name}': {exc}") from exc
    return presets


def get_preset(name: str, extra_file: Path | None = None) -> Preset:
    presets = load_presets(extra_file)
    if name not in presets:
        raise ConfigError(f"unknown preset '{name}'; known presets: {', '.join(sorted(presets))}")
    return presets[name]
