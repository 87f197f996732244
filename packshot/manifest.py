"""The run manifest: every output with its stage, preset, size, checksum and source row.

Written as ``manifest.json`` (machines) and ``manifest.csv`` (spreadsheets) at the run root.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from packshot.storage import Storage

ProductStatus = Literal["done", "failed", "skipped", "invalid"]


class OutputRecord(BaseModel):
    sku: str
    kind: str = Field(description="cutout, packshot, background, scene or clip")
    preset: str | None = None
    variant: str | None = None
    scene: int | None = None
    position: int | None = Field(None, description="order in the listing for this preset (1 = first image)")
    key: str = Field(description="path relative to the run root")
    uri: str
    format: str
    width: int
    height: int
    bytes: int
    sha256: str
    generated: bool = False
    checks: list[str] = Field(default_factory=list, description="validator violations; empty means it passed")
    source_file: str
    source_line: int

    @property
    def passed(self) -> bool:
        return not self.checks


class ProductResult(BaseModel):
    sku: str | None
    status: ProductStatus
    error: str | None = None
    outputs: list[OutputRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    key: str | None = Field(
        None, description="content key of the inputs and settings this result was made from"
    )
    source_file: str
    source_line: int
    seconds: float = 0.0


class RunManifest(BaseModel):
    catalog: str
    catalog_format: str | None
    output: str
    started: datetime
    finished: datetime | None = None
    stages: list[str]
    presets: list[str]
    backends: dict[str, str] = Field(default_factory=dict)
    licences: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    products: list[ProductResult]

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "failed": 0, "skipped": 0, "invalid": 0}
        for p in self.products:
            out[p.status] += 1
        out["outputs"] = sum(len(p.outputs) for p in self.products)
        out["failed_checks"] = sum(1 for p in self.products for o in p.outputs if o.checks)
        return out


CSV_COLUMNS = [
    "sku",
    "status",
    "kind",
    "preset",
    "variant",
    "scene",
    "position",
    "key",
    "format",
    "width",
    "height",
    "bytes",
    "sha256",
    "generated",
    "checks",
    "error",
    "source_file",
    "source_line",
]


def manifest_csv(manifest: RunManifest) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for p in manifest.products:
        base = {
            "sku": p.sku or "",
            "status": p.status,
            "error": p.error or "",
            "source_file": p.source_file,
            "source_line": p.source_line,
        }
        if not p.outputs:
            writer.writerow(base)
        for o in p.outputs:
            row = o.model_dump(include=set(CSV_COLUMNS))
            row["checks"] = "; ".join(o.checks)
            writer.writerow({**row, **base})
    return buf.getvalue()


def write_manifest(storage: Storage, manifest: RunManifest) -> tuple[str, str]:
    manifest.finished = manifest.finished or datetime.now(UTC)
    json_uri = storage.write_bytes(
        "manifest.json", manifest.model_dump_json(indent=2).encode(), "application/json"
    )
    csv_uri = storage.write_bytes("manifest.csv", manifest_csv(manifest).encode(), "text/csv")
    return json_uri, csv_uri
