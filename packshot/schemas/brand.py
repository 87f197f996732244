"""Brand styles: ``brand_styles/<brand>.yaml`` validated into :class:`BrandStyle`.

See ``brand_styles/README.md`` for the schema. Errors name the file, the field and the reason.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from packshot.errors import ConfigError

PROMPT_FIELDS = {"title", "category", "sku", "brand"}
_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _check_template(value: str) -> str:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as exc:
        raise ValueError(f"bad braces in prompt ({exc}); write {{{{ and }}}} for literal braces") from exc
    unknown = names - PROMPT_FIELDS
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {sorted(unknown)}; allowed: "
            + ", ".join("{" + f + "}" for f in sorted(PROMPT_FIELDS))
        )
    return value


ProviderName = Literal["runway", "veo", "sora", "local"]


class BrandVideoStyle(BaseModel):
    """The optional ``video:`` mapping of a brand style YAML.

    Example::

        video:
          provider: runway          # runway | sora | local
          model: gen4_turbo
          prompt: "soft studio light, calm premium mood"
          camera_motion: orbit      # see stages/video/prompts.py
          duration_s: 5
          ratio: "9:16"             # auto, or W:H
    """

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName | None = None
    model: str | None = None
    prompt: str = Field("", description="brand look and mood, appended to every clip's prompt")
    camera_motion: str | None = None
    duration_s: int | None = Field(None, ge=1, le=20)
    ratio: str | None = None


class LoraSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1, description="local .safetensors file or folder, hub id, or s3://bucket/key"
    )
    weight_name: str | None = Field(None, description="file inside a folder or hub repo")
    scale: float = Field(1.0, ge=0.0, le=2.0)
    trigger_words: list[str] = Field(default_factory=list)
    licence: str | None = None


class BrandStyle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    lora: LoraSpec | None = None
    background_prompt: str = (
        "professional product photograph of {title}, standing on a clean surface, soft diffused light, "
        "uncluttered background, high detail"
    )
    scene_prompts: list[str] = Field(min_length=1)
    negative_prompt: str = ""
    seed: int = Field(0, ge=0)
    seeds: list[int] | None = Field(None, min_length=1, description="base seed per scene (cycled)")
    scenes_per_product: int = Field(2, ge=1, le=16)
    palette: list[str] = Field(default_factory=lambda: ["#F4F1EC", "#DCD6CC", "#B9B0A3"], min_length=1)
    presets: list[str] = Field(default_factory=lambda: ["shopify"], min_length=1)
    fill_fraction: float | None = Field(None, gt=0.05, le=0.95)
    floor_line: float | None = Field(None, ge=0.3, le=1.0)
    video: dict = Field(
        default_factory=dict, description="clip settings, validated by BrandVideoStyle"
    )

    _source_file: Path | None = PrivateAttr(None)

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use lowercase letters, digits, '-' or '_' (it names the LoRA adapter)")
        return v

    @field_validator("background_prompt")
    @classmethod
    def _background_template(cls, v: str) -> str:
        return _check_template(v)

    @field_validator("scene_prompts")
    @classmethod
    def _scene_templates(cls, v: list[str]) -> list[str]:
        return [_check_template(p) for p in v]

    @field_validator("palette")
    @classmethod
    def _hex_colors(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not _HEX.match(c)]
        if bad:
            raise ValueError(f"colors must be '#RRGGBB' hex (quote them in YAML): {bad}")
        return v

    @field_validator("video")
    @classmethod
    def _video_style(cls, v: dict) -> dict:
        if v:
            BrandVideoStyle.model_validate(v)  # its ValidationError names the bad key
        return v

    @property
    def source_file(self) -> Path | None:
        """The YAML file this style came from (relative LoRA paths resolve against its folder)."""
        return self._source_file

    def seed_for(self, scene: int) -> int:
        return self.seeds[scene % len(self.seeds)] if self.seeds else self.seed


PROJECT_DIR = Path(__file__).resolve().parents[2]  # the repository (or the installed code's folder)


def brand_style_dirs(configured: Path | str = "brand_styles", catalog_dir: Path | None = None) -> list[Path]:
    """Where brand styles are looked for, first match wins: ``configured``
    (``PACKSHOT_BRAND_STYLES_DIR``; a relative one from the current folder), then, for a relative
    ``configured``, the same folder beside the catalog and in the project. Duplicates are dropped."""
    configured = Path(configured)
    found = [configured.resolve()]
    if not configured.is_absolute():
        if catalog_dir is not None:
            found.append((Path(catalog_dir) / configured).resolve())
        found.append((PROJECT_DIR / configured).resolve())
    return list(dict.fromkeys(found))


def _as_dirs(directory: Path | str | Sequence[Path]) -> list[Path]:
    if isinstance(directory, (str, Path)):
        return [Path(directory)]
    return [Path(d) for d in directory]


def available_brands(directory: Path | str | Sequence[Path]) -> list[str]:
    """The brand style names in ``directory`` (or several, see :func:`brand_style_dirs`)."""
    names: set[str] = set()
    for folder in _as_dirs(directory):
        if folder.is_dir():
            names |= {p.stem for p in folder.iterdir()
                      if p.suffix in (".yaml", ".yml") and _NAME.match(p.stem)}
    return sorted(names)


def load_brand_style(name: str, directory: Path | str | Sequence[Path]) -> BrandStyle:
    """Read and validate ``<directory>/<name>.yaml`` from the first of the directories that has it;
    raise :class:`ConfigError` saying where it was looked for and what to fix."""
    folders = _as_dirs(directory)
    if not _NAME.match(name or ""):
        raise ConfigError(f"brand style name {name!r} is not a plain name like 'nordic-home'")
    candidates = [folder / f"{name}{ext}" for folder in folders for ext in (".yaml", ".yml")]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        known = available_brands(folders)
        listed = ", ".join(known) if known else "none"
        where = ", ".join(str(f) for f in folders)
        raise ConfigError(
            f"unknown brand style '{name}': no {name}.yaml in {where}; available: {listed}. "
            "Put the file in one of these folders or set PACKSHOT_BRAND_STYLES_DIR."
        )
    return parse_brand_file(path)


def parse_brand_file(path: Path) -> BrandStyle:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read brand style: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a brand style is a mapping of fields (name, scene_prompts, ...), got "
            f"{type(raw).__name__}"
        )
    raw.setdefault("name", path.stem)
    if raw["name"] != path.stem:
        raise ConfigError(f"{path}: field 'name': '{raw['name']}' must match the file name '{path.stem}'")
    try:
        style = BrandStyle.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(top level)'}': {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    style._source_file = path.resolve()
    return style
