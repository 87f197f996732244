"""Checks and parsing of single fields shared by the formats (sku, image references, bbox, colors)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from packshot.catalog.base import Intake
from packshot.colors import parse_color
from packshot.types import ColorVariant, Product

# Option/attribute names that mean "color" (a few languages, since stores export in their own).
COLOR_OPTION_NAMES = frozenset(
    {
        "color",
        "colour",
        "colors",
        "colours",
        "farbe",
        "farben",
        "couleur",
        "couleurs",
        "colore",
        "colori",
        "kleur",
        "kleuren",
        "färg",
        "farve",
        "farge",
        "väri",
        "kolor",
        "cor",
        "barva",
        "renk",
        "цвет",
        "色",
        "颜色",
        "顏色",
        "カラー",
    }
)
MAX_SKU_LENGTH = 100
URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sku_problem(sku: str, *, strict: bool = True) -> str | None:
    """Why ``sku`` cannot name a product folder, or None. ``strict`` is our format's stricter rule set."""
    if CONTROL.search(sku):
        return "sku contains a control character (tab, line break ...); remove it"
    if "/" in sku or "\\" in sku:
        return "sku contains '/' or '\\'; skus become folder names, so use letters, digits, '-' or '_'"
    if sku in (".", ".."):
        return f"sku {sku!r} cannot be a folder name; use letters, digits, '-' or '_'"
    if strict and ".." in sku:
        return "sku contains '..'; skus become folder names, so use letters, digits, '-' or '_'"
    limit = MAX_SKU_LENGTH if strict else 255
    if len(sku) > limit:
        return f"sku is {len(sku)} characters long; keep it at most {limit} (it becomes a folder name)"
    return None


def reference_problem(ref: str) -> str | None:
    """Why an image/mask reference is refused at parse time, or None. ``http://`` passes here;
    the loader refuses it unless ``PACKSHOT_LOAD__ALLOW_HTTP`` is set."""
    inside = "images must live in the catalog's folder (a relative path) or be s3:// or https:// URLs"
    if CONTROL.search(ref):
        return f"{ref!r} contains a control character; {inside}"
    scheme = URL_SCHEME.match(ref)
    if scheme and not WINDOWS_ABSOLUTE.match(ref):
        name = scheme.group(1).lower()
        if name == "s3":
            bucket, _, key = ref[5:].partition("/") if ref[3:5] == "//" else ("", "", "")
            return None if bucket and key else f"{ref!r} is not a valid s3 reference; write s3://bucket/key"
        if name in ("https", "http"):
            return None if re.match(r"^https?://[^/\s]+", ref, re.I) else f"{ref!r} has no host name"
        return f"{ref!r} uses {name}:, which is not accepted; {inside}"
    if ref.startswith(("/", "\\", "~")) or WINDOWS_ABSOLUTE.match(ref):
        return f"{ref!r} is an absolute path; {inside}"
    if ".." in re.split(r"[\\/]", ref):
        return f"{ref!r} leaves the catalog's folder ('..'); {inside}"
    return None


def normalize_reference(ref: str) -> str:
    """Relative paths get forward slashes (Windows merchants write backslashes); URLs stay as written."""
    if URL_SCHEME.match(ref):
        return ref
    ref = ref.replace("\\", "/")
    while ref.startswith("./"):
        ref = ref[2:]
    return ref


def parse_bbox(text: str) -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` in source pixels (spaces allowed) -> tuple; ValueError says what is wrong."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise ValueError(f"bbox {text!r} must be four numbers x0,y0,x1,y1 in source pixels")
    try:
        x0, y0, x1, y1 = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"bbox {text!r} must hold whole pixel numbers, like 120,80,900,1000") from None
    if min(x0, y0) < 0:
        raise ValueError(f"bbox {text!r} has a negative coordinate")
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"bbox {text!r} needs x1 > x0 and y1 > y0 (x0,y0 is the top-left corner)")
    return x0, y0, x1, y1


def is_color_option(name: str) -> bool:
    key = name.strip().lower()
    return key.removeprefix("pa_") in COLOR_OPTION_NAMES


class Colors:
    """A product's colors in first-seen order; variant rows repeat them, so each text is parsed once."""

    def __init__(self) -> None:
        self.by_slug: dict[str, ColorVariant] = {}
        self.seen: set[str] = set()
        self.slug_of: dict[str, str] = {}  # text as written (casefolded) -> its color's slug

    def add(self, text: str) -> str | None:
        """Parse one color; return parse_color's message when it is bad (reported once per product)."""
        key = text.strip().casefold()
        if key in self.seen:
            return None
        self.seen.add(key)
        try:
            color = parse_color(text)
        except ValueError as exc:
            return str(exc)
        self.slug_of[key] = color.slug
        other = self.by_slug.setdefault(color.slug, color)
        if other is not color:
            return (f"colors {other.name!r} and {color.name!r} both become the variant name {color.slug!r} "
                    f"(file names); rename one of them")
        return None

    def as_list(self) -> list[ColorVariant]:
        return list(self.by_slug.values())

    def photographed(self, text: str, ref: str | None) -> None:
        """The color ``text`` (added before) has its own photo ``ref`` (a variant's image): the first
        one named is kept."""
        slug = self.slug_of.get(text.strip().casefold())
        color = self.by_slug.get(slug) if slug else None
        if ref and color is not None and color.image is None:
            self.by_slug[slug] = color.model_copy(update={"image": ref})


def dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def build_product(intake: Intake, line: int, columns: dict[str, str], **fields: Any) -> Product | None:
    """Validate a Product with pydantic; its complaints become RowErrors on the given line."""
    try:
        return Product(source_file=intake.file, source_line=line, **fields)
    except ValidationError as exc:
        for problem in exc.errors():
            name = str(problem["loc"][0]) if problem["loc"] else None
            intake.error(line, columns.get(name or "", name), problem["msg"], fields.get("sku"))
        return None


def http_notes(products: list[Product]) -> list[str]:
    plain = [(p, ref) for p in products for ref in p.images if ref.lower().startswith("http://")]
    if not plain:
        return []
    product, _ = plain[0]
    return [
        f"{plural(len(plain), 'image reference')} use plain http:// (first: sku {product.sku}, line "
        f"{product.source_line}); the loader refuses them unless PACKSHOT_LOAD__ALLOW_HTTP=true. "
        "Prefer https:// URLs."
    ]


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
