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

import cv2
import numpy as np
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


def delta_e2000(lab1, lab2) -> np.ndarray:
    """CIEDE2000 color difference (Sharma, Wu & Dalal 2005, with kL = kC = kH = 1) between CIELAB
    arrays ``...x3`` (broadcast against each other); float64 of the leading shape."""
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dl, dc = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhh = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    hp_mean = np.where(np.abs(h1p - h2p) > 180, np.where(h_sum < 360, h_sum + 360, h_sum - 360), h_sum) / 2
    hp_mean = np.where(c1p * c2p == 0, h_sum, hp_mean)
    t = (1 - 0.17 * np.cos(np.radians(hp_mean - 30)) + 0.24 * np.cos(np.radians(2 * hp_mean))
         + 0.32 * np.cos(np.radians(3 * hp_mean + 6)) - 0.20 * np.cos(np.radians(4 * hp_mean - 63)))
    sl = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    sc = 1 + 0.045 * cp_mean
    sh = 1 + 0.015 * cp_mean * t
    d_theta = 30 * np.exp(-(((hp_mean - 275) / 25) ** 2))
    rc = 2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
    rt = -np.sin(np.radians(2 * d_theta)) * rc
    return np.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2 + rt * (dc / sc) * (dhh / sh))


def srgb_to_lab(rgb) -> np.ndarray:
    """sRGB ``...x3`` (0-255) -> CIELAB (D65) float64 ``...x3``, as OpenCV's float conversion computes it."""
    px = np.asarray(rgb, np.float32).reshape(-1, 1, 3) / np.float32(255)
    return cv2.cvtColor(px, cv2.COLOR_RGB2Lab).reshape(np.shape(rgb)).astype(np.float64)
