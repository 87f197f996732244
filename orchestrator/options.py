"""What to run: the same model is the CLI's options and the Prefect flow's parameters (the UI form).

Everything a user types is checked here, before Prefect starts: stage names, preset names (the known
presets, including ``PACKSHOT_EXPORT__PRESETS_FILE``'s), the brand style (in the folders of
:func:`packshot.schemas.brand.brand_style_dirs`). The form offers the known presets and brand styles
as choices (``enum`` in the JSON schema) and shows the defaults.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from stages.video.settings import VideoSettings

StageName = Literal["segment", "background", "lifestyle", "recolor", "export", "video"]
DEFAULT_STAGES: list[StageName] = ["segment", "background", "lifestyle", "recolor", "export"]


VIDEO_OPTION_FIELDS = ("provider", "duration_s", "ratio", "camera_motion", "max_spend_usd")
VideoOptions = create_model(
    "VideoOptions",
    __doc__="Ad clip options for a run; they override the ``PACKSHOT_VIDEO__*`` settings of the same name.",
    **{name: (VideoSettings.model_fields[name].annotation, VideoSettings.model_fields[name])
       for name in VIDEO_OPTION_FIELDS},
)


def known_presets() -> list[str]:
    from orchestrator.settings import get_settings
    from packshot.schemas.presets import load_presets

    return sorted(load_presets(get_settings().export.presets_file))


def known_brands(catalog: str | None = None) -> list[str]:
    """Brand styles in the configured folder, beside ``catalog`` and in the project."""
    from orchestrator.settings import get_settings
    from packshot.schemas.brand import available_brands, brand_style_dirs

    catalog_dir = Path(catalog).resolve().parent if catalog and "://" not in catalog else None
    return available_brands(brand_style_dirs(get_settings().brand_styles_dir, catalog_dir))


def _offer_presets(schema: dict[str, Any]) -> None:
    for variant in schema.get("anyOf", [schema]):
        if variant.get("type") == "array":
            variant["items"] = {"type": "string", "enum": known_presets()}


def _offer_brands(schema: dict[str, Any]) -> None:
    for variant in schema.get("anyOf", [schema]):
        if variant.get("type") == "string":
            variant["enum"] = known_brands()


def default_out(catalog: str) -> str:
    """``out/<catalog name>``: the file's stem, the shop, or the feed's file name, so runs of different
    catalogs never share a folder."""
    from packshot.types import slugify

    if "://" not in catalog:
        return f"out/{PurePosixPath(catalog.replace(chr(92), '/')).stem or 'run'}"
    parts = urlsplit(catalog)
    web = parts.scheme in ("http", "https") and parts.path.strip("/")
    stem = PurePosixPath(parts.path).stem if web else ""
    return f"out/{slugify(stem or parts.netloc.removesuffix('.myshopify.com')) or 'run'}"


class RunOptions(BaseModel):
    """What to run. The same model is the CLI's options and the Prefect flow's parameters (the UI form)."""

    catalog: str = Field(
        description="the catalog: a CSV (ours, a Shopify or WooCommerce export), a Merchant Center feed "
        "file or https URL, shopify://SHOP or woocommerce://HOST"
    )
    out: str | None = Field(
        None, description="output folder or s3://bucket/prefix; empty: out/ and the catalog file's name")
    brand: str | None = Field(
        None, json_schema_extra=_offer_brands,
        description="brand style for rows naming none: a file of the brand_styles folder, without .yaml")
    stages: list[StageName] = Field(
        list(DEFAULT_STAGES), min_length=1,
        description="stages to run (video, the paid ad clips, only when chosen)")
    presets: list[str] | None = Field(
        None, min_length=1, json_schema_extra=_offer_presets,
        description="export presets; empty: the settings' (PACKSHOT_EXPORT__PRESETS)")
    batch_size: int | None = Field(None, ge=1, description="products per task; default from settings")
    limit: int | None = Field(None, ge=1, description="process only the first N products")
    video: VideoOptions | None = Field(None, description="ad clip options (with the video stage)")
    skus: list[str] | None = Field(None, description="redo only these SKUs; the others keep their outputs")
    force: bool = Field(False, description="redo the chosen products even when nothing changed")
    from_review: str | None = Field(
        None, description="a reviewed run folder: redo its rejected products with the corrected box or a "
        "new seed, leave the approved ones untouched",
    )

    @field_validator("presets")
    @classmethod
    def _known_presets(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        known = known_presets()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        return list(dict.fromkeys(names))

    @field_validator("out", "from_review")
    @classmethod
    def _well_formed_location(cls, target: str | None) -> str | None:
        from packshot.errors import ConfigError
        from packshot.storage import check_location

        try:
            return check_location(target) if target else target
        except ConfigError as exc:  # s3:/bucket (one slash) would otherwise be a local folder "s3:"
            raise ValueError(str(exc)) from None

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, names: list[StageName]) -> list[StageName]:
        return list(dict.fromkeys(names))

    @field_validator("brand")
    @classmethod
    def _known_brand(cls, name: str | None, info: ValidationInfo) -> str | None:
        if not name:
            return None
        name = name.removesuffix(".yaml").removesuffix(".yml")
        known = known_brands(info.data.get("catalog"))
        if name not in known:
            raise ValueError(f"unknown brand style {name!r}; choose from {', '.join(known) or 'none'} "
                             "(files in brand_styles/, or set PACKSHOT_BRAND_STYLES_DIR)")
        return name

    @model_validator(mode="after")
    def _default_out(self) -> RunOptions:
        if not self.out:
            self.out = default_out(self.catalog)
        return self


CLI_NAMES = {"batch_size": "--batch-size"}


def options_problem(exc: ValidationError) -> str:
    """A ValidationError of :class:`RunOptions` as one line per problem, named by CLI option."""
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"] if not isinstance(p, int)]
        name = CLI_NAMES.get(loc[0], f"--{loc[0]}") if loc else "options"
        value = error.get("input")
        shown = f" {value!r}" if isinstance(value, str) else ""
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{name}{shown}: {message}")
    return "\n".join(dict.fromkeys(lines))
