"""review.json (decisions, damaged files, atomic saves), the approved-only export and the review
app's JSON API (FastAPI's test client; the browser test drives the page itself)."""

from __future__ import annotations

import json
import os

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from orchestrator.review.decisions import (
    Correction,
    Decision,
    ReviewStore,
    export_approved,
    load_review,
)
from orchestrator.review.server import create_app
from packshot.schemas.results import RunManifest
from packshot.storage import LocalStorage
from tests.review_run import make_run


def test_a_damaged_review_file_reads_as_no_decisions_and_is_kept_aside(tmp_path):
    make_run(tmp_path)
    (tmp_path / "review.json").write_text('{"outputs": {"A/cutout.png": {"status": "maybe"')
    storage = LocalStorage(tmp_path)
    review, note = load_review(storage)
    assert review.outputs == {} and "could not be read" in note
    store = ReviewStore(storage)
    store.decide(Decision(sku="A", key="A/cutout.png", status="approved"))
    (kept,) = tmp_path.glob("review.damaged-*.json")
    assert kept.read_text().startswith('{"outputs"')
    assert load_review(storage)[0].outputs["A/cutout.png"].status == "approved"
    assert not list(tmp_path.glob(".review.json.*"))  # written by rename, no temp file left
    client = TestClient(create_app(tmp_path), base_url="http://127.0.0.1")
    assert client.get("/api/summary").json()["note"] is None  # the file is whole again


def test_corrections_are_one_kind_and_only_on_rejections():
    assert Correction(box=(1, 2, 3, 4)).box == (1, 2, 3, 4)
    for bad in ({}, {"box": (1, 2, 3, 4), "new_seed": True}, {"box": (5, 2, 3, 4)}, {"box": (-1, 0, 3, 4)}):
        with pytest.raises(ValidationError):
            Correction(**bad)
    with pytest.raises(ValidationError, match="only a rejected output"):
        Decision(sku="A", key="A/cutout.png", status="approved", correction={"new_seed": True})
    for key in ("../x.png", "/etc/passwd", "A/../../x", "A//b.png", ""):
        with pytest.raises(ValidationError, match="not an output key"):
            Decision(sku="A", key=key, status="approved")
    assert Correction(box=(0, 0, 80, 60)).fits(80, 60) is None
    assert "outside" in Correction(points=[{"x": 80, "y": 1}]).fits(80, 60)


def test_export_lists_approved_outputs_an_output_decision_overriding_its_skus(tmp_path):
    make_run(tmp_path)
    store = ReviewStore(LocalStorage(tmp_path))
    store.decide(Decision(sku="A", status="approved", reason="all good"))
    store.decide(Decision(sku="A", key="A/background-white.png", status="rejected", reason="too dark"))
    store.decide(Decision(sku="B", key="B/background-white.png", status="approved"))
    store.decide(Decision(sku="D", key="D/cutout.png", status="rejected", correction={"box": (1, 1, 9, 9)}))
    json_uri, csv_uri, count = export_approved(LocalStorage(tmp_path))
    approved = json.loads((tmp_path / "approved.json").read_text())
    assert count == 2 and json_uri.endswith("approved.json") and csv_uri.endswith("approved.csv")
    assert [(p["sku"], [o["key"] for o in p["outputs"]]) for p in approved["products"]] == [
        ("A", ["A/cutout.png"]), ("B", ["B/background-white.png"])]
    assert "approved outputs only" in approved["notes"][0]
    manifest = RunManifest.model_validate_json((tmp_path / "manifest.json").read_text())
    assert store.review.to_redo(manifest) == ["A", "D"]
    assert store.undo("D", "D/cutout.png") and not store.undo("D", "D/cutout.png")


def test_api_pages_filters_and_escapes(tmp_path):
    make_run(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["catalog"] = "<script>alert(1)</script>.csv"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    client = TestClient(create_app(tmp_path), base_url="http://127.0.0.1")
    page = client.get("/").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    def skus(**params) -> list[str]:
        return [p["sku"] for p in client.get("/api/products", params=params).json()["items"]]

    assert client.get("/api/products").json()["total"] == 4
    assert skus(limit=2) + skus(limit=2, offset=2) == ["A", "B", "C", "D"]
    assert skus(warning="notes") == ["D"] and skus(q="studio") == ["D"] and skus(status="failed") == ["C"]
    b = client.get("/api/products", params={"q": "B"}).json()["items"][0]
    assert b["photo_size"] == [80, 60] and b["source_preview"] == "/files/B/source-preview.jpg"
    assert client.get("/api/products", params={"limit": 100000}).status_code == 422
    client.post("/api/decisions", json={"sku": "B", "key": "B/cutout.png", "status": "rejected",
                                        "correction": {"box": [1, 2, 30, 40]}}).raise_for_status()
    rejected = client.get("/api/products", params={"decision": "rejected"}).json()["items"]
    assert [p["sku"] for p in rejected] == ["B"]
    assert rejected[0]["outputs"][0]["decision"]["correction"]["box"] == [1, 2, 30, 40]
    # A manifest written again (a rerun finished) is read again.
    manifest["products"] = manifest["products"][:1]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    os.utime(tmp_path / "manifest.json", (1, 1))
    assert client.get("/api/products").json()["total"] == 1


def test_points_are_taken_when_the_run_used_sam(tmp_path):
    make_run(tmp_path, backend="sam")
    client = TestClient(create_app(tmp_path), base_url="http://127.0.0.1")
    ok = client.post("/api/decisions", json={"sku": "A", "key": "A/cutout.png", "status": "rejected",
                                             "correction": {"points": [{"x": 3, "y": 4, "include": False}]}})
    assert ok.status_code == 200, ok.text
    fit = client.post("/api/decisions", json={"sku": "A", "key": "A/background-white.png",
                                              "status": "rejected", "correction": {"box": [1, 1, 5, 5]}})
    assert fit.status_code == 422 and "correct a cutout" in fit.json()["detail"]
    seed = client.post("/api/decisions", json={"sku": "A", "key": "A/cutout.png", "status": "rejected",
                                               "correction": {"new_seed": True}})
    assert seed.status_code == 422 and "generated images only" in seed.json()["detail"]
    assert 'data-takes-points="yes"' in client.get("/").text


def test_a_rerun_lapses_decisions_but_keeps_corrections(tmp_path):
    """Decisions hold for the file the reviewer saw; a redone file is undecided, while the box and
    the seed offset stay for every later run into the folder."""
    make_run(tmp_path)
    client = TestClient(create_app(tmp_path), base_url="http://127.0.0.1")

    def reject(key, correction):
        sku = key.split("/")[0]
        r = client.post("/api/decisions", json={"sku": sku, "key": key, "status": "rejected",
                                                "correction": correction})
        assert r.status_code == 200, r.text

    reject("B/cutout.png", {"box": [2, 3, 40, 50]})
    reject("B/background-white.png", {"new_seed": True})
    reject("B/background-white.png", {"new_seed": True})
    review = load_review(LocalStorage(tmp_path))[0]
    assert review.corrections["B"].bbox == (2, 3, 40, 50) and review.corrections["B"].seed_offset == 2
    manifest = RunManifest.model_validate_json((tmp_path / "manifest.json").read_text())
    assert review.to_redo(manifest) == ["B"]
    assert review.outputs["B/cutout.png"].basis == manifest.products[1].outputs[0].sha256

    # The rerun wrote new files for B: its decisions lapse, its corrections stay.
    for o in manifest.products[1].outputs:
        o.sha256 = "f" * 64
    assert review.to_redo(manifest) == []
    (tmp_path / "manifest.json").write_text(manifest.model_dump_json())
    os.utime(tmp_path / "manifest.json", (2, 2))
    b = client.get("/api/products", params={"q": "B"}).json()["items"][0]
    assert b["decision"] == "undecided" and all(o["decision"] is None for o in b["outputs"])
    client.post("/api/decisions", json={"sku": "B", "key": "B/cutout.png", "status": "approved"})
    review = load_review(LocalStorage(tmp_path))[0]
    assert review.corrections["B"].bbox == (2, 3, 40, 50) and review.corrections["B"].seed_offset == 2
