"""What the Admin GraphQL API answers to packshot's documents, as pydantic models: an answer that does
not fit is one error naming the store and what it sent (never a KeyError deep in the mapping).

Fields packshot does not read are allowed and kept (``extra="allow"``): Shopify adds fields over time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class GraphQLError(Answer):
    message: str = ""
    extensions: dict[str, Any] | None = None


class Envelope(Answer):
    """``{"data": ..., "errors": [...], "extensions": {"cost": ...}}``."""

    data: dict[str, Any] | None = None
    errors: list[GraphQLError] | str | None = None
    extensions: dict[str, Any] | None = None


class PageInfo(Answer):
    hasNextPage: bool = False  # Shopify's field names (camelCase)
    endCursor: str | None = None


class Image(Answer):
    url: str | None = None


# -- reading the catalog (the Products document) -------------------------------------------------------
class SelectedOption(Answer):
    name: str
    value: str


class Variant(Answer):
    sku: str | None = None
    selectedOptions: list[SelectedOption] = Field(default_factory=list)


class Variants(Answer):
    nodes: list[Variant]
    pageInfo: PageInfo = Field(default_factory=PageInfo)


class ListedMedia(Answer):
    """A product's media in the listing; a video or 3D model is ``{}`` (the fragment is MediaImage)."""

    id: str | None = None
    status: str | None = None
    alt: str | None = None
    image: Image | None = None


class ListedMediaConnection(Answer):
    nodes: list[ListedMedia]
    pageInfo: PageInfo = Field(default_factory=PageInfo)


class ProductNode(Answer):
    id: str
    handle: str | None = None
    title: str | None = None
    productType: str | None = None
    updatedAt: str | None = None
    variants: Variants
    media: ListedMediaConnection


class ProductsPage(Answer):
    nodes: list[ProductNode]
    pageInfo: PageInfo


class ProductsAnswer(Answer):
    products: ProductsPage


# -- publishing -------------------------------------------------------------------------------------
class ProductRef(Answer):
    id: str
    handle: str = ""
    title: str = ""


class ProductByIdAnswer(Answer):
    product: ProductRef | None


class ProductRefs(Answer):
    nodes: list[ProductRef]


class ProductsByHandleAnswer(Answer):
    products: ProductRefs


class MediaItem(Answer):
    id: str
    status: str = ""
    alt: str | None = None
    image: Image | None = None


class MediaNodes(Answer):
    nodes: list[MediaItem]


class ProductMedia(Answer):
    media: MediaNodes


class MediaAnswer(Answer):
    product: ProductMedia | None


class UserError(Answer):
    field: list[str] | None = None
    message: str = ""


class StagedParameter(Answer):
    name: str
    value: str


class StagedTarget(Answer):
    url: str
    resourceUrl: str
    parameters: list[StagedParameter] = Field(default_factory=list)


class Staged(Answer):
    stagedTargets: list[StagedTarget] | None = None
    userErrors: list[UserError] = Field(default_factory=list)


class StagedAnswer(Answer):
    stagedUploadsCreate: Staged


class Mutation(Answer):
    userErrors: list[UserError] = Field(default_factory=list)


class AttachAnswer(Answer):
    productUpdate: Mutation


class DetachAnswer(Answer):
    fileUpdate: Mutation
