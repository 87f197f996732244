"""Settings of the video stage (``PACKSHOT_VIDEO__*``). Secrets never live here: see ``packshot.secrets``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from packshot.config import LoadSettings


class VideoSettings(BaseModel):
    """Image-to-video ad clips (``stages.video``). Secrets never live here: see ``packshot.secrets``."""

    provider: Literal["runway", "veo", "sora", "local", "none"] = Field(
        "none", description="who renders the clips: runway, veo (Google, Gemini API), local (your GPU); "
        "sora was retired by OpenAI on 2026-09-24"
    )
    model: str | None = Field(
        None, description="provider model; default gen4_turbo, veo-3.1-fast-generate-preview or local_model"
    )
    duration_s: int = Field(
        5, ge=1, le=20, description="clip length in seconds; rounded to what the provider accepts"
    )
    ratio: str = Field("auto", description="'auto' (closest to the image) or W:H such as 1280:720 or 9:16")
    fit: Literal["pad", "crop"] = Field("pad", description="how the image meets the ratio (never stretched)")
    camera_motion: str = Field("slow-push-in", description="camera move named in the clip prompt")
    max_spend_usd: float = Field(10.0, ge=0, description="spending cap per run, checked before each clip")
    concurrency: dict[str, int] = Field(
        default_factory=lambda: {"runway": 2, "veo": 2, "sora": 2, "local": 1}
    )
    poll_interval_s: float = 5.0
    poll_max_interval_s: float = 30.0
    poll_timeout_s: float = Field(1800.0, description="give up waiting; a rerun resumes the job")
    max_retries: int = Field(4, description="retries of a throttled (429), 5xx or timed-out call")
    retry_wait_s: float = 2.0
    retry_max_wait_s: float = 60.0
    request_timeout_s: float = 60.0
    download: LoadSettings = Field(
        default_factory=lambda: LoadSettings(max_download_bytes=2_000_000_000, download_timeout_s=600.0),
        description="limits of result-file downloads (the same SSRF-safe downloader as images)",
    )
    runway_base_url: str | None = None
    openai_base_url: str | None = None
    runway_secret_block: str | None = Field(None, description="Prefect Secret if RUNWAYML_API_SECRET unset")
    openai_secret_block: str | None = Field(None, description="Prefect Secret block if OPENAI_API_KEY unset")
    gemini_base_url: str | None = None
    gemini_secret_block: str | None = Field(None, description="Prefect Secret block if GEMINI_API_KEY unset")
    local_model: str | None = Field(None, description="diffusers i2v model id or directory; 'tiny' in tests")
    local_pipeline: str = Field("LTXImageToVideoPipeline", description="diffusers class of local_model")
    device: str | None = Field(None, description="torch device of the local model (default: PACKSHOT_DEVICE)")
    local_steps: int = 30
    local_fps: int = 24
    local_long_side: int = Field(768, description="long side of local clips in pixels (rounded to 32)")
    memory_plan: Literal["auto", "full", "text-offload", "fp8", "group-offload"] = Field(
        "auto", description="how the local video model is placed on the card (packshot.memory)"
    )
    prices_usd_per_s: dict[str, float] = Field(
        default_factory=lambda: {
            "runway/gen4_turbo": 0.05,
            "runway/gen4.5": 0.12,
            "veo/veo-3.1-fast-generate-preview": 0.10,
            "veo/veo-3.1-generate-preview": 0.40,
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
        "Google Veo 3.1 (Gemini API, 720p): Fast $0.10/s, Standard $0.40/s (2026-05); "
        "OpenAI Sora: sora-2 $0.10/s, sora-2-pro $0.30/s at 720p, $0.50/s at 1792x1024 (2026-11)"
    )
