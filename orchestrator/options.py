"""What to run: the same model is the CLI's options and the Prefect flow's parameters (the UI form).

Everything a user types is checked here: stage names, preset names (the known presets, including
``PACKSHOT_EXPORT__PRESETS_FILE``'s), the brand style (in the folders of
:func:`packshot.schemas.brand.brand_style_dirs`). Brands and presets are read when the options are
checked (the CLI before Prefect starts, the flow when its run starts), never frozen into a deployment's
form: a new brand style file can be used at once, and a wrong name fails with one line listing the
choices. Every field has a description and a visible default (empty text or list: "from the settings").
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Literal
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
        "file or https URL, shopify://SHOP or woocommerce://HOST. A relative path is read from the worker's "
        "code folder (catalogs/demo/catalog.csv)", examples=["catalogs/demo/catalog.csv"],
    )
    out: str = Field(
        "", description="output folder or s3://bucket/prefix; empty: the folder out/ plus the catalog's name")
    brand: str = Field(
        "", description="brand style for rows naming none: the name of a file in the brand_styles folder, "
        "without .yaml (e.g. nordic-home); checked when the run starts, listing the choices; empty: none")
    stages: list[StageName] = Field(
        list(DEFAULT_STAGES), min_length=1,
        description="stages to run; video (the paid ad clips) only when chosen, with a video provider below")
    presets: list[str] = Field(
        [], description="export presets (e.g. amazon-main, shopify-square); checked when the run starts, "
        "listing the choices; empty: the settings' PACKSHOT_EXPORT__PRESETS")
    batch_size: int = Field(0, ge=0, description="products per task; 0: the settings' PACKSHOT_BATCH_SIZE")
    limit: int = Field(0, ge=0, description="process only the first N products; 0: all of them")
    video: VideoOptions | None = Field(
        None, description="ad clip options for the video stage: the provider (runway, sora, local) and the "
        "clip; empty: the PACKSHOT_VIDEO__* settings. A hosted provider's API key is checked before any work")
    skus: list[str] = Field([], description="redo only these SKUs; the others keep their outputs; empty: all")
    force: bool = Field(False, description="redo the chosen products even when nothing changed")
    from_review: str = Field(
        "", description="a reviewed run folder: redo its rejected products with the corrected box or a "
        "new seed, leave the approved ones untouched; empty: no review",
    )

    @model_validator(mode="before")
    @classmethod
    def _none_is_the_default(cls, data):
        """``None`` (an unset CLI option, an older caller) means the field's default."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k == "video"}
        return data

    @field_validator("presets")
    @classmethod
    def _known_presets(cls, names: list[str] | None) -> list[str]:
        if not names:
            return []
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
    def _known_brand(cls, name: str | None, info: ValidationInfo) -> str:
        if not name:
            return ""
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


CLI_NAMES = {"video": "--video-provider"}


def options_problem(exc: ValidationError, form: bool = False) -> str:
    """A ValidationError of :class:`RunOptions` as one line per problem, named by CLI option (``form``:
    by the run form's field, e.g. ``video.provider``)."""
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"] if not isinstance(p, int)]
        if form:
            name = ".".join(loc) or "options"
        else:
            name = CLI_NAMES.get(loc[0], f"--{loc[0].replace('_', '-')}") if loc else "options"
        value = error.get("input")
        shown = f" {value!r}" if isinstance(value, str) else ""
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{name}{shown}: {message}")
    return "\n".join(dict.fromkeys(lines))
