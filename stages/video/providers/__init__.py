"""Image-to-video providers behind one interface (``base.VideoProvider``)."""

from __future__ import annotations

from packshot.errors import ConfigError
from stages.video.providers.base import VideoProvider


def get_provider_class(name: str) -> type[VideoProvider]:
    """The provider class for ``name``; SDKs and torch are imported only by the provider that needs them."""
    if name == "runway":
        from stages.video.providers.runway import RunwayProvider

        return RunwayProvider
    if name == "sora":
        from stages.video.providers.sora import SoraProvider

        return SoraProvider
    if name == "local":
        from stages.video.providers.local import LocalProvider

        return LocalProvider
    raise ConfigError(
        f"unknown video provider '{name}': use runway, sora or local (PACKSHOT_VIDEO__PROVIDER)"
    )
