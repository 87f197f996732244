"""Settings groups owned by plumbing: safe loading, storage, and the generative model settings the
background and lifestyle stages share. The root ``Settings`` (all groups, ``PACKSHOT_*`` variables)
is composed in :mod:`orchestrator.settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, IPvAnyNetwork
from pydantic_settings import BaseSettings, SettingsConfigDict


class LoadSettings(BaseModel):
    max_pixels: int = Field(
        80_000_000, description="reject images above this many pixels (decompression bombs)"
    )
    max_download_bytes: int = Field(40_000_000, description="largest image accepted from a URL")
    download_timeout_s: float = Field(20.0, description="total time allowed for one URL download")
    allow_http: bool = Field(False, description="accept plain http:// image URLs (https only by default)")
    allow_private_addresses: bool = Field(
        False, description="allow URLs that resolve to loopback/private/link-local addresses (tests only)"
    )
    max_redirects: int = 5
    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description='private networks URLs may reach, e.g. ["10.20.0.0/16"] for an internal image server',
    )
    ca_bundle: Path | None = Field(None, description="PEM file of extra CAs trusted for https image URLs")


class FluxSpeedSettings(BaseModel):
    """Speed options of the FLUX Fill pipeline (``stages.background.speed``). Options that change the
    output, even by rounding, are off by default; the prompt cache is exact and on."""

    compile: bool = Field(False, description="torch.compile the transformer's repeated blocks (regional)")
    compile_backend: str = Field("inductor", description="torch.compile backend (tests use aot_eager)")
    lora_hotswap: bool = Field(
        False, description="one pre-sized LoRA slot swapped in place: switching brands never recompiles"
    )
    lora_max_rank: int = Field(64, ge=1, description="largest brand LoRA rank accepted by the hot-swap slot")
    attention_backend: str = Field(
        "native", description="diffusers attention backend; auto picks FA3 / flash / cuDNN per card"
    )
    prompt_cache: int = Field(64, ge=0, description="distinct prompts whose embeddings are kept (0: none)")
    text_encoder_device: Literal["same", "cpu"] = Field(
        "same", description="where CLIP and T5 run; cpu keeps 9 GiB of T5 off the card"
    )
    batch_size: int = Field(1, ge=1, description="images of equal size generated per pipeline call")
    fp8: Literal["off", "dynamic", "weight_only"] = Field(
        "off", description="torchao FP8 of the transformer's linear layers (dynamic needs CUDA cc>=8.9)"
    )


class GenerativeSettings(BaseModel):
    backend: Literal["auto", "classic", "flux", "flux2-klein", "tiny", "tiny-klein"] = Field(
        "auto", description="auto: FLUX.2 [klein] when its model is set, else FLUX.1 Fill, else classic"
    )
    flux_model: str | None = Field(
        None, description="FLUX.1 Fill hub id or local directory, e.g. black-forest-labs/FLUX.1-Fill-dev"
    )
    flux_revision: str | None = None
    klein_model: str | None = Field(
        None, description="FLUX.2 [klein] 4B hub id or local directory (Apache-2.0), e.g. "
        "black-forest-labs/FLUX.2-klein-4B"
    )
    klein_revision: str | None = None
    klein_steps: int = Field(4, ge=1, description="denoising steps of FLUX.2 [klein] (distilled for 4)")
    klein_guidance_scale: float = Field(1.0, description="FLUX.2 [klein] guidance (distilled: 1.0)")
    steps: int = 28
    guidance_scale: float = 30.0
    memory_plan: Literal["auto", "full", "text-offload", "fp8", "group-offload"] = Field(
        "auto", description="how FLUX is placed on the card (packshot.memory); auto: from the free memory"
    )
    fill_fraction: float = Field(0.62, description="share of the frame the product spans")
    floor_line: float = Field(0.86, description="where the product stands, as a fraction of the height")
    flux_licence: str | None = Field(
        None, description="licence of the configured FLUX model for the run report (default: FLUX.1 [dev])"
    )
    generate_long_side: int | None = Field(
        None, description="long side of the generated image before upscaling (default 1024 flux, 64 tiny)"
    )
    max_sequence_length: int = Field(512, description="T5 prompt tokens for FLUX")
    mask_grow_px: int = Field(2, description="band kept out of the fill mask around the product (gen. px)")
    shadow_strength: float = Field(0.3, description="darkness of the contact shadow under the product, 0-1")
    tiny_model_dir: Path | None = Field(None, description="where the tiny test model is built (default: tmp)")
    lora_cache_dir: Path = Field(
        Path.home() / ".cache" / "packshot" / "loras", description="where s3:// LoRAs are downloaded"
    )
    speed: FluxSpeedSettings = FluxSpeedSettings()


class StorageSettings(BaseSettings):
    """S3 and upload settings. Read on its own (``PACKSHOT_STORAGE__*``) where plumbing needs it without
    a run's settings, for example the one S3 client factory in :mod:`packshot.storage`."""

    model_config = SettingsConfigDict(env_prefix="PACKSHOT_STORAGE__", env_file=".env", extra="ignore")

    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    presign_expiry_s: int = 7 * 24 * 3600
    multipart_threshold_mb: int = Field(8, description="uploads above this size go multipart")
    multipart_chunk_mb: int = Field(8, description="part size of multipart uploads")


def resolve_device(setting: str) -> str:
    """``auto`` picks CUDA when torch sees a GPU, else CPU (also when torch is not installed)."""
    if setting != "auto":
        return setting
    from packshot.extras import installed

    if not installed("torch"):  # lean install: no model that torch runs, so no card to use
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
