"""Reading a catalog file into rows: encodings, delimiters, quoted multi-line fields, format detection."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from packshot.catalog.base import CatalogError, CatalogFormatSpec, Row
from packshot.catalog.formats import FORMATS, expected_headers

_BINARY = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")  # control bytes no text file holds
_FIELD_LIMIT = 16 * 1024 * 1024  # Shopify bodies can embed base64 images; the csv default is 128 KiB


def read_text(path: Path) -> tuple[str, list[str]]:
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
    # Many control bytes mean binary data; a stray NUL in a row is that row's problem (see load_catalog).
    head = data[:8192]
    if len(_BINARY.findall(head)) > max(3, len(head) // 200):
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


def read_records(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
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


def parse_table(path: Path, text: str) -> tuple[str, CatalogFormatSpec, dict[str, int], list[Row]]:
    """(delimiter, format, header, rows): the first delimiter whose header row a known format recognises."""
    sep = re.match(r"sep=(.)[ \t]*\r?\n", text)  # Excel's optional "sep=;" first line
    candidates = (sep.group(1),) if sep else (",", ";", "\t")
    best: tuple[int, str, list[tuple[int, list[str]]]] | None = None
    for delimiter in candidates:
        try:
            records = read_records(text, delimiter)
        except csv.Error as exc:
            raise CatalogError(f"{path}: not a readable CSV ({exc}).") from exc
        if sep:
            records = records[1:]
        if not records:
            raise CatalogError(f"catalog file {path} has no header row; see catalogs/README.md.")
        names = [name.strip().lstrip("\ufeff").lower() for name in records[0][1]]
        header = {name: i for i, name in reversed(list(enumerate(names))) if name}  # first of duplicates
        spec = next((f for f in FORMATS.values() if f.detect(header)), None)
        if spec:
            rows = [Row(line, cells, header) for line, cells in records[1:]]
            return delimiter, spec, header, rows
        if best is None or len(header) > best[0]:
            best = (len(header), delimiter, records)
    assert best is not None
    found = [c.strip() for c in best[2][0][1] if c.strip()]
    shown = ", ".join(repr(c) for c in found[:15]) + (" ..." if len(found) > 15 else "")
    hint = " It does not look like CSV at all." if text.lstrip()[:1] in "{[<" else ""
    raise CatalogError(
        f"{path}: cannot tell which catalog format this is.{hint} Its header row (line 1) has: {shown}.\n"
        f"Expected the header of one of:\n{expected_headers()}\nSee catalogs/README.md. From Excel, save as "
        "'CSV UTF-8 (Comma delimited)'."
    )
