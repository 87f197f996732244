"""The color the product has in its photo ("own color"), which relative recolors start from.

In order: the catalog's ``photo_color`` column; a variant color named in the title ("Pillar candle,
cream"); the variant whose swatch matches the measured material. Photos render a color darker and
less saturated than its swatch (studio light, shading), so the match is on hue and relative chroma,
not on lightness: chromatic materials match a swatch within ``HUE_TOLERANCE`` degrees of hue whose
chroma is 0.25-1.6x the measured one's; neutral ones match the neutral swatch nearest in lightness
within ``NEUTRAL_L_TOLERANCE``. A material much lighter than a swatch (``LIGHTER_TOLERANCE``) is not
that swatch photographed: a blue mug at L* 28 is not a navy at L* 17, and taking it for one would
make every other variant far too light. When nothing matches, the own color is unknown.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from packshot.types import ColorVariant, Product
from stages.recolor.transform import srgb_to_lab

HUE_TOLERANCE = 25.0  # degrees of CIELAB hue between the measured material and a swatch
CHROMA_RATIO = (0.25, 1.6)  # measured chroma / swatch chroma accepted for a match
NEUTRAL_CHROMA = 8.0  # CIELAB chroma below which a measured material (or a swatch: 12) is neutral
NEUTRAL_L_TOLERANCE = 25.0
LIGHTER_TOLERANCE = 6.0  # L* a photographed material may be above its swatch (a lit highlight side)


@dataclass(frozen=True)
class OwnColor:
    color: ColorVariant | None  # None: not known
    source: str  # where it came from, for the manifest

    def describe(self) -> str | None:
        return f"{self.color.name} {self.color.hex}" if self.color else None


def own_color(product: Product | None, measured: tuple[float, float, float]) -> OwnColor:
    """The product's own color given its catalog row (``None``: only ``measured`` is known) and the
    measured median CIELAB of its main material in the photo."""
    if product is not None and product.photo_color is not None:
        return OwnColor(product.photo_color, "catalog column photo_color")
    colors = product.colors if product is not None else []
    title = _words(product.title) if product is not None else ""
    named = [c for c in colors if _words(c.name) and f" {_words(c.name)} " in f" {title} "]
    if named:
        return OwnColor(max(named, key=lambda c: len(c.name)), "named in the title")
    match = match_swatch(measured, colors)
    if match is not None:
        return OwnColor(match, "the variant whose swatch matches the photo")
    return OwnColor(None, "not known (no photo_color column, no variant color in the title or matching the "
                    "photo): variants aim at the swatch values")


def match_swatch(measured: tuple[float, float, float], colors: list[ColorVariant]) -> ColorVariant | None:
    """The variant whose swatch the photographed material (median CIELAB ``measured``) is, or None."""
    lm, am, bm = measured
    cm, hm = math.hypot(am, bm), math.degrees(math.atan2(bm, am))
    best, best_score = None, math.inf
    for color in colors:
        ls, as_, bs = srgb_to_lab(color.rgb)
        if lm > ls + LIGHTER_TOLERANCE:
            continue
        cs, hs = math.hypot(as_, bs), math.degrees(math.atan2(bs, as_))
        if cm < NEUTRAL_CHROMA:
            near = cs < 1.5 * NEUTRAL_CHROMA and abs(ls - lm) <= NEUTRAL_L_TOLERANCE
            score = abs(ls - lm) if near else math.inf
        else:
            hue = abs((hs - hm + 180) % 360 - 180)
            ratio = cm / cs if cs > 0 else math.inf
            ok = hue <= HUE_TOLERANCE and CHROMA_RATIO[0] <= ratio <= CHROMA_RATIO[1]
            score = hue if ok else math.inf
        if score < best_score:
            best, best_score = color, score
    return best


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower().replace("grey", "gray")))
