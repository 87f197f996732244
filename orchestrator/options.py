"""What to run: the same model is the CLI's options and the Prefect flow's parameters (the UI form)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, create_model

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


class RunOptions(BaseModel):
    """What to run. The same model is the CLI's options and the Prefect flow's parameters (the UI form)."""

    catalog: str = Field(
        description="the catalog: a CSV (ours, a Shopify or WooCommerce export), a Merchant Center feed "
        "file or https URL, shopify://SHOP or woocommerce://HOST"
    )
    out: str = Field("out/run", description="output folder or s3://bucket/prefix")
    brand: str | None = Field(None, description="brand style for rows naming none (brand_styles/<name>.yaml)")
    stages: list[StageName] = Field(default_factory=lambda: list(DEFAULT_STAGES), description="stages to run")
    presets: list[str] | None = Field(None, description="export presets; default from settings")
    batch_size: int | None = Field(None, ge=1, description="products per task; default from settings")
    limit: int | None = Field(None, ge=1, description="process only the first N products")
    video: VideoOptions | None = Field(None, description="ad clip options (with the video stage)")
    skus: list[str] | None = Field(None, description="redo only these SKUs; the others keep their outputs")
    force: bool = Field(False, description="redo the chosen products even when nothing changed")
    from_review: str | None = Field(
        None, description="a reviewed run folder: redo its rejected products with the corrected box or a "
        "new seed, leave the approved ones untouched",
    )
