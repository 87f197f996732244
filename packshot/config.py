"""Settings, read from environment variables (prefix ``PACKSHOT_``) or a ``.env`` file.

Nested groups use a double underscore: ``PACKSHOT_SEGMENT__BACKEND=sam``,
``PACKSHOT_SEGMENT__SAM_CHECKPOINT=/models/sam_vit_h_4b8939.pth``.
"""

from __future__ import annotations

from functools import lru_cache
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


class SegmentSettings(BaseModel):
    backend: Literal["auto", "classic", "sam", "tiny"] = "auto"
    sam_checkpoint: Path | None = Field(
        None, description="path to sam_vit_h_4b8939.pth or another SAM checkpoint"
    )
    sam_model_type: Literal["vit_h", "vit_l", "vit_b"] = "vit_h"
    batch_size: int = Field(4, description="images embedded per SAM call on a GPU")
    refine_edges: bool = True
    edge_band_px: int = Field(4, description="half-width of the boundary band refined by matting")


class GenerativeSettings(BaseModel):
    backend: Literal["auto", "classic", "flux", "tiny"] = "auto"
    flux_model: str | None = Field(
        None, description="FLUX.1 Fill hub id or local directory, e.g. black-forest-labs/FLUX.1-Fill-dev"
    )
    flux_revision: str | None = None
    steps: int = 28
    guidance_scale: float = 30.0
    cpu_offload: bool = Field(False, description="enable model CPU offload for 24 GB cards")
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


class ExportSettings(BaseModel):
    presets: list[str] = Field(default_factory=lambda: ["amazon-main", "shopify"])
    presets_file: Path | None = Field(None, description="YAML file with custom presets")


class StorageSettings(BaseModel):
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    presign_expiry_s: int = 7 * 24 * 3600
    multipart_threshold_mb: int = Field(8, description="uploads above this size go multipart")
    multipart_chunk_mb: int = Field(8, description="part size of multipart uploads")


class OrchestrationSettings(BaseModel):
    """Deployments, caching and GPU sharing (``flows/``, ``packshot.pipeline``)."""

    timezone: str = Field("UTC", description="merchant's timezone of the nightly run, e.g. Europe/Berlin")
    nightly_cron: str = Field("0 2 * * *", description="cron of the nightly catalog run, in `timezone`")
    nightly_catalog: str = Field("catalogs/demo/catalog.csv", description="catalog the nightly run processes")
    nightly_out: str = Field("out/nightly", description="folder or s3://bucket/prefix of the nightly run")
    inbox: str = Field("inbox", description="folder or s3://bucket/prefix where merchants drop catalog CSVs")
    inbox_out: str = Field("out/inbox", description="outputs of intake runs: <inbox_out>/<csv stem>")
    stage_cache: bool = Field(True, description="reuse cutouts and generated images across runs (by content)")
    gpu_lock_dir: Path = Field(Path("/tmp/packshot-gpu-locks"), description="lock files that share a GPU")
    gpu_concurrency_limit: str | None = Field(
        None, description="Prefect global concurrency limit name prefix used as well (e.g. gpu -> gpu-0)"
    )
    prefetch: int = Field(2, description="images loaded ahead while the GPU works on the current product")


class VideoSettings(BaseModel):
    """Image-to-video ad clips (``stages.video``). Secrets never live here: see ``packshot.secrets``."""

    provider: Literal["runway", "sora", "local", "none"] = "none"
    model: str | None = Field(None, description="provider model; default gen4_turbo, sora-2 or local_model")
    duration_s: int = Field(5, description="clip length; rounded to what the provider accepts")
    ratio: str = Field("auto", description="'auto' (closest to the image) or W:H such as 1280:720 or 9:16")
    fit: Literal["pad", "crop"] = Field("pad", description="how the image meets the ratio (never stretched)")
    camera_motion: str = "slow-push-in"
    max_spend_usd: float = Field(10.0, description="spending cap per run, checked before each submission")
    concurrency: dict[str, int] = Field(default_factory=lambda: {"runway": 2, "sora": 2, "local": 1})
    poll_interval_s: float = 5.0
    poll_max_interval_s: float = 30.0
    poll_timeout_s: float = Field(1800.0, description="give up waiting; a rerun resumes the job")
    max_retries: int = Field(4, description="retries of a throttled (429), 5xx or timed-out call")
    retry_wait_s: float = 2.0
    retry_max_wait_s: float = 60.0
    request_timeout_s: float = 60.0
    runway_base_url: str | None = None
    openai_base_url: str | None = None
    runway_secret_block: str | None = Field(None, description="Prefect Secret if RUNWAYML_API_SECRET unset")
    openai_secret_block: str | None = Field(None, description="Prefect Secret block if OPENAI_API_KEY unset")
    local_model: str | None = Field(None, description="diffusers i2v model id or directory; 'tiny' in tests")
    local_pipeline: str = Field("LTXImageToVideoPipeline", description="diffusers class of local_model")
    local_steps: int = 30
    local_fps: int = 24
    local_long_side: int = Field(768, description="long side of local clips in pixels (rounded to 32)")
    prices_usd_per_s: dict[str, float] = Field(
        default_factory=lambda: {
            "runway/gen4_turbo": 0.05,
            "runway/gen4.5": 0.12,
            "sora/sora-2": 0.10,
            "sora/sora-2-pro": 0.30,
            "sora/sora-2-pro@1792x1024": 0.50,
            "sora/sora-2-pro@1024x1792": 0.50,
            "local/*": 0.0,
        },
        description="USD per second of video, by provider/model",
    )
    prices_source: str = (
        "Runway API: gen4_turbo 5 credits/s, gen4.5 12 credits/s, 1 credit = $0.01; "
        "OpenAI Sora: sora-2 $0.10/s, sora-2-pro $0.30/s at 720p, $0.50/s at 1792x1024 (2026-11)"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PACKSHOT_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    device: str = Field("auto", description="torch device: auto, cpu, cuda, cuda:1 ...")
    batch_size: int = Field(8, description="products per Prefect task")
    brand_styles_dir: Path = Path("brand_styles")
    load: LoadSettings = LoadSettings()
    segment: SegmentSettings = SegmentSettings()
    generative: GenerativeSettings = GenerativeSettings()
    export: ExportSettings = ExportSettings()
    storage: StorageSettings = StorageSettings()
    video: VideoSettings = VideoSettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()


@lru_cache
def get_settings() -> Settings:
    return Settings()


def resolve_device(setting: str) -> str:
    """``auto`` picks CUDA when torch sees a GPU, else CPU."""
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
