"""Google Merchant Center feeds: RSS 2.0 and Atom 1.0 with the ``g:`` namespace, and the TSV feed.

Mapping (see catalogs/README.md): ``g:id`` -> the variant's id, ``g:item_group_id`` -> the product's
sku, ``g:title`` (or the RSS/Atom ``title``) -> title, ``g:image_link`` then ``g:additional_image_link``
-> images, ``g:color`` -> colors, ``g:product_type`` (else a textual ``g:google_product_category``)
-> category (its last level).
An item of a group that names a ``g:color`` shows that color in its ``g:image_link``: the variant is
photographed (its photo is used for it, not a recolor; :mod:`orchestrator.photos`).

Variants (items sharing ``g:item_group_id``) become ONE product with the variants' colors, the
way the Shopify and WooCommerce sources and exports do: a store lists one product with one set of
media, so packshot makes one set of listing images per product (recolored to each color) and
``publish`` attaches them to that product. One product per variant would cut out and render the
same photo once per size (S, M, L, XL share it) and give the store duplicate media.

XML is parsed with defusedxml: a DTD may appear, but any entity declaration (billion laughs) or
external reference (XXE) refuses the whole feed with a message. CDATA, character references and
comments are ordinary XML. Every bad item becomes a RowError with the item's line in the file,
its position and id; good items always come through.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as SafeET

from packshot.catalog.fields import reference_problem, sku_problem
from packshot.config import LoadSettings
from packshot.sources.base import Source, SourceError, SourceSettings, display_uri
from packshot.sources.mapping import (
    ColorList,
    Problems,
    build_product,
    content_version,
    group_title,
    last_level,
)
from packshot.types import Catalog, Product

G_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
_ITEM_TAGS = {"item", "entry"}
_FEED_ATTRIBUTES = {"id", "title", "image_link", "link", "price", "availability", "item_group_id"}


@dataclass
class FeedItem:
    """One ``<item>``/``<entry>`` or TSV row: attribute name (without ``g:``) -> its values."""

    position: int  # 1-based number of the item in the feed
    line: int  # line of the file where it starts
    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> str:
        found = self.values.get(name)
        return found[0] if found else ""

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])


class FeedSource(Source):
    """A feed file, or an http(s) URL fetched on every read with the SSRF-safe downloader."""

    def __init__(self, uri: str, settings: SourceSettings, load: LoadSettings):
        self.uri = display_uri(uri)
        self._location = uri
        self.remote = "://" in uri
        self.settings, self.load = settings, load

    @property
    def base_dir(self) -> Path | None:
        return None if self.remote else Path(self._location).resolve().parent

    def read(self) -> Catalog:
        if self.remote:
            from packshot.sources.http import fetch_feed

            data = fetch_feed(self._location, self.load, self.settings)
        else:
            data = _read_file(Path(self._location))
        catalog = parse_feed(data, self.uri, remote=self.remote)
        if self.settings.check_feed_images and catalog.products:
            catalog = _with_versions(catalog, self.load)
        return catalog


def parse_feed(data: bytes, name: str, *, remote: bool = False) -> Catalog:
    """Parse feed bytes (XML or TSV, told apart by content); SourceError when unusable as a whole."""
    notes: list[str] = []
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<") or data.startswith(
        (b"\xff\xfe<", b"\xfe\xff\x00<")
    ):
        items, column = parse_xml_items(data, name), "g:{}"
    else:
        items, notes, column = *parse_tsv_items(data, name), "{}"
    problems = Problems(file=name)
    products, variants, groups = _products(items, problems, column, remote)
    if not items:
        notes.append("the feed has no items")
    if variants:
        notes.append(
            f"{variants} items sharing a g:item_group_id were read as the variants of {groups} product(s): "
            "one product per group, its items' g:color values become its color variants"
        )
    errors = sorted(problems.errors, key=lambda e: e.line)
    return Catalog(path=name, format="gmc", products=products, errors=errors, notes=notes)


def is_feed_header(head: bytes) -> bool:
    """True when the first line of a text file names Merchant Center attributes (a TSV feed)."""
    text = head.decode("utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8", errors="replace")
    first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    names = {_attribute(c) for c in first.split("\t")}
    return "image_link" in names and len(names & _FEED_ATTRIBUTES) >= 2


# --------------------------------------------------------------------------- XML


MAX_XML_DEPTH = 64  # far above a feed's four levels (extensions included), far below Python's recursion limit


def parse_xml_items(data: bytes, name: str) -> list[FeedItem]:
    """Items of an RSS 2.0 or Atom feed, hardened against entity expansion and external entities."""
    parser = SafeET.DefusedXMLParser(forbid_dtd=False, forbid_entities=True, forbid_external=True)
    lines: list[int] = []
    expat = parser.parser
    start, end = expat.StartElementHandler, expat.EndElementHandler
    depth = 0

    def on_start(tag: str, attrs):  # record where each item starts; the tree has no line numbers
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:  # reading the tree recurses per level: refuse before it can overflow
            raise SourceError(
                f"{name}: elements nested more than {MAX_XML_DEPTH} deep at line {expat.CurrentLineNumber}; "
                "a Merchant Center feed is <rss><channel><item><g:field>, four levels. Fix the feed.")
        if tag.rpartition("}")[2] in _ITEM_TAGS:
            lines.append(expat.CurrentLineNumber)
        return start(tag, attrs)

    def on_end(tag: str):
        nonlocal depth
        depth -= 1
        return end(tag)

    expat.StartElementHandler, expat.EndElementHandler = on_start, on_end
    try:
        parser.feed(data)
        root = parser.close()
    except defusedxml.DefusedXmlException as exc:
        raise SourceError(
            f"{name}: refused, the feed declares XML entities or external references ({exc}). Merchant "
            "Center feeds need none, and they are how 'billion laughs' and external-entity (XXE) attacks "
            "work. Remove the <!DOCTYPE ...> block; write & < > as &amp; &lt; &gt; or inside CDATA."
        ) from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise SourceError(
            f"{name}: not well-formed XML at line {line}, column {column + 1} ({_expat_reason(exc)}); "
            "fix the feed (an unescaped & is the usual cause: write &amp; or use CDATA)."
        ) from None
    kind = _local(root.tag)
    if kind not in ("rss", "feed", "channel"):
        raise SourceError(
            f"{name}: the XML root is <{kind}>, not an RSS 2.0 <rss> or Atom <feed>; export the products "
            'as a Merchant Center feed (RSS 2.0 or Atom 1.0 with xmlns:g="http://base.google.com/ns/1.0").'
        )
    elements = [el for el in root.iter() if _local(el.tag) in _ITEM_TAGS]
    items = []
    for position, (element, line) in enumerate(zip(elements, lines, strict=True), start=1):
        item = FeedItem(position=position, line=line)
        for child in element:
            namespace, _, local = child.tag.rpartition("}")
            key = local if namespace.lstrip("{") == G_NS else f"@{local}"
            text = " ".join("".join(child.itertext()).split())
            if local == "link" and namespace.lstrip("{") == ATOM_NS:
                text = child.get("href", text)
            item.values.setdefault(key, []).append(text)
        items.append(item)
    return items


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _expat_reason(exc: ET.ParseError) -> str:
    return str(exc).split(":", 1)[0]


# --------------------------------------------------------------------------- TSV


def parse_tsv_items(data: bytes, name: str) -> tuple[list[FeedItem], list[str]]:
    """Rows of a tab-separated feed (row 1 = attribute names, with or without ``g:``)."""
    text, notes = _decode(data, name)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    rows, consumed = [], 0
    try:
        for cells in reader:  # reader.line_num is the line a record ENDS on (quoted fields span lines)
            start, consumed = consumed + 1, reader.line_num
            if any(c.strip() for c in cells):
                rows.append((start, cells))
    except csv.Error as exc:
        raise SourceError(f"{name}: not a readable tab-separated feed ({exc}).") from None
    if not rows:
        raise SourceError(
            f"{name}: the feed is empty; row 1 must name the attributes (id, title, image_link ...)."
        )
    header = [_attribute(c) for c in rows[0][1]]
    missing = [a for a in ("id", "image_link") if a not in header]
    if missing or not ({"title", "@title"} & set(header)):
        raise SourceError(
            f"{name}: row 1 must name the feed's attributes separated by tabs; it lacks "
            f"{', '.join(missing or ['title'])} (found: {', '.join(h for h in header if h)[:300]})."
        )
    items = []
    for position, (start, cells) in enumerate(rows[1:], start=1):
        item = FeedItem(position=position, line=start)
        for column, cell in zip(header, cells, strict=False):
            if not column or not cell.strip():
                continue
            parts = cell.split(",") if column == "additional_image_link" else [cell]
            item.values.setdefault(column, []).extend(p.strip() for p in parts if p.strip())
        items.append(item)
    return items, notes


def _attribute(name: str) -> str:
    """Header cell -> attribute name: lowercase, ``g:`` dropped, spaces as ``_`` ("image link")."""
    return name.strip().lstrip("\ufeff").lower().removeprefix("g:").replace(" ", "_")


def _decode(data: bytes, name: str) -> tuple[str, list[str]]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), []
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        note = f"{name} is not UTF-8 (first other byte on line {line}); read as Latin-1, like Merchant Center"
        return data.decode("latin-1"), [note]


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise SourceError(f"feed file {path} does not exist; check the path and the current folder.")
    data = path.read_bytes()
    if not data.strip():
        raise SourceError(f"feed file {path} is empty.")
    return data


# --------------------------------------------------------------------------- items -> products


def _products(
    items: list[FeedItem], problems: Problems, column: str, remote: bool
) -> tuple[list[Product], int, int]:
    """Check every item, group variants by item_group_id, build one product per group; also
    returns how many good items were variants, and in how many groups (of two or more)."""
    seen_ids: dict[str, int] = {}
    groups: dict[str, list[FeedItem]] = {}
    for item in items:
        if _item_ok(item, problems, column, remote, seen_ids):
            key = item.get("item_group_id") or item.get("id")
            groups.setdefault(key.casefold(), []).append(item)
    products = []
    for group in groups.values():
        product = _group_product(group, problems, column)
        if product is not None:
            products.append(product)
    multi = [g for g in groups.values() if len(g) > 1]
    return products, sum(map(len, multi)), len(multi)


def _item_ok(item: FeedItem, problems: Problems, column: str, remote: bool, seen: dict[str, int]) -> bool:
    before = len(problems.errors)
    where = f"item {item.position}"
    item_id = item.get("id")
    if not item_id:
        problems.add(item.line, column.format("id"), f"{where} has no id; give every item its own g:id")
    elif item_id.casefold() in seen:
        problems.add(
            item.line,
            column.format("id"),
            f"{where}: id {item_id!r} is already used by item "
            f"{seen[item_id.casefold()]}; every item (variant) needs its own id",
            item_id,
        )
    else:
        seen[item_id.casefold()] = item.position
    if not (item.get("title") or item.get("@title")):
        problems.add(
            item.line, column.format("title"), f"{where} has no title; give the product a name", item_id
        )
    images = [item.get("image_link"), *item.all("additional_image_link")]
    if not images[0]:
        problems.add(
            item.line,
            column.format("image_link"),
            f"{where} has no image_link; add the URL of the product's main photo",
            item_id,
        )
    for attribute, ref in zip(
        ("image_link",) + ("additional_image_link",) * (len(images) - 1), images, strict=True
    ):
        if ref and (problem := _image_problem(ref, remote)):
            problems.add(item.line, column.format(attribute), f"{where}: {problem}", item_id)
    return len(problems.errors) == before


def _image_problem(ref: str, remote: bool) -> str | None:
    if remote and not ref.lower().startswith(("https://", "http://")):
        return f"{ref!r} is not an absolute URL; a feed fetched from the web must give https:// image URLs"
    return reference_problem(ref)


def _group_product(group: list[FeedItem], problems: Problems, column: str) -> Product | None:
    first = group[0]
    grouped = bool(first.get("item_group_id"))
    sku = first.get("item_group_id") or first.get("id")
    attribute = column.format("item_group_id" if grouped else "id")
    if problem := sku_problem(sku, strict=False):
        problems.add(
            first.line, attribute, f"item {first.position}: {problem.replace('sku', attribute, 1)}", sku
        )
        return None
    images: list[str] = []
    for item in group:
        images.append(item.get("image_link"))
    for item in group:
        images += item.all("additional_image_link")
    colors = ColorList()
    for item in group:
        if (text := item.get("color")) and (problem := colors.add(text)):
            problems.add(
                item.line,
                column.format("color"),
                f"item {item.position}: {problem}; this color variant is skipped",
                item.get("id"),
            )
        elif text and grouped:  # an item per color: its image_link is that variant's own photo
            colors.photographed(text, item.get("image_link"))
    category = last_level(first.get("product_type")) or last_level(first.get("google_product_category"))
    return build_product(
        problems,
        first.line,
        {"sku": attribute, "title": column.format("title")},
        sku=sku,
        title=group_title([i.get("title") or i.get("@title") for i in group]),
        images=list(dict.fromkeys(images)),
        category=category,
        colors=colors.as_list(),
        source_ref=sku,
    )


def _with_versions(catalog: Catalog, load: LoadSettings) -> Catalog:
    """Each product's source_version: its mapped fields + every image's ETag/Last-Modified (HEAD)."""
    from packshot.sources.http import image_validators

    validators = image_validators([ref for p in catalog.products for ref in p.images], load)
    products, unknown = [], 0
    for product in catalog.products:
        marks = [validators.get(ref) for ref in product.images]
        if all(marks):
            product = product.model_copy(update={"source_version": content_version(product, marks)})
        else:
            unknown += 1
        products.append(product)
    notes = list(catalog.notes)
    if unknown:
        notes.append(
            f"{unknown} product(s) have an image whose server gives no ETag or Last-Modified (or a local "
            "path): their images are downloaded on each run to see whether they changed"
        )
    return catalog.model_copy(update={"products": products, "notes": notes})
