"""Catalog intake: a merchant's CSV (packshot, Shopify or WooCommerce export) read into a :class:`Catalog`.

No image is touched here: references are only checked for shape (scheme, path inside the catalog's
folder); ``imageio`` loads them later. Every bad row becomes a :class:`RowError` carrying the line
where the row starts (header = line 1, quoted multi-line fields counted), so good rows always come
through and the merchant can fix everything in one pass.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from packshot.colors import parse_color
from packshot.errors import PackshotError
from packshot.types import Catalog, CatalogFormat, ColorVariant, Product, RowError


class CatalogError(PackshotError):
    """The catalog file as a whole cannot be used: missing, empty, not a CSV, or an unknown format."""


PACKSHOT_COLUMNS = ("sku", "title", "image", "category", "brand_style", "colors", "bbox", "recolor_mask")
_REQUIRED = {
    "packshot": ("sku", "title", "image"),
    "shopify": ("Handle", "Title", "Image Src"),
    "woocommerce": ("Type", "Name", "Images"),
}
_LABELS = {
    "packshot": "packshot catalog",
    "shopify": "Shopify product export",
    "woocommerce": "WooCommerce product export",
}
_EXPECTED = (
    f"  - packshot: sku, title, image (optional: {', '.join(PACKSHOT_COLUMNS[3:])})\n"
    "  - Shopify product export: Handle, Title, Image Src (optional: Option1 Name, Option1 Value, ..., "
    "Variant Image, Image Position, Type)\n"
    "  - WooCommerce product export: ID, Type, SKU, Name, Images, Parent (optional: Categories, "
    "Attribute 1 name, Attribute 1 value(s), ...)"
)
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
_FIELD_LIMIT = 16 * 1024 * 1024  # Shopify bodies can embed base64 images; the csv default is 128 KiB
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BRAND_STYLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WOO_LIST_SPLIT = re.compile(r"(?<!\\),")  # WooCommerce escapes commas inside values as "\,"


# --------------------------------------------------------------------------- public API


def load_catalog(path: str | Path) -> Catalog:
    """Read a catalog CSV; raise :class:`CatalogError` only when the whole file is unusable."""
    path = Path(path)
    text, notes = _read_text(path)
    delimiter, fmt, header, rows = _parse_table(path, text)
    missing = [c for c in _REQUIRED[fmt] if c.lower() not in header]
    if missing:
        raise CatalogError(
            f"{path}: looks like a {_LABELS[fmt]} but lacks the column(s) {', '.join(missing)}. "
            f"Required: {', '.join(_REQUIRED[fmt])}. Add them to the header row (see catalogs/README.md)."
        )
    if delimiter != ",":
        notes.append(f"read as {'semicolon' if delimiter == ';' else 'tab'}-separated values")
    intake = _Intake(file=str(path), header=header)
    parse = {"packshot": _parse_packshot, "shopify": _parse_shopify, "woocommerce": _parse_woocommerce}[fmt]
    products = parse(rows, intake)
    if not rows:
        notes.append("the file has a header row but no product rows")
    notes += _http_notes(products)
    errors = sorted(intake.errors, key=lambda e: e.line)  # stable: a row's problems keep their column order
    return Catalog(path=str(path), format=fmt, products=products, errors=errors, notes=notes)


def check_local_images(catalog: Catalog, max_pixels: int) -> Catalog:
    """Probe every local image's header (cheap: no pixels are decoded) and move products whose
    file is missing, not an image, or too large into the catalog's errors. URLs and s3:// keys are
    left to load time, where their fetch is checked anyway."""
    from PIL import Image, UnidentifiedImageError

    from packshot.errors import ImageLoadError
    from packshot.imageio import resolve_local

    base = Path(catalog.path).resolve().parent
    keep, errors = [], list(catalog.errors)
    for product in catalog.products:
        problem = None
        for ref in product.images:
            if "://" in ref:
                continue
            try:
                path = resolve_local(ref, base)
            except ImageLoadError as exc:
                problem = str(exc)
                break
            if not path.is_file():
                problem = (
                    f"image file {ref!r} does not exist (looked for {path}); check the path and its case"
                )
            else:
                try:
                    with Image.open(path) as img:
                        width, height = img.size
                except (UnidentifiedImageError, OSError) as exc:
                    kind = type(exc).__name__
                    problem = f"{ref!r} is not an image Pillow can read ({kind}); export it as JPEG or PNG"
                else:
                    if width * height > max_pixels:
                        problem = (
                            f"{ref!r} is {width}x{height} pixels, above the limit of {max_pixels:,}; "
                            "downscale it or raise PACKSHOT_LOAD__MAX_PIXELS"
                        )
            if problem:
                break
        if problem:
            errors.append(
                RowError(
                    file=product.source_file,
                    line=product.source_line,
                    column="image",
                    sku=product.sku,
                    message=problem,
                )
            )
        else:
            keep.append(product)
    return catalog.model_copy(update={"products": keep, "errors": sorted(errors, key=lambda e: e.line)})


def validation_report(catalog: Catalog) -> str:
    """Plain-text report for a merchant: counts, then one line per problem and what to do."""
    bad_rows = len({(e.file, e.line) for e in catalog.errors})
    lines = [
        f"{catalog.path}: {_LABELS[catalog.format]}",
        f"  {_plural(len(catalog.products), 'product')} ready, "
        f"{_plural(len(catalog.errors), 'problem')} in {_plural(bad_rows, 'row')}",
    ]
    if catalog.notes:
        lines.append("Notes:")
        lines += [f"  - {note}" for note in catalog.notes]
    if catalog.errors:
        lines.append("Problems:")
        lines += [f"  {error}" for error in catalog.errors]
        lines.append(
            "What to do: fix the rows above in the CSV (line numbers count the header as line 1) and run "
            "`packshot validate` again. Rows with problems are skipped; the other products are processed."
        )
    else:
        lines.append("No problems found.")
    return "\n".join(lines)


def report_json(catalog: Catalog) -> dict[str, Any]:
    """The same report for machines (CI, dashboards)."""
    return {
        "file": catalog.path,
        "format": catalog.format,
        "ok": not catalog.errors,
        "products": len(catalog.products),
        "bad_rows": len({(e.file, e.line) for e in catalog.errors}),
        "skus": [p.sku for p in catalog.products],
        "errors": [e.model_dump() for e in catalog.errors],
        "notes": list(catalog.notes),
    }


# --------------------------------------------------------------------------- reading the file


@dataclass
class _Row:
    line: int  # 1-based line where the row starts
    cells: list[str]
    header: dict[str, int]  # lowercased column name -> index, shared by all rows

    def get(self, column: str) -> str:
        """The stripped value, "" when the column is absent or the row is short."""
        index = self.header.get(column.lower())
        return self.cells[index].strip() if index is not None and index < len(self.cells) else ""


@dataclass
class _Intake:
    file: str
    header: dict[str, int]  # lowercased column name -> index
    errors: list[RowError] = field(default_factory=list)
    sku_lines: dict[str, int] = field(default_factory=dict)  # casefolded sku -> line of first use

    def error(self, line: int, column: str | None, message: str, sku: str | None = None) -> None:
        error = RowError(file=self.file, line=line, column=column, sku=sku or None, message=message)
        self.errors.append(error)

    def claim_sku(self, sku: str, line: int, column: str) -> bool:
        """Record a sku; a second use (ignoring case: skus become folder names) is an error."""
        first = self.sku_lines.setdefault(sku.casefold(), line)
        if first != line:
            self.error(
                line,
                column,
                f"duplicate sku, already used on line {first}; give each product its "
                "own sku (compared ignoring case, since skus become folder names)",
                sku,
            )
            return False
        return True


def _read_text(path: Path) -> tuple[str, list[str]]:
    if not path.exists():
        raise CatalogError(f"catalog file {path} does not exist; check the path and the current folder.")
    if path.is_dir():
        raise CatalogError(f"{path} is a folder; give the catalog CSV file inside it.")
    data = path.read_bytes()
    if not data.strip():
        raise CatalogError(
            f"catalog file {path} is empty; export your products as CSV (see catalogs/README.md)."
        )
    if data.startswith(b"PK\x03\x04"):
        raise CatalogError(
            f"{path} is a spreadsheet workbook (.xlsx/.ods), not a CSV; in Excel use "
            "File > Save As > 'CSV UTF-8 (Comma delimited)'."
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode Text" export
        return data.decode("utf-16"), []
    if b"\x00" in data[:8192]:
        raise CatalogError(
            f"{path} is not a CSV text file (it contains binary data); export the catalog as CSV."
        )
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        note = (
            f"the file is not UTF-8 (first non-UTF-8 byte on line {line}); read it as Windows-1252, the "
            "encoding older Excel versions write. Check accented characters, or save as 'CSV UTF-8'."
        )
        return data.decode("cp1252", errors="replace"), [note]


def _records(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """Non-blank records with the line each starts on; raises csv.Error on an unclosed quote."""
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records, consumed = [], 0
    for cells in reader:
        start, consumed = consumed + 1, reader.line_num
        if any(cell.strip() for cell in cells):  # skip blank lines and Excel's ",,,," rows
            records.append((start, cells))
    # Non-strict parsing swallows the rest of the file into a field left open; strict parsing notices.
    strict = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for _ in strict:
            pass
    except csv.Error as exc:
        if "unexpected end of data" in str(exc) and records:
            raise csv.Error(
                f"line {records[-1][0]}: a quoted field starts in this row and is never closed; "
                'look for a stray " character'
            ) from exc
    return records


def _parse_table(path: Path, text: str) -> tuple[str, CatalogFormat, dict[str, int], list[_Row]]:
    sep = re.match(r"sep=(.)[ \t]*\r?\n", text)  # Excel's optional "sep=;" first line
    candidates = (sep.group(1),) if sep else (",", ";", "\t")
    best: tuple[int, str, list[tuple[int, list[str]]]] | None = None
    for delimiter in candidates:
        try:
            records = _records(text, delimiter)
        except csv.Error as exc:
            raise CatalogError(f"{path}: not a readable CSV ({exc}).") from exc
        if sep:
            records = records[1:]
        if not records:
            raise CatalogError(f"catalog file {path} has no header row; see catalogs/README.md.")
        names = [name.strip().lstrip("\ufeff").lower() for name in records[0][1]]
        header = {name: i for i, name in reversed(list(enumerate(names))) if name}  # first of duplicates
        fmt = _detect_format(header)
        if fmt:
            rows = [_Row(line, cells, header) for line, cells in records[1:]]
            return delimiter, fmt, header, rows
        if best is None or len(header) > best[0]:
            best = (len(header), delimiter, records)
    assert best is not None
    found = [c.strip() for c in best[2][0][1] if c.strip()]
    shown = ", ".join(repr(c) for c in found[:15]) + (" ..." if len(found) > 15 else "")
    hint = " It does not look like CSV at all." if text.lstrip()[:1] in "{[<" else ""
    raise CatalogError(
        f"{path}: cannot tell which catalog format this is.{hint} Its header row (line 1) has: {shown}.\n"
        f"Expected the header of one of:\n{_EXPECTED}\nSee catalogs/README.md. From Excel, save as "
        "'CSV UTF-8 (Comma delimited)'."
    )


def _detect_format(header: dict[str, int]) -> CatalogFormat | None:
    if "handle" in header:
        return "shopify"
    if {"type", "name"} <= header.keys() and header.keys() & {"images", "parent", "sku", "id"}:
        return "woocommerce"
    if "sku" in header and header.keys() & {"title", "image"}:
        return "packshot"
    return None


# --------------------------------------------------------------------------- field checks


def sku_problem(sku: str, *, strict: bool = True) -> str | None:
    """Why ``sku`` cannot name a product folder, or None. ``strict`` is our format's stricter rule set."""
    if _CONTROL.search(sku):
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
    if _CONTROL.search(ref):
        return f"{ref!r} contains a control character; {inside}"
    scheme = _URL_SCHEME.match(ref)
    if scheme and not _WINDOWS_ABSOLUTE.match(ref):
        name = scheme.group(1).lower()
        if name == "s3":
            bucket, _, key = ref[5:].partition("/") if ref[3:5] == "//" else ("", "", "")
            return None if bucket and key else f"{ref!r} is not a valid s3 reference; write s3://bucket/key"
        if name in ("https", "http"):
            return None if re.match(r"^https?://[^/\s]+", ref, re.I) else f"{ref!r} has no host name"
        return f"{ref!r} uses {name}:, which is not accepted; {inside}"
    if ref.startswith(("/", "\\", "~")) or _WINDOWS_ABSOLUTE.match(ref):
        return f"{ref!r} is an absolute path; {inside}"
    if ".." in re.split(r"[\\/]", ref):
        return f"{ref!r} leaves the catalog's folder ('..'); {inside}"
    return None


def normalize_reference(ref: str) -> str:
    """Relative paths get forward slashes (Windows merchants write backslashes); URLs stay as written."""
    if _URL_SCHEME.match(ref):
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


class _Colors:
    """A product's colors in first-seen order; variant rows repeat them, so each text is parsed once."""

    def __init__(self) -> None:
        self.by_slug: dict[str, ColorVariant] = {}
        self.seen: set[str] = set()

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
        self.by_slug.setdefault(color.slug, color)
        return None

    def as_list(self) -> list[ColorVariant]:
        return list(self.by_slug.values())


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _build(intake: _Intake, line: int, columns: dict[str, str], **fields: Any) -> Product | None:
    """Validate a Product with pydantic; its complaints become RowErrors on the given line."""
    try:
        return Product(source_file=intake.file, source_line=line, **fields)
    except ValidationError as exc:
        for problem in exc.errors():
            name = str(problem["loc"][0]) if problem["loc"] else None
            intake.error(line, columns.get(name or "", name), problem["msg"], fields.get("sku"))
        return None


def _http_notes(products: list[Product]) -> list[str]:
    plain = [(p, ref) for p in products for ref in p.images if ref.lower().startswith("http://")]
    if not plain:
        return []
    product, _ = plain[0]
    return [
        f"{_plural(len(plain), 'image reference')} use plain http:// (first: sku {product.sku}, line "
        f"{product.source_line}); the loader refuses them unless PACKSHOT_LOAD__ALLOW_HTTP=true. "
        "Prefer https:// URLs."
    ]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# --------------------------------------------------------------------------- packshot format


def _parse_packshot(rows: list[_Row], intake: _Intake) -> list[Product]:
    products = []
    for row in rows:
        before = len(intake.errors)
        sku, title = row.get("sku"), row.get("title")
        if not sku:
            intake.error(row.line, "sku", "sku is empty; every product needs a unique sku")
        elif problem := sku_problem(sku, strict=True):
            intake.error(row.line, "sku", problem, sku)
        else:
            intake.claim_sku(sku, row.line, "sku")
        if not title:
            intake.error(row.line, "title", "title is empty; give the product a name", sku)
        images = [normalize_reference(r.strip()) for r in row.get("image").split("|") if r.strip()]
        if not images:
            intake.error(row.line, "image", "image is empty; give the main photo's path or URL", sku)
        for ref in images:
            if problem := reference_problem(ref):
                intake.error(row.line, "image", problem, sku)
        colors = _Colors()
        for text in filter(None, (c.strip() for c in row.get("colors").split("|"))):
            if problem := colors.add(text):
                intake.error(row.line, "colors", problem, sku)
        bbox = None
        if row.get("bbox"):
            try:
                bbox = parse_bbox(row.get("bbox"))
            except ValueError as exc:
                intake.error(row.line, "bbox", str(exc), sku)
        mask = normalize_reference(row.get("recolor_mask")) or None
        if mask and (problem := reference_problem(mask)):
            intake.error(row.line, "recolor_mask", problem.replace("images must", "masks must"), sku)
        brand = row.get("brand_style").removesuffix(".yaml").removesuffix(".yml") or None
        if brand and (not _BRAND_STYLE.match(brand) or ".." in brand):
            intake.error(
                row.line,
                "brand_style",
                f"brand_style {brand!r} must be the name of a file in "
                "brand_styles/ (letters, digits, '-', '_'), like 'minimal' for "
                "brand_styles/minimal.yaml",
                sku,
            )
        if len(intake.errors) > before:
            continue
        product = _build(
            intake,
            row.line,
            {"images": "image"},
            sku=sku,
            title=title,
            images=images,
            category=row.get("category"),
            brand_style=brand,
            colors=colors.as_list(),
            bbox=bbox,
            recolor_mask=mask,
        )
        if product:
            products.append(product)
    return products


# --------------------------------------------------------------------------- Shopify export


def _parse_shopify(rows: list[_Row], intake: _Intake) -> list[Product]:
    """One product per Handle: its first row has the title, later rows add variants and images."""
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        if not row.get("Handle"):
            intake.error(
                row.line,
                "Handle",
                "row has no Handle; Shopify variant and image rows must repeat the product's handle",
            )
            continue
        groups.setdefault(row.get("Handle"), []).append(row)
    products = []
    for handle, group in groups.items():
        product = _shopify_product(handle, group, intake)
        if product:
            products.append(product)
    return products


def _shopify_product(handle: str, group: list[_Row], intake: _Intake) -> Product | None:
    first = group[0]
    fatal = len(intake.errors)
    if problem := sku_problem(handle, strict=False):
        intake.error(first.line, "Handle", problem.replace("sku", "Handle", 1), handle)
    title = first.get("Title")
    if not title:
        intake.error(
            first.line, "Title", "the product's first row has no Title; put the product name there", handle
        )
    if len(intake.errors) > fatal:
        return None
    rows = [first]
    for row in group[1:]:
        if row.get("Title") and row.get("Title") != title:
            intake.error(
                row.line,
                "Handle",
                f"Handle {handle!r} is already used by {title!r} on line "
                f"{first.line}; give each product its own handle (row skipped)",
                handle,
            )
        else:
            rows.append(row)

    positioned: list[tuple[float, int, str]] = []
    variant_images: list[str] = []
    for order, row in enumerate(rows):
        for column in ("Image Src", "Variant Image"):
            ref = normalize_reference(row.get(column))
            if not ref:
                continue
            if problem := reference_problem(ref):
                intake.error(row.line, column, problem, handle)
            elif column == "Variant Image":
                variant_images.append(ref)
            else:
                position = row.get("Image Position")
                rank = float(position) if position.isdigit() else float("inf")
                if position and not position.isdigit():
                    intake.error(
                        row.line,
                        "Image Position",
                        f"Image Position {position!r} is not a whole number; the image is placed last",
                        handle,
                    )
                positioned.append((rank, order, ref))
    images = _dedupe([ref for _, _, ref in sorted(positioned)] + variant_images)

    colors = _Colors()
    for n in (1, 2, 3):
        if is_color_option(first.get(f"Option{n} Name")):
            column = f"Option{n} Value"
            for row in rows:
                if row.get(column) and (problem := colors.add(row.get(column))):
                    intake.error(row.line, column, f"{problem}; this color variant is skipped", handle)
            break
    if not images:
        intake.error(
            first.line, "Image Src", "product has no usable image; add its photo URL in 'Image Src'", handle
        )
        return None
    if not intake.claim_sku(handle, first.line, "Handle"):
        return None
    category = first.get("Type") or first.get("Product Category").rpartition(">")[2].strip()
    return _build(
        intake,
        first.line,
        {"sku": "Handle", "title": "Title", "images": "Image Src"},
        sku=handle,
        title=title,
        images=images,
        category=category,
        colors=colors.as_list(),
    )


# --------------------------------------------------------------------------- WooCommerce export


def _parse_woocommerce(rows: list[_Row], intake: _Intake) -> list[Product]:
    """Simple/variable/external/grouped rows are products; variation rows attach to their Parent."""
    parents: list[_Row] = []
    variations: list[_Row] = []
    for row in rows:
        kinds = {k.strip().lower() for k in row.get("Type").split(",") if k.strip()}
        if "variation" in kinds:
            variations.append(row)
        elif kinds & {"simple", "variable", "external", "grouped"}:
            parents.append(row)
        else:
            what = f"Type {row.get('Type')!r} is unknown" if kinds else "Type is empty"
            intake.error(row.line, "Type", f"{what}; expected simple, variable or variation", row.get("SKU"))

    by_id: dict[str, _Row] = {}
    by_sku: dict[str, _Row] = {}
    unique: list[_Row] = []
    for row in parents:
        if row.get("ID") in by_id:
            intake.error(
                row.line,
                "ID",
                f"ID {row.get('ID')} is already used on line "
                f"{by_id[row.get('ID')].line}; each product needs its own ID",
                row.get("SKU"),
            )
            continue
        if row.get("ID"):
            by_id[row.get("ID")] = row
        if row.get("SKU"):
            by_sku.setdefault(row.get("SKU"), row)
        unique.append(row)

    children: dict[int, list[_Row]] = {}
    for row in variations:
        ref = row.get("Parent")
        if ref.lower().startswith("id:"):
            parent = by_id.get(ref[3:].strip())
        else:  # the parent's SKU; a bare number is tried as an ID too
            parent = by_sku.get(ref, by_id.get(ref))
        if not ref:
            intake.error(
                row.line,
                "Parent",
                "variation has no Parent; write the parent's 'id:<ID>' or SKU",
                row.get("SKU"),
            )
        elif parent is None:
            intake.error(
                row.line,
                "Parent",
                f"the parent {ref!r} of this variation is not in this file; "
                "export the variable product together with its variations",
                row.get("SKU"),
            )
        else:
            children.setdefault(parent.line, []).append(row)

    products = []
    for row in unique:
        product = _woo_product(row, children.get(row.line, []), intake)
        if product:
            products.append(product)
    return products


def _woo_product(row: _Row, variations: list[_Row], intake: _Intake) -> Product | None:
    fatal = len(intake.errors)
    sku = row.get("SKU") or (f"id-{row.get('ID')}" if row.get("ID") else "")
    if not sku:
        intake.error(row.line, "SKU", "product has neither SKU nor ID; give it a SKU")
    elif problem := sku_problem(sku, strict=False):
        intake.error(row.line, "SKU", problem, sku)
    title = row.get("Name")
    if not title:
        intake.error(row.line, "Name", "Name is empty; give the product a name", sku)
    if len(intake.errors) > fatal:
        return None

    images: list[str] = []
    for source in (row, *variations):
        for ref in filter(None, (normalize_reference(r.strip()) for r in source.get("Images").split(","))):
            if problem := reference_problem(ref):
                intake.error(source.line, "Images", problem, sku)
            else:
                images.append(ref)
    images = _dedupe(images)

    colors = _Colors()
    for source in (row, *variations):
        for name_column in _attribute_name_columns(intake.header):
            if not is_color_option(source.get(name_column)):
                continue
            value_column = name_column.replace(" name", " value(s)")
            for value in _WOO_LIST_SPLIT.split(source.get(value_column)):
                value = value.replace("\\,", ",").strip()
                if value and (problem := colors.add(value)):
                    intake.error(
                        source.line,
                        _canonical(value_column),
                        f"{problem}; this color variant is skipped",
                        sku,
                    )
    if not images:
        intake.error(row.line, "Images", "product has no usable image; add its photo URL in 'Images'", sku)
        return None
    if not intake.claim_sku(sku, row.line, "SKU"):
        return None
    first_category = row.get("Categories").split(",")[0]
    category = first_category.rpartition(">")[2].strip()
    return _build(
        intake,
        row.line,
        {"sku": "SKU", "title": "Name", "images": "Images"},
        sku=sku,
        title=title,
        images=images,
        category=category,
        colors=colors.as_list(),
    )


def _attribute_name_columns(header: dict[str, int]) -> list[str]:
    return [name for name in header if re.fullmatch(r"attribute \d+ name", name)]


def _canonical(column: str) -> str:
    """'attribute 1 value(s)' -> 'Attribute 1 value(s)', as WooCommerce spells it."""
    return column[:1].upper() + column[1:]
