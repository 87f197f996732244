"""How an image reference is shown in messages, and the shared size-limit message."""

from __future__ import annotations

from urllib.parse import urlsplit

from packshot.config import LoadSettings
from packshot.errors import ImageLoadError


def display_ref(ref: str) -> str:
    """The reference without query string or credentials (pre-signed URLs carry secrets there)."""
    if "://" not in ref:
        return ref
    parts = urlsplit(ref)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")


def too_big_error(ref: str, detail: str, settings: LoadSettings) -> ImageLoadError:
    return ImageLoadError(
        f"Image {display_ref(ref)}: refused, the file is too large ({detail}); the limit is "
        f"load.max_download_bytes = {settings.max_download_bytes:,}. Raise PACKSHOT_LOAD__MAX_DOWNLOAD_BYTES "
        "if the image is genuine."
    )
