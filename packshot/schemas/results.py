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
    photo: int = Field(1, description="the product photo this output was made from: its place among the "
                       "product's images in the catalog (1 = the main photo)")
    shows_variant: str | None = Field(
        None, description="the color variant (slug) this output's photo shows: the variant's own photo, "
        "used for it instead of a recolor")
    recolor: RecolorReport | None = Field(None, description="color variants: how the color was made")

    @property
    def passed(self) -> bool:
        return not self.checks


class PhotoResult(BaseModel):
    """One photo of a product: where its files are and how it went (a product has one per image)."""

    photo: int = Field(description="place among the product's images in the catalog (1 = the main photo)")
    image: str = Field(description="the photo as the catalog names it")
    folder: str = Field(description="folder of its files, relative to the run root")
    status: ProductStatus
    error: str | None = None
    key: str | None = None
    image_sha256: str | None = None
    source_preview: str | None = None
    shows_variant: str | None = None


class VariantResult(BaseModel):
    """How a color variant's images were obtained: its own photo (``photographed``), a recolor of the
    product's photos (``recolored``), or not at all (``none``: the recolor stage was not run)."""

    name: str
    slug: str
    hex: str
    made: Literal["photographed", "recolored", "none"]
    photos: list[int] = Field(default_factory=list, description="photo(s) its images come from")


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
    photos: list[PhotoResult] = Field(
        default_factory=list, description="every photo of the product, main photo first (each redone or "
        "reused on its own); the fields above describe the main photo")
    variants: list[VariantResult] = Field(
        default_factory=list, description="which color variants were photographed and which were made")
    generator_calls: int = Field(
        0, description="images the background generator made for this product in this run (0 when reused "
        "or cached); one image serves every preset of one size, prompt and seed")
    fills_shared: int = Field(
        0, description="generated images of this run fitted from another preset's image instead of "
        "generated again")
    run_id: str | None = Field(
        None, description="the run that made the outputs (a skipped product names the earlier run)")


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
    generator_calls: int = Field(0, description="images the background generator made in this run")
    fills_shared: int = Field(0, description="images fitted from another preset's generated image")
    review: str | None = Field(None, description="the folder's review.json (packshot review) if it has one")
    manifest_csv_sha256: str | None = Field(
        None, description="sha256 of the manifest.csv published with this file (finds a torn pair)")
    products: list[ProductResult]
