"""Settings of the recolor stage (``PACKSHOT_RECOLOR__*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

RecolorMode = Literal["relative", "exact-swatch"]


class RecolorSettings(BaseModel):
    mode: RecolorMode = Field(
        "relative",
        description="relative: a variant is the photo moved from the product's own color to the variant's "
        "(the own color's variant is the photo itself); exact-swatch: the material's median becomes the "
        "swatch value",
    )
