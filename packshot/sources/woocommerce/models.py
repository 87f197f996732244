"""What the WooCommerce REST API v3 answers, as pydantic models: an answer that does not fit is one
error naming the store and what it sent. Fields packshot does not read are kept (``extra="allow"``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class WooImage(Answer):
    id: int
    src: str = ""
    name: str = ""
    alt: str = ""


class WooCategory(Answer):
    name: str = ""


class WooAttribute(Answer):
    name: str = ""
    options: list[str] = Field(default_factory=list)


class WooProduct(Answer):
    id: int
    name: str | None = None
    sku: str | None = None
    type: str | None = None
    date_modified_gmt: str | None = None
    categories: list[WooCategory] = Field(default_factory=list)
    attributes: list[WooAttribute] = Field(default_factory=list)
    images: list[WooImage] = Field(default_factory=list)


class WooVariation(Answer):
    id: int
    date_modified_gmt: str | None = None
    image: WooImage | None = None


class WooError(Answer):
    code: str | None = None
    message: str | None = None
