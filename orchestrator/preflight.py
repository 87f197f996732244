"""Checks made when a run starts, before any image work: what would otherwise fail at the end of a
long run (the video stage's provider and its API key) fails at once, with one line saying where to fix it."""

from __future__ import annotations

from pathlib import Path

from orchestrator.options import RunOptions
from orchestrator.settings import Settings
from packshot.errors import ConfigError, PackshotError
from packshot.types import Product

FORM_FIELD = "video.provider in the run form (packshot run --video-provider)"


def video_providers(options: RunOptions, products: list[Product], settings: Settings) -> dict[str, list[str]]:
    """Provider name -> the brands (``-`` for none) whose products it would render, as the video stage
    resolves it: the brand's ``video: provider``, else the run's (form or ``PACKSHOT_VIDEO__PROVIDER``)."""
    from orchestrator.clips import brand_video_style
    from packshot.schemas.brand import brand_style_dirs

    base = Path(options.catalog).resolve().parent if "://" not in options.catalog else None
    dirs = brand_style_dirs(settings.brand_styles_dir, base)
    wanted: dict[str, list[str]] = {}
    for brand in sorted({p.brand_style or options.brand or "" for p in products}):
        style = brand_video_style(brand, dirs) if brand else None
        name = (style.provider if style is not None else None) or settings.video.provider
        wanted.setdefault(name, []).append(brand or "-")
    return wanted


def check_video_ready(options: RunOptions, products: list[Product], settings: Settings) -> None:
    """With the video stage: every provider it will call is chosen and, for a hosted one, has an API
    key (environment variable or Prefect Secret block). ``settings`` are the run's (form over env)."""
    if "video" not in options.stages or not products:
        return
    from stages.video.providers import make_provider
    from stages.video.providers.base import HostedProvider

    for name, brands in video_providers(options, products, settings).items():
        if name == "none":
            named = ", ".join(b for b in brands if b != "-")
            named = f" (brand {named} names none)" if named else ""
            raise ConfigError(f"the video stage needs a provider{named}: choose runway, sora or local in "
                              f"{FORM_FIELD}, set PACKSHOT_VIDEO__PROVIDER, or leave out the video stage")
        provider = make_provider(name, settings.video)
        try:
            if isinstance(provider, HostedProvider):
                provider.client()  # reads the key (env or Prefect Secret block); raises when there is none
        except PackshotError as exc:
            raise ConfigError(f"video stage: {exc}; or choose another provider in {FORM_FIELD}") from None
        finally:
            provider.close()
