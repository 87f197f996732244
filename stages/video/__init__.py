"""Image-to-video ad clips from a product's best images (optional, per run).

Providers: Runway (``runwayml`` SDK), OpenAI Sora (``openai`` SDK; being withdrawn by OpenAI) and a
self-hosted diffusers pipeline (LTX-Video). ``plan_clips``/``format_estimate`` price a run without
network access; ``render_clips`` makes the clips with a resumable on-disk job ledger and a spending cap.
"""

from stages.video.plan import format_estimate, plan_clips
from stages.video.render import render_clips
from stages.video.spec import BrandVideoStyle, ClipRequest, ClipResult, ClipSpec, CostEstimate, EstimateLine

__all__ = [
    "BrandVideoStyle",
    "ClipRequest",
    "ClipResult",
    "ClipSpec",
    "CostEstimate",
    "EstimateLine",
    "format_estimate",
    "plan_clips",
    "render_clips",
]
