"""Color names as merchants write them, resolved to sRGB.

``parse_color("Navy")``, ``parse_color("#1F2A44")`` and ``parse_color("Midnight=#1F2A44")`` all
return a :class:`ColorVariant`; an unknown name raises ``ValueError`` suggesting close names.

The name table is data: ``packshot/data/color_names.csv`` (columns ``name,hex,source``). Each row
names where its value comes from:

- ``css``: the W3C CSS Color Module Level 4 named color of that name;
- ``wikipedia``: the value listed for that name in Wikipedia's "List of colors" articles;
- ``packshot``: chosen by this project where retail usage differs from both (an apparel "Navy" is
  far darker and greyer than CSS ``navy`` #000080; CSS ``darkgray`` is lighter than ``gray``).

Names not in the table fall back to the CSS named colors that Pillow knows. Matching ignores case,
spaces, hyphens and underscores, and treats "gray" as "grey".
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from functools import cache
from importlib import resources

from PIL import ImageColor

from packshot.types import ColorVariant

_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


def _norm(name: str) -> str:
    """Lowercase, words separated by one space: 'Off-White', 'off_white', 'OFF  WHITE' -> 'off white'."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower()).replace("gray", "grey")


def _compact(name: str) -> str:
    return _norm(name).replace(" ", "")


@cache
def named_colors() -> dict[str, str]:
    """Merchant color table, normalized name -> ``#RRGGBB`` (see the module docstring for sources)."""
    text = resources.files("packshot").joinpath("data/color_names.csv").read_text(encoding="utf-8")
    return {_norm(row["name"]): row["hex"].upper() for row in csv.DictReader(io.StringIO(text))}


@cache
def _by_compact_name() -> dict[str, str]:
    css = {_compact(n): v for n, v in ImageColor.colormap.items() if isinstance(v, str)}
    table = {_compact(n): v for n, v in named_colors().items()}
    return css | table  # the merchant table wins over CSS where both name a color


def known_names() -> list[str]:
    css = [_norm(n) for n in ImageColor.colormap]
    return sorted(set(named_colors()) | set(css))


def _lookup(name: str) -> str | None:
    return _by_compact_name().get(_compact(name))


def parse_color(text: str) -> ColorVariant:
    """Parse one catalog color option: a name, a hex value, or ``Name=#RRGGBB``."""
    text = text.strip()
    if not text:
        raise ValueError("empty color")
    name, _, explicit = text.partition("=")
    name, explicit = name.strip(), explicit.strip()
    if explicit:
        if not name:
            raise ValueError(f"color {text!r} has a hex value but no name; write it as 'Name=#RRGGBB'")
        return ColorVariant(name=name, rgb=_hex_to_rgb(explicit))
    if _HEX.match(name):
        return ColorVariant(name=name.upper().lstrip("#"), rgb=_hex_to_rgb(name))
    value = _lookup(name)
    if value is None:
        raise ValueError(_unknown_message(name))
    return ColorVariant(name=name, rgb=ImageColor.getrgb(value)[:3])


def _unknown_message(name: str) -> str:
    names = known_names()
    close = difflib.get_close_matches(_norm(name), names, n=3, cutoff=0.6)
    if not close:  # 'Dark Navy Heather' -> names sharing a word, longest first
        words = set(_norm(name).split())
        close = sorted((n for n in names if words & set(n.split())), key=len, reverse=True)[:3]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    two_tone = " Two-tone options need the main material's color only." if "/" in name else ""
    return (f"unknown color name {name!r}{hint} (or give a hex value like '{name.strip()}=#1F2A44')"
            f"{two_tone}")


def _hex_to_rgb(value: str) -> tuple[int, int, int]:
    if not _HEX.match(value):
        raise ValueError(f"bad hex color {value!r}; write it as #RRGGBB")
    v = value.lstrip("#")
    if len(v) == 3:
        v = "".join(c * 2 for c in v)
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)
