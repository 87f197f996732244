"""All settings of a run, read from environment variables (prefix ``PACKSHOT_``) or a ``.env`` file.

Each group is defined beside the code that owns it (``stages.segment.settings`` ...); this module only
composes them. Nested groups use a double underscore: ``PACKSHOT_SEGMENT__BACKEND=sam``,
``PACKSHOT_SEGMENT__SAM_CHECKPOINT=/models/sam_vit_h_4b8939.pth``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from packshot.config import GenerativeSettings, LoadSettings, StorageSettings
from packshot.licences import LicenceSettings
from packshot.sources import SourceSettings
from stages.export.settings import ExportSettings
from stages.recolor.settings import RecolorSettings
from stages.segment.settings import SegmentSettings
from stages.video.settings import VideoSettings


class OrchestrationSettings(BaseModel):
    """Deployments, caching and GPU sharing (``flows/``, ``orchestrator``)."""

    timezone: str = Field("UTC", description="merchant's timezone of the nightly run, e.g. Europe/Berlin")
    nightly_cron: str = Field("0 2 * * *", description="cron of the nightly catalog run, in `timezone`")
    nightly_catalog: str = Field(
        "catalogs/demo/catalog.csv",
        description="what the nightly run reads: a CSV or feed file, an https feed URL, shopify://SHOP or "
        "woocommerce://HOST",
    )
    nightly_out: str = Field("out/nightly", description="folder or s3://bucket/prefix of the nightly run")
    inbox: str = Field("inbox", description="folder or s3://bucket/prefix where merchants drop catalog CSVs")
    inbox_out: str = Field("out/inbox", description="outputs of intake runs: <inbox_out>/<csv stem>")
    review_url: str = Field(
        "http://127.0.0.1:8765", description="where `packshot review` is reached from the merchant's browser "
        "(its --port, or a proxy in front of it); the Prefect summary links local runs' contact sheets there")
    stage_cache: bool = Field(True, description="reuse cutouts and generated images across runs (by content)")
    share_fills: bool = Field(
        True, description="one generation per distinct request (size, prompt, seed, mask up to the product's "
        "edge), fitted to each preset; false: one per preset (same pixels up to that edge, N times the GPU)")
    gpu_lock_dir: Path = Field(Path("/tmp/packshot-gpu-locks"), description="lock files that share a GPU")
    gpu_concurrency_limit: str | None = Field(
        None, description="Prefect global concurrency limit name prefix used as well (gpu -> gpu-<card uuid>)"
    )
    prefetch: int = Field(2, description="images loaded ahead while the GPU works on the current product")
    gpu_workers: Literal["in-process", "served"] = Field(
        "in-process", description="served: batches go to the resident GPU task worker (flows.gpu_worker)"
    )
    gpu_worker_pickup_s: float = Field(
        300.0, description="served: fail the run when no GPU worker has taken its first task in this time"
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
    recolor: RecolorSettings = RecolorSettings()
    storage: StorageSettings = StorageSettings()
    video: VideoSettings = VideoSettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()
    sources: SourceSettings = SourceSettings()
    licences: LicenceSettings = LicenceSettings()


@lru_cache
def get_settings() -> Settings:
    return Settings()
