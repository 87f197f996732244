"""Domain types shared by the catalog, the stages and the flows.

Images travel between stages as numpy arrays: RGB ``HxWx3 uint8`` and mattes ``HxW uint8``
(0 = background, 255 = product). Straight (un-premultiplied) alpha everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

CatalogFormat = Literal["packshot", "shopify", "woocommerce", "gmc", "shopify-store", "woocommerce-store"]


class ColorVariant(BaseModel):
    """A color the merchant sells; ``rgb`` is resolved from ``hex`` or the name table."""

    name: str
    rgb: tuple[int, int, int]
    image: str | None = Field(
        default=None, description="the variant's own photo as the store names it (Shopify Variant Image, a "
        "feed item's image_link, a WooCommerce variation image); it is used instead of a recolor",
    )

    @property
    def hex(self) -> str:
        return "#{:02X}{:02X}{:02X}".format(*self.rgb)

    @property
    def slug(self) -> str:
        return slugify(self.name)


class RecolorReport(BaseModel):
    """How a color variant was made and how far it landed (delta-E: CIEDE2000 of the recolored
    material's median color)."""

    mode: Literal["relative", "exact-swatch"]
    target: str = Field(description="the variant's swatch, #RRGGBB")
    own_color: str | None = Field(
        None, description="the color the photo shows, 'Name #RRGGBB'; None when not known")
    own_color_source: str = Field(description="where own_color came from (catalog, title, photo), or why not")
    unchanged: bool = Field(False, description="the variant is the photographed color: the photo itself")
    de_swatch: float | None = Field(None, description="delta-E 2000 to the swatch")
    de_shifted: float | None = Field(
        None, description="delta-E 2000 to the photographed product shifted from its own color to the target")
    material_share: float = Field(0.0, description="share of the product's solid pixels recolored")
    review_reasons: list[str] = Field(default_factory=list, description="why a person should check it")


class Product(BaseModel):
    """One product of a catalog, whatever the format it came from."""

    sku: str
    title: str
    images: list[str] = Field(
        min_length=1, description="image references as written: path, s3:// or https://"
    )
    category: str = ""
    brand_style: str | None = None
    colors: list[ColorVariant] = Field(default_factory=list)
    bbox: tuple[int, int, int, int] | None = Field(
        default=None, description="product box x0,y0,x1,y1 in source pixels, when the merchant knows it"
    )
    recolor_mask: str | None = Field(default=None, description="mask file of the main material, optional")
    photo_color: ColorVariant | None = Field(
        default=None, description="the color the product has in its photo (recolors start from it), optional"
    )
    recolor_modes: dict[str, Literal["relative", "exact-swatch"]] = Field(
        default_factory=dict, description="variant slug -> recolor mode a review chose (a rejected variant)"
    )
    source_file: str
    source_line: int = Field(description="1-based line of the CSV where the product starts (header is 1)")
    source_ref: str | None = Field(
        default=None, description="the store's own id of the product (Shopify gid, WooCommerce id, feed id)"
    )
    source_version: str | None = Field(
        default=None,
        description="the store's version marker (Shopify updatedAt, WooCommerce date_modified_gmt, feed "
        "item hash + image ETag/Last-Modified); None when the source cannot tell without downloading",
    )


class RowError(BaseModel):
    """A bad catalog row: where it is and what to do about it."""

    file: str
    line: int
    column: str | None = None
    sku: str | None = None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        col = f" column '{self.column}'" if self.column else ""
        sku = f" (sku {self.sku})" if self.sku else ""
        return f"{where}{col}{sku}: {self.message}"


class Catalog(BaseModel):
    path: str
    format: CatalogFormat
    products: list[Product]
    errors: list[RowError] = Field(default_factory=list)
    notes: list[str] = Field(
        default_factory=list, description="warnings about the file as a whole (encoding ...)"
    )


@dataclass
class Cutout:
    """A product cut out of its photo.

    ``rgba``: ``HxWx4 uint8``, straight alpha. In the edge band the RGB channels hold estimated
    foreground colors (not the old background), so the cutout composites cleanly on any color.
    ``confidence`` (0..1) and ``review_reasons`` (sentences a merchant understands) come from
    :mod:`stages.segment.confidence`; a cutout with any reason is doubtful (``needs_review``).
    """

    rgba: np.ndarray
    backend: str
    notes: list[str] = field(default_factory=list)
    confidence: float | None = None  # 0..1, the segmenter's own estimate; None when it has none
    review_reasons: list[str] = field(default_factory=list)  # why a person should look; empty = trusted

    @property
    def needs_review(self) -> bool:
        """True when the segmenter doubts this cutout: a person should check it before it is published."""
        return bool(self.review_reasons)

    @property
    def alpha(self) -> np.ndarray:
        return self.rgba[..., 3]

    @property
    def rgb(self) -> np.ndarray:
        return self.rgba[..., :3]

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 (exclusive) of pixels with any opacity; the whole image if empty."""
        ys, xs = np.nonzero(self.alpha > 8)
        if len(xs) == 0:
            h, w = self.alpha.shape
            return 0, 0, w, h
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@dataclass
class Rendered:
    """A finished image before encoding.

    ``rgb``: ``HxWx3 uint8``. ``product_alpha``: ``HxW uint8``, the product's matte in output
    coordinates (the validator, recolor and the fidelity check use it). ``generated`` is true when
    any pixel was synthesised by a generative model (it decides the provenance metadata).
    """

    rgb: np.ndarray
    product_alpha: np.ndarray
    kind: str  # "packshot", "background", "scene"
    preset: str
    generated: bool = False
    variant: str | None = None  # color variant slug, None for the original color
    scene: int | None = None
    notes: list[str] = field(default_factory=list)
    placement: object | None = None  # packshot.imaging.Placement: maps source-photo masks into this image
    recolor: RecolorReport | None = None  # set on color variants


def slugify(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in text.strip())
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-") or "x"
