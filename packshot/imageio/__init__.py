"""Safe image loading: catalog-relative paths, ``s3://`` objects and ``https://`` URLs.

Every failure is an :class:`~packshot.errors.ImageLoadError` whose message names the image and
says what to do. Images come out as sRGB ``HxWx3 uint8`` plus an optional ``HxW uint8`` alpha.

Safety rules:
- local references must stay inside the catalog folder (no ``..``, outside absolute paths or symlinks);
- the pixel count is checked from the header before any pixel is decoded (decompression bombs);
- URLs must resolve to public addresses only (or to ``load.allowed_networks``); the connection goes to
  the address that was checked, so DNS rebinding cannot swap it, while TLS still verifies the hostname;
  redirects are followed by hand and checked again at every hop; size and total time are capped.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from packshot.config import LoadSettings
from packshot.errors import ImageLoadError
from packshot.imageio.decode import SUPPORTED_FORMATS, LoadedImage, decode_image, probe_file
from packshot.imageio.download import check_url, fetch_url
from packshot.imageio.local import read_local, read_regular_file, regular_file, resolve_local
from packshot.imageio.refs import display_ref
from packshot.imageio.s3 import read_s3

__all__ = [
    "SUPPORTED_FORMATS", "LoadedImage", "check_url", "decode_image", "fetch_url", "load_image",
    "probe_file", "read_local", "read_regular_file", "regular_file", "resolve_local",
]


def load_image(
    ref: str, base_dir: Path, settings: LoadSettings, s3_client=None, data: bytes | None = None
) -> LoadedImage:
    """Load ``ref`` (catalog-relative path, ``s3://bucket/key`` or ``https://`` URL) and decode it.

    ``data``: the bytes of ``ref`` when the caller has already read them (the pipeline hashes a
    local file before deciding to decode it), so the file is not read twice.
    """
    try:
        scheme = urlsplit(ref).scheme.lower() if "://" in ref else ""
        if data is not None:
            pass
        elif scheme in ("http", "https"):
            data = fetch_url(ref, settings)
        elif scheme == "s3":
            data = read_s3(ref, settings, s3_client)
        elif scheme:
            raise ImageLoadError(
                f"Image {ref!r}: unsupported scheme '{scheme}://'. Use a path relative to the catalog "
                "folder, s3://bucket/key or an https:// URL."
            )
        else:
            data = read_local(ref, base_dir)
        loaded = decode_image(data, display_ref(ref), settings)
    except ImageLoadError:
        raise
    except MemoryError as exc:
        raise ImageLoadError(
            f"Image {display_ref(ref)}: ran out of memory while loading it; lower load.max_pixels "
            "(PACKSHOT_LOAD__MAX_PIXELS) or give the worker more memory."
        ) from exc
    except Exception as exc:  # any other failure is still a per-image error, never a crash
        raise ImageLoadError(
            f"Image {display_ref(ref)}: could not be loaded ({type(exc).__name__}: {exc})."
        ) from exc
    loaded.source = ref
    return loaded

