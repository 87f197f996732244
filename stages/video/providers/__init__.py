"""Image-to-video providers behind one interface (``base.VideoProvider``), in one backend table.

SDKs and torch are imported only by the provider that is built."""

from __future__ import annotations

from packshot.backends import BackendSpec, BackendTable
from stages.video.providers.base import VideoProvider
from stages.video.settings import VideoSettings


def _runway(settings: VideoSettings, device: str) -> VideoProvider:
    from stages.video.providers.runway import RunwayProvider

    return RunwayProvider(settings)


def _sora(settings: VideoSettings, device: str) -> VideoProvider:
    from stages.video.providers.sora import SoraProvider

    return SoraProvider(settings)


def _local(settings: VideoSettings, device: str) -> VideoProvider:
    from stages.video.providers.local import LocalProvider

    return LocalProvider(settings)


PROVIDERS: BackendTable[VideoSettings, VideoProvider] = BackendTable("video", "PACKSHOT_VIDEO__PROVIDER")
PROVIDERS.register(BackendSpec("runway", _runway, "Runway's image-to-video API (runwayml SDK)", auto=False,
                               extra="video", modules=("runwayml", "av")))
PROVIDERS.register(BackendSpec("sora", _sora, "OpenAI Sora (openai SDK; being withdrawn)", auto=False,
                               extra="video", modules=("openai", "av")))
PROVIDERS.register(BackendSpec("local", _local, "a diffusers image-to-video model on this GPU", auto=False,
                               extra="generative,video",
                               modules=("torch", "diffusers", "transformers", "av")))


def make_provider(name: str, settings: VideoSettings) -> VideoProvider:
    """The provider ``name`` (runway, sora or local); an unknown name is a ConfigError naming the setting."""
    return PROVIDERS.build(PROVIDERS.spec(name), settings, settings.device or "auto")
