"""Feed downloads and image change markers, both through packshot's SSRF-safe downloader.

``fetch_feed`` is ``imageio.download.fetch_url`` with the feed's own size cap and time limit (a feed is a
text file many megabytes long, not an image). ``image_validators`` sends one ``HEAD`` per image URL
(no body is downloaded) under the same rules: scheme, resolved addresses checked and pinned,
redirects re-checked at every hop; it returns the ETag or Last-Modified the server reports, which
become part of the product's ``source_version``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpcore

from packshot.config import LoadSettings
from packshot.errors import ImageLoadError
from packshot.sources.base import SourceError, SourceSettings, display_uri

_REDIRECTS = {301, 302, 303, 307, 308}
_HEAD_WORKERS = 8
FEED_ACCEPT = (
    "application/xml, application/rss+xml, application/atom+xml, text/xml, text/tab-separated-values, "
    "text/plain, */*;q=0.5"
)


def fetch_feed(url: str, load: LoadSettings, settings: SourceSettings) -> bytes:
    """The feed's bytes; SourceError names the URL (without its query) and what to do."""
    from packshot.imageio.download import fetch_url

    limits = {"max_download_bytes": settings.feed_max_bytes, "download_timeout_s": settings.feed_timeout_s}
    try:
        return fetch_url(url, load.model_copy(update=limits), accept=FEED_ACCEPT)
    except ImageLoadError as exc:
        shown = display_uri(url)
        detail = str(exc).split(": ", 1)[-1]
        if "too large" in detail:
            detail = (
                f"the feed is larger than sources.feed_max_bytes = {settings.feed_max_bytes:,} bytes; "
                "raise PACKSHOT_SOURCES__FEED_MAX_BYTES if it is genuine"
            )
        elif "within load.download_timeout_s" in detail:
            detail = (
                f"the download did not finish within sources.feed_timeout_s = {settings.feed_timeout_s:g} s; "
                "check the server or raise PACKSHOT_SOURCES__FEED_TIMEOUT_S"
            )
        raise SourceError(f"feed {shown}: {detail}") from None


def image_validators(urls: list[str], load: LoadSettings) -> dict[str, str | None]:
    """``{url: "etag:..." | "modified:..." | None}``; None when the server gives neither or fails."""
    unique = list(dict.fromkeys(u for u in urls if u.lower().startswith(("https://", "http://"))))
    with ThreadPoolExecutor(max_workers=_HEAD_WORKERS) as pool:
        return dict(zip(unique, pool.map(lambda u: _validator(u, load), unique), strict=True))


def _validator(url: str, load: LoadSettings) -> str | None:
    try:
        headers = _head(url, load)
    except (ImageLoadError, httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError):
        return None  # unknown: the run downloads the image and compares its bytes instead
    if headers is None:
        return None
    if etag := headers.get("etag"):
        return f"etag:{etag}"
    if modified := headers.get("last-modified"):
        return f"modified:{modified}"
    return None


def _head(url: str, load: LoadSettings) -> dict[str, str] | None:
    """Response headers of a HEAD on ``url`` after redirects (the SSRF-safe downloader's rules), or None
    for a non-200 answer."""
    from packshot.imageio.download import HTTPStatusError, fetch_headers

    try:
        return fetch_headers(url, load)
    except HTTPStatusError:
        return None
