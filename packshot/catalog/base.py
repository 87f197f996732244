"""What every catalog format shares: the row and error collector, and the format registry's entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from packshot.errors import PackshotError
from packshot.types import Product, RowError


class CatalogError(PackshotError):
    """The catalog file as a whole cannot be used: missing, empty, not a CSV, or an unknown format."""


@dataclass
class Row:
    line: int  # 1-based line where the row starts
    cells: list[str]
    header: dict[str, int]  # lowercased column name -> index, shared by all rows

    def get(self, column: str) -> str:
        """The stripped value, "" when the column is absent or the row is short."""
        index = self.header.get(column.lower())
        return self.cells[index].strip() if index is not None and index < len(self.cells) else ""


@dataclass
class Intake:
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


@dataclass(frozen=True)
class CatalogFormatSpec:
    """One catalog format: how to recognise its header and turn its rows into products.

    ``detect(header)`` gets the lowercased column names -> index; ``parse(rows, intake)`` returns the
    good products and reports every bad row through ``intake``.
    """

    name: str
    label: str
    required: tuple[str, ...]
    expected: str  # the header a merchant should give, for error messages
    detect: Callable[[dict[str, int]], bool]
    parse: Callable[[list[Row], Intake], list[Product]]
