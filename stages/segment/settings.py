"""Settings of the segment stage (``PACKSHOT_SEGMENT__*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class SegmentSettings(BaseModel):
    backend: Literal["auto", "classic", "sam", "rembg", "tiny"] = "auto"
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
    rembg_model: Literal[
        "birefnet-general", "birefnet-general-lite", "birefnet-massive", "isnet-general-use", "u2net",
        "u2netp",
    ] = Field("birefnet-general", description="rembg session (ONNX model); licences in the README")
    rembg_model_dir: Path | None = Field(
        None, description="folder holding <model>.onnx (or rembg's <folder>/models/<model>/<model>.onnx); "
        "default: rembg's own folder (REMBG_HOME, U2NET_HOME, ~/.rembg)",
    )
    rembg_allow_download: bool = Field(
        False, description="let rembg download a missing model file into the model folder during a run"
    )
    refine_edges: bool = True
    edge_band_px: int = Field(4, description="half-width of the boundary band refined by matting")


def embed_batch_size(settings: SegmentSettings, device: str) -> int:
    """Images per SAM encoder call: the setting, else 4 on a GPU and 1 on a CPU (where batches only
    raise peak memory). Here, not in ``sam``, so memory plans are computed without torch."""
    if settings.batch_size is not None:
        return settings.batch_size
    return 4 if str(device).startswith("cuda") else 1
