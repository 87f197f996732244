"""A small run folder for the review tests: a manifest of four products and tiny images, written
directly (no pipeline run). A and B are done (cutout + generated background), C failed, D needs review."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from orchestrator.manifest import ManifestWriter
from packshot.schemas.results import OutputRecord, ProductResult, RunManifest
from packshot.storage import LocalStorage

PHOTO = (80, 60)  # source photo size in pixels (the cutout's size)


def _png(size, color, mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def _record(storage: LocalStorage, sku: str, kind: str, name: str, data: bytes, size, **kw) -> OutputRecord:
    key = f"{sku}/{name}"
    uri = storage.write_bytes(key, data, "image/png")
    return OutputRecord(sku=sku, kind=kind, key=key, uri=uri, format="PNG", width=size[0], height=size[1],
                        bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), source_file="cat.csv",
                        source_line=2, **kw)


def write_manifest(storage: LocalStorage, manifest: RunManifest) -> None:
    """``manifest.json`` and ``manifest.csv`` of a manifest held in memory."""
    with ManifestWriter(storage) as writer:
        for product in manifest.products:
            writer.add(product)
        writer.publish(manifest.model_copy(update={"products": []}))


def make_run(out: Path, backend: str = "classic") -> RunManifest:
    storage = LocalStorage(out)
    products = []
    rows = [("A", "done"), ("B", "done"), ("C", "failed"), ("D", "needs_review")]
    for line, (sku, status) in enumerate(rows, 2):
        base = {"sku": sku, "status": status, "source_file": "cat.csv", "source_line": line,
                "source_image": f"images/{sku}.jpg"}
        if status == "failed":
            products.append(ProductResult(**base, error="images/C.jpg: file not found"))
            continue
        color = (40 * line, 90, 160)
        outputs = [
            _record(storage, sku, "cutout", "cutout.png", _png(PHOTO, (*color, 255), "RGBA"), PHOTO),
            _record(storage, sku, "background", "background-white.png", _png((50, 50), color), (50, 50),
                    preset="white", position=1, generated=True),
        ]
        preview = f"{sku}/source-preview.jpg"
        buf = io.BytesIO()
        Image.new("RGB", PHOTO, color).save(buf, "JPEG")
        storage.write_bytes(preview, buf.getvalue())
        reasons = ["the photo does not look like a studio shot"] if sku == "D" else []
        products.append(ProductResult(**base, outputs=outputs, review_reasons=reasons,
                                      source_preview=preview))
    manifest = RunManifest(catalog="cat.csv", catalog_format="packshot", output=str(out),
                           started=datetime(2026, 1, 1, tzinfo=UTC), stages=["segment", "export"],
                           presets=["white"], backends={"segment": backend}, products=products)
    write_manifest(storage, manifest)
    (out / "secret.txt").write_text("not for the page")
    return manifest
