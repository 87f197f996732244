"""What a caller asks for (``ClipRequest``), what we will send (``ClipSpec``) and what came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from packshot.schemas.brand import BrandVideoStyle, ProviderName

ClipStatus = Literal["succeeded", "failed", "rejected", "skipped-budget", "pending"]
"""``rejected``: the provider's safety/moderation system refused the clip (never retried).
``pending``: the provider is still working after ``poll_timeout_s``; a rerun resumes polling."""


@dataclass
class ClipRequest:
    """One clip to make from one product image.

    ``image``: RGB ``HxWx3 uint8`` array, or encoded PNG/JPEG/WebP bytes. ``prompt``: what the product
    is (title, material); the brand style and camera motion are added to it. The override fields win
    over ``brand`` which wins over the run's ``VideoSettings``.
    """

    sku: str
    image: np.ndarray | bytes
    prompt: str = ""
    name: str = "main"
    brand: BrandVideoStyle | None = None
    provider: ProviderName | None = None
    model: str | None = None
    duration_s: int | None = None
    ratio: str | None = None
    camera_motion: str | None = None


@dataclass
class ClipSpec:
    """A request resolved against a provider's rules: exactly what will be submitted and paid for."""

    key: str  # stable across runs for the same inputs: the ledger's key
    sku: str
    name: str
    provider: ProviderName
    model: str
    duration_s: int
    size: tuple[int, int]  # output width, height
    size_label: str  # the provider's own spelling: "1280:720" (Runway), "1280x720" (Sora)
    prompt_text: str
    price_usd_per_s: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def cost_usd(self) -> float | None:
        return None if self.price_usd_per_s is None else round(self.price_usd_per_s * self.duration_s, 4)


class ClipResult(BaseModel):
    """The outcome of one clip. ``error`` never contains a secret."""

    sku: str
    name: str
    provider: str
    model: str
    status: ClipStatus
    cost_usd: float = 0.0
    output_uri: str | None = None
    job_id: str | None = None
    error: str | None = None
    error_code: str | None = None


class EstimateLine(BaseModel):
    sku: str
    name: str
    provider: str
    model: str
    duration_s: int
    size: str
    price_usd_per_s: float | None
    cost_usd: float | None
    within_budget: bool
    notes: list[str] = Field(default_factory=list)


class CostEstimate(BaseModel):
    lines: list[EstimateLine]
    total_usd: float
    cap_usd: float
    committed_usd: float = Field(0.0, description="already spent in this run's ledger (a resumed run)")
    prices_source: str = ""

    @property
    def over_budget(self) -> list[EstimateLine]:
        return [line for line in self.lines if not line.within_budget]
