"""What a run produced, per output and per product: the records the manifest, the report, the review
page and publishing all read."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from packshot.types import RecolorReport

# needs_review: made, but the cutout is doubtful (see review_reasons): neither done nor failed
ProductStatus = Literal["done", "needs_review", "failed", "skipped", "invalid"]


class OutputRecord(BaseModel):
    sku: str
    kind: str = Field(description="cutout, packshot, background, scene or clip")
    preset: str | None = None
    variant: str | None = None
    scene: int | None = None
    position: int | None = Field(None, description="order in the listing for this preset (1 = first image)")
    key: str = Field(description="path relative to the run root")
    uri: str
    format: str
    width: int
    height: int
    bytes: int
    sha256: str
    generated: bool = False
    checks: list[str] = Field(default_factory=list, description="validator violations; empty means it passed")
    source_file: str
    source_line: int
    recolor: RecolorReport | None = Field(None, description="color variants: how the color was made")

    @property
    def passed(self) -> bool:
        return not self.checks


class ProductResult(BaseModel):
    sku: str | None
    status: ProductStatus
    error: str | None = None
    outputs: list[OutputRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    key: str | None = Field(
        None, description="content key of the inputs and settings this result was made from"
    )
    source_file: str
    source_line: int
    seconds: float = 0.0
    source_version: str | None = Field(None, description="the store's version marker of the product read")
    image_sha256: str | None = Field(None, description="hash of the main image bytes the outputs came from")
    review_reasons: list[str] = Field(
        default_factory=list, description="why a person should check the cutout (status needs_review)"
    )
    source_image: str | None = Field(None, description="the product's photo as the catalog names it")
    source_preview: str | None = Field(
        None, description="key of a downscaled JPEG copy of the photo in the run (the review page shows it); "
        "the cutout record's width and height are the photo's size in pixels",
    )


class RunManifest(BaseModel):
    catalog: str
    catalog_format: str | None
    output: str
    started: datetime
    finished: datetime | None = None
    stages: list[str]
    presets: list[str]
    backends: dict[str, str] = Field(default_factory=dict)
    licences: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    review: str | None = Field(None, description="the folder's review.json (packshot review) if it has one")
    manifest_csv_sha256: str | None = Field(
        None, description="sha256 of the manifest.csv published with this file (finds a torn pair)")
    products: list[ProductResult]
