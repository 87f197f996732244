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
    batch_size: int | None = Field(
        None, ge=1, description="images per SAM image-encoder call (default: 4 on a GPU, 1 on a CPU)"
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="SAM image-encoder precision; auto is bfloat16 on CUDA and float32 elsewhere"
    )
    refine_edges: bool = True
    edge_band_px: int = Field(4, description="half-width of the boundary band refined by matting")
