"""Settings of the segment stage (``PACKSHOT_SEGMENT__*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class SegmentSettings(BaseModel):
    backend: Literal["auto", "classic", "sam", "tiny"] = "auto"
    sam_checkpoint: Path | None = Field(
        None, description="path to sam_vit_h_4b8939.pth or another SAM checkpoint"
    )
    sam_model_type: Literal["vit_h", "vit_l", "vit_b"] = "vit_h"
    batch_size: int = Field(4, description="images embedded per SAM call on a GPU")
    refine_edges: bool = True
    edge_band_px: int = Field(4, description="half-width of the boundary band refined by matting")
