"""Helpers every source shares: collecting a product's colors, naming a variant group, building a
:class:`Product` whose validation problems become :class:`RowError` entries."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from packshot.colors import parse_color
from packshot.types import ColorVariant, Product, RowError

_TITLE_TAIL = re.compile(r"[\s\-–—|,/:(]+$")
_parse_color = lru_cache(maxsize=4096)(parse_color)  # a store repeats a few dozen colors thousands of times


@dataclass
class Problems:
    """RowErrors of one source read, in the order found."""

    file: str
    errors: list[RowError] = field(default_factory=list)

    def add(self, line: int, column: str | None, message: str, sku: str | None = None) -> None:
        self.errors.append(
            RowError(file=self.file, line=line, column=column, sku=sku or None, message=message)
        )


class ColorList:
    """A product's colors in first-seen order, each distinct text parsed once."""

    def __init__(self) -> None:
        self._by_slug: dict[str, ColorVariant] = {}
        self._seen: set[str] = set()
        self._slug_of: dict[str, str] = {}  # text as written (casefolded) -> its color's slug

    def add(self, text: str) -> str | None:
        """Parse one color; parse_color's message when it is not a color (reported once per product)."""
        key = text.strip().casefold()
        if not key or key in self._seen:
            return None
        self._seen.add(key)
        try:
            color = _parse_color(text)
        except ValueError as exc:
            return str(exc)
        self._slug_of[key] = color.slug
        self._by_slug.setdefault(color.slug, color)
        return None

    def as_list(self) -> list[ColorVariant]:
        return list(self._by_slug.values())

    def photographed(self, text: str, ref: str | None) -> None:
        """The color ``text`` (added before) has its own photo ``ref`` (a variant's image): the first
        one named is kept. The parsed colors are shared (cached), so the variant is copied."""
        slug = self._slug_of.get(text.strip().casefold())
        color = self._by_slug.get(slug) if slug else None
        if ref and color is not None and color.image is None:
            self._by_slug[slug] = color.model_copy(update={"image": ref})


def group_title(titles: list[str]) -> str:
    """The product's name from its variants' titles: their common leading words when the titles
    differ ("Tee - Red - M", "Tee - Blue - S" -> "Tee"), else the first title."""
    titles = [t for t in titles if t]
    if not titles or all(t == titles[0] for t in titles):
        return titles[0] if titles else ""
    words = [t.split() for t in titles]
    common = []
    for column in zip(*words, strict=False):
        if any(w.casefold() != column[0].casefold() for w in column):
            break
        common.append(column[0])
    prefix = _TITLE_TAIL.sub("", " ".join(common))
    return prefix or titles[0]


def last_level(path: str) -> str:
    """'Apparel & Accessories > Clothing > Shirts' -> 'Shirts'; a bare taxonomy number -> ''."""
    leaf = path.rpartition(">")[2].strip()
    return "" if leaf.isdigit() else leaf


def build_product(problems: Problems, line: int, columns: dict[str, str], **fields: Any) -> Product | None:
    """``Product(**fields)``; pydantic's complaints become RowErrors (``columns`` maps field -> column)."""
    try:
        return Product(source_file=problems.file, source_line=line, **fields)
    except ValidationError as exc:
        for problem in exc.errors():
            name = str(problem["loc"][0]) if problem["loc"] else ""
            problems.add(line, columns.get(name, name or None), problem["msg"], fields.get("sku"))
        return None


def content_version(product: Product, *extra: object) -> str:
    """A stable hash of what the source said about ``product`` (plus ``extra``), as a version marker."""
    body = product.model_dump(exclude={"source_file", "source_line", "source_version"})
    text = json.dumps([body, *extra], sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]
