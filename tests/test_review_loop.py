"""The review loop end to end, without Prefect (orchestrator.run as the flow calls it): a doubtful
cutout makes a product needs_review; the merchant approves one product and rejects another's cutout
with a box on the review API; --from-review redoes only the rejected one, with that box, and leaves
the approved one's files untouched; --sku with --force redoes exactly the chosen product."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.studio import write_catalog

HERE = Path(__file__).parent


class DoubtingSegmenter:
    """The real classic segmenter, doubting every cutout made without a box (a stand-in for the
    confidence of stages/segment, which is tested there); it records the boxes it was given."""

    def __init__(self, inner):
        self.inner, self.boxes = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def segment(self, image, box=None):
        self.boxes.append(box)
        cutout = self.inner.segment(image, box)
        if box is None:
            cutout.review_reasons = ["the photo does not look like a studio shot"]
        return cutout


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    return tmp_path


def _run(catalog: Path, out: Path, run_id: str, **options):
    """One run as the flow does it, in a fresh context; returns (summary, results by SKU, boxes)."""
    from orchestrator.context import clear_contexts, get_context
    from orchestrator.options import RunOptions
    from orchestrator.run import finish_run, process_part, start_run

    clear_contexts()
    opts = RunOptions(catalog=str(catalog), out=str(out), presets=["test-white"],
                      stages=["segment", "export"], **options)
    run = start_run(opts, run_id)
    segmenter = get_context(opts).segmenter = DoubtingSegmenter(run.ctx.segmenter)
    parts = [process_part(batch, opts, run_id, i) for i, batch in enumerate(run.batches)]
    summary = finish_run(run, parts=parts)
    manifest = json.loads((out / "manifest.json").read_text())
    return summary, {p["sku"]: p for p in manifest["products"]}, segmenter.boxes


def _stamps(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_needs_review_then_from_review_redoes_only_the_rejected(env):
    from orchestrator.review.server import create_app

    catalog = write_catalog(env / "cat", [{"sku": "A"}, {"sku": "B", "shape": "mug"}])
    out = env / "out"
    summary, products, _ = _run(catalog, out, "r1")
    assert summary.counts["needs_review"] == 2 and summary.counts["done"] == 0
    assert products["B"]["status"] == "needs_review"
    assert products["B"]["review_reasons"] == ["the photo does not look like a studio shot"]
    assert products["B"]["source_preview"] == "B/source-preview.jpg"
    assert (out / "B/source-preview.jpg").is_file()
    rows = list(csv.DictReader(io.StringIO((out / "manifest.csv").read_text())))
    assert {r["review_reasons"] for r in rows} == {"the photo does not look like a studio shot"}
    assert [r["review"] for r in summary.tally.rows] == ["the photo does not look like a studio shot"] * 2
    assert "## Needs review" in summary.markdown
    html = (out / "report.html").read_text()
    assert "<h2>Needs review</h2>" in html and "needs review: the photo does not look like" in html

    # The merchant approves A and rejects B's cutout with a box, on the review page's API.
    client = TestClient(create_app(out), base_url="http://127.0.0.1")
    def decide(**decision) -> None:
        client.post("/api/decisions", json=decision).raise_for_status()

    for o in products["A"]["outputs"]:
        decide(sku="A", key=o["key"], status="approved")
    box = [20, 30, 100, 150]  # leaves the mug's handle out: the redone cutout must differ
    decide(sku="B", key="B/cutout.png", status="rejected", reason="kept the table", correction={"box": box})
    before = _stamps(out / "A")

    summary, again, boxes = _run(catalog, out, "r2", from_review=str(out))
    assert boxes == [tuple(box)]  # only B was cut out again, with the reviewer's box
    # Redone with the box; that box leaves the handle out, and a cut along a box edge is said (issue 20).
    assert again["B"]["key"] != products["B"]["key"]
    assert again["B"]["status"] == "needs_review", again["B"]["review_reasons"]
    assert any("box" in reason for reason in again["B"]["review_reasons"]), again["B"]["review_reasons"]
    assert again["B"]["outputs"][0]["sha256"] != products["B"]["outputs"][0]["sha256"]
    assert again["A"]["status"] == "skipped" and again["A"]["outputs"] == products["A"]["outputs"]
    assert _stamps(out / "A") == before  # the approved product's files are untouched
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["review"] == "review.json"
    assert any("1 rejected product(s) redone (B)" in n for n in manifest["notes"])
    # B's rejection was about the old file: it lapsed, so the next --from-review redoes nothing.
    assert client.get("/api/products", params={"decision": "rejected"}).json()["total"] == 0

    # A nightly run keeps the correction: nothing changed, nothing is redone, B keeps its box. B's new
    # cutout has not been approved yet, so it stays needs_review (reused, not silently "skipped").
    summary, nightly, boxes = _run(catalog, out, "r3")
    assert boxes == [] and nightly["A"]["status"] == "skipped"
    assert nightly["B"]["status"] == "needs_review" and nightly["B"]["key"] == again["B"]["key"]

    # --sku A --force redoes A (from the stage cache) and leaves B alone.
    before_b = _stamps(out / "B")
    summary, forced, boxes = _run(catalog, out, "r4", skus=["A"], force=True)
    assert forced["A"]["status"] == "needs_review" and forced["B"]["status"] == "needs_review"  # kept as is
    assert _stamps(out / "B") == before_b
    assert any("not chosen for this run" in n for n in forced["B"]["notes"])


def test_an_unknown_sku_is_a_clear_error(env):
    from packshot.errors import PackshotError

    catalog = write_catalog(env / "cat", [{"sku": "A"}])
    with pytest.raises(PackshotError, match="--sku NOPE: not in the catalog"):
        _run(catalog, env / "out", "r1", skus=["NOPE"])
