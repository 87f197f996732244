"""CSV cells a spreadsheet will not evaluate (CSV/formula injection, OWASP's rule).

A merchant's SKU such as ``=HYPERLINK("http://x")`` or ``=cmd|' /C calc'!A0`` would run as a formula
when the manifest is opened in Excel or LibreOffice. Every CSV packshot writes goes through
:class:`SafeDictWriter`: a text cell that starts with ``=``, ``+``, ``-`` or ``@`` (also after
leading whitespace), or with a tab or carriage return, is prefixed with a single quote, which
spreadsheets show as text. Numbers (``int``/``float`` values) are left as they are. Write with
``lineterminator="\r\n"`` (RFC 4180): the csv module quotes a cell holding a CR only when the line
terminator has one, and an unquoted CR breaks the row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@")


def safe_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when a spreadsheet would treat the text as a formula."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] in ("\t", "\r") or value.lstrip()[:1] in FORMULA_TRIGGERS:
        return "'" + value
    return value


class SafeDictWriter(csv.DictWriter):
    """:class:`csv.DictWriter` whose text cells go through :func:`safe_cell` (the header too)."""

    def writeheader(self):
        return self.writer.writerow([safe_cell(name) for name in self.fieldnames])

    def writerow(self, rowdict: Mapping[str, Any]):
        return super().writerow({k: safe_cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]):
        return super().writerows({k: safe_cell(v) for k, v in row.items()} for row in rowdicts)
