"""``open_source(uri)``: the source a URI names (see :mod:`packshot.sources.base` for the URIs)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from packshot.config import LoadSettings
from packshot.sources.base import CsvSource, Source, SourceError, SourceSettings, display_uri

_FEED_SUFFIXES = (".xml", ".tsv", ".txt", ".rss", ".atom")


def open_source(
    uri: str | Path, settings: SourceSettings | None = None, load: LoadSettings | None = None
) -> Source:
    """The source ``uri`` names (URIs: :mod:`packshot.sources.base`); SourceError for an unknown scheme."""
    settings = settings or SourceSettings()
    load = load or LoadSettings()
    text = str(uri)
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme == "shopify":
        from packshot.sources.shopify import ShopifySource

        return ShopifySource(text, settings)
    if scheme == "woocommerce":
        from packshot.sources.woocommerce import WooCommerceSource

        return WooCommerceSource(text, settings)
    if scheme in ("https", "http"):
        from packshot.sources.gmc import FeedSource

        return FeedSource(text, settings, load)
    if scheme:
        raise SourceError(
            f"unknown catalog source {display_uri(text)!r}: use a file path, an https:// feed URL, "
            "shopify://SHOP or woocommerce://HOST"
        )
    path = Path(text)
    if _looks_like_feed(path):
        from packshot.sources.gmc import FeedSource

        return FeedSource(text, settings, load)
    return CsvSource(path)


def _looks_like_feed(path: Path) -> bool:
    """XML by name or content; a .tsv/.txt whose header names Merchant Center attributes."""
    if not path.is_file():
        return path.suffix.lower() in (".xml", ".rss", ".atom")
    with path.open("rb") as fh:
        head = fh.read(4096)
    stripped = head.lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n")
    if stripped.startswith(b"<") or path.suffix.lower() in (".xml", ".rss", ".atom"):
        return True
    if path.suffix.lower() not in _FEED_SUFFIXES:
        return False
    from packshot.sources.gmc import is_feed_header

    return is_feed_header(head)
