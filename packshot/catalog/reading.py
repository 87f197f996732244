"""Catalog intake: a merchant's CSV (packshot, Shopify or WooCommerce export) read into a :class:`Catalog`.

No image is touched here: references are only checked for shape (scheme, path inside the catalog's
folder); ``imageio`` loads them later. Every bad row becomes a :class:`RowError` carrying the line
where the row starts (header = line 1, quoted multi-line fields counted), so good rows always come
through and the merchant can fix everything in one pass.
"""

from __future__ import annotations

from pathlib import Path

from packshot.catalog.base import CatalogError, Intake, Row
from packshot.catalog.fields import http_notes
from packshot.catalog.table import parse_table, read_text
from packshot.types import Catalog


def load_catalog(path: str | Path) -> Catalog:
    """Read a catalog CSV; raise :class:`CatalogError` only when the whole file is unusable."""
    path = Path(path)
    text, notes = read_text(path)
    delimiter, spec, header, rows = parse_table(path, text)
    missing = [c for c in spec.required if c.lower() not in header]
    if missing:
        raise CatalogError(
            f"{path}: looks like a {spec.label} but lacks the column(s) {', '.join(missing)}. "
            f"Required: {', '.join(spec.required)}. Add them to the header row (see catalogs/README.md)."
        )
    if delimiter != ",":
        notes.append(f"read as {'semicolon' if delimiter == ';' else 'tab'}-separated values")
    intake = Intake(file=str(path), header=header)
    rows = _without_nul_rows(rows, intake)
    products = spec.parse(rows, intake)
    if not rows:
        notes.append("the file has a header row but no product rows")
    notes += http_notes(products)
    errors = sorted(intake.errors, key=lambda e: e.line)  # stable: a row's problems keep their column order
    return Catalog(path=str(path), format=spec.name, products=products, errors=errors, notes=notes)


def _without_nul_rows(rows: list[Row], intake: Intake) -> list[Row]:
    """Rows holding a NUL byte (binary data pasted into a cell) are bad rows, wherever they are."""
    kept = []
    for row in rows:
        if any("\x00" in cell for cell in row.cells):
            intake.error(row.line, None, "the row contains a NUL byte (binary data); delete it from the cell "
                         "or re-export the catalog as CSV")
        else:
            kept.append(row)
    return kept
