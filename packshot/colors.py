"""Color names as merchants write them, resolved to sRGB.

``parse_color("Navy")``, ``parse_color("#1F2A44")`` and ``parse_color("Midnight=#1F2A44")`` all
return a :class:`ColorVariant`; an unknown name raises ``ValueError`` suggesting close names.
"""

from __future__ import annotations

import difflib
import re

from PIL import ImageColor

from packshot.types import ColorVariant

# Merchant vocabulary first (apparel and home); CSS names fill in the rest.
NAMED_COLORS: dict[str, str] = {
    "navy": "#1F2A44",
    "forest green": "#228B22",
    "off-white": "#F5F3EE",
    "charcoal": "#36454F",
    "heather grey": "#9A9A9A",
    "burgundy": "#800020",
    "cream": "#FFFDD0",
    "sand": "#C2B280",
    "olive": "#708238",
    "mustard": "#E1AD01",
}

_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower()).replace("gray", "grey")


def known_names() -> list[str]:
    css = [n.replace("gray", "grey") for n in ImageColor.colormap]
    return sorted(set(NAMED_COLORS) | set(css))


def _lookup(name: str) -> str | None:
    key = _norm(name)
    if key in NAMED_COLORS:
        return NAMED_COLORS[key]
    compact = key.replace(" ", "").replace("-", "")
    for candidate in (compact, compact.replace("grey", "gray")):
        if candidate in ImageColor.colormap:
            return ImageColor.colormap[candidate]
    return None


def parse_color(text: str) -> ColorVariant:
    text = text.strip()
    if not text:
        raise ValueError("empty color")
    name, _, explicit = text.partition("=")
    name, explicit = name.strip(), explicit.strip()
    if explicit:
        return ColorVariant(name=name, rgb=_hex_to_rgb(explicit))
    if _HEX.match(name):
        return ColorVariant(name=name.upper().lstrip("#"), rgb=_hex_to_rgb(name))
    value = _lookup(name)
    if value is None:
        close = difflib.get_close_matches(_norm(name), known_names(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown color name {name!r}{hint} (or give a hex value like 'Name=#1F2A44')")
    return ColorVariant(name=name, rgb=ImageColor.getrgb(value)[:3])


def _hex_to_rgb(value: str) -> tuple[int, int, int]:
    if not _HEX.match(value):
        raise ValueError(f"bad hex color {value!r}; write it as #RRGGBB")
    v = value.lstrip("#")
    if len(v) == 3:
        v = "".join(c * 2 for c in v)
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)
