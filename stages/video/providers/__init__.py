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


def _veo(settings: VideoSettings, device: str) -> VideoProvider:
    from stages.video.providers.veo import VeoProvider

    return VeoProvider(settings)


def _local(settings: VideoSettings, device: str) -> VideoProvider:
    from stages.video.providers.local import LocalProvider

    return LocalProvider(settings)


PROVIDERS: BackendTable[VideoSettings, VideoProvider] = BackendTable("video", "PACKSHOT_VIDEO__PROVIDER")
def local_licence(settings: VideoSettings) -> str:
    """The licence key of the local video model: Wan is Apache-2.0, LTX-Video's open weights are
    revenue-gated, the tiny test model has none."""
    model = f"{settings.local_model or ''} {settings.local_pipeline}".lower()
    if settings.local_model == "tiny":
        return "test"
    return "apache-2.0" if "wan" in model else "ltxv-open-weights"


PROVIDERS.register(BackendSpec("runway", _runway, "Runway's image-to-video API (runwayml SDK)", auto=False,
                               licence="service", extra="video", modules=("runwayml", "av")))
PROVIDERS.register(BackendSpec("veo", _veo, "Google Veo 3.1 through the Gemini API (google-genai SDK)",
                               auto=False, licence="service", extra="video", modules=("google.genai", "av")))
PROVIDERS.register(BackendSpec("sora", _sora, "OpenAI Sora (openai SDK; retired 2026-09-24)", auto=False,
                               licence="service", extra="video", modules=("openai", "av")))
PROVIDERS.register(BackendSpec("local", _local, "a diffusers image-to-video model on this GPU", auto=False,
                               licence=local_licence, extra="generative,video",
                               modules=("torch", "diffusers", "transformers", "av")))


def make_provider(name: str, settings: VideoSettings) -> VideoProvider:
    """The provider ``name`` (runway, veo, sora or local); an unknown name is a ConfigError naming the
    setting."""
    return PROVIDERS.build(PROVIDERS.spec(name), settings, settings.device or "auto")
