"""The rerun plan: which products --sku / --from-review redo, the corrections every run into the
folder applies, and what products that are not chosen keep."""

from __future__ import annotations

import pytest

from orchestrator.review.decisions import Decision, ReviewStore
from orchestrator.review.rerun import (
    NOT_CHOSEN,
    RerunPlan,
    carried_over,
    check_skus,
    make_plan,
    with_seed_offset,
)
from packshot.errors import PackshotError
from packshot.schemas.results import ProductResult
from packshot.storage import LocalStorage
from packshot.types import Product
from tests.review_run import make_run


def _product(sku: str, bbox=None) -> Product:
    return Product(sku=sku, title=sku, images=[f"{sku}.jpg"], bbox=bbox, source_file="cat.csv", source_line=2)


def test_from_review_chooses_the_rejected_and_applies_their_corrections(tmp_path):
    manifest = make_run(tmp_path)
    storage = LocalStorage(tmp_path)
    store = ReviewStore(storage)
    sha = {o.key: o.sha256 for p in manifest.products for o in p.outputs}
    store.decide(Decision(sku="A", key="A/cutout.png", status="approved", basis=sha["A/cutout.png"]))
    store.decide(Decision(sku="B", key="B/cutout.png", status="rejected", correction={"box": (3, 4, 50, 40)},
                          basis=sha["B/cutout.png"]))
    store.decide(Decision(sku="D", key="D/background-white.png", status="rejected",
                          correction={"new_seed": True}, basis=sha["D/background-white.png"]))

    plan = make_plan(None, False, str(tmp_path), storage)
    assert plan.chosen == {"B", "D"} and not plan.is_chosen("A") and "2 rejected product(s)" in plan.notes[0]
    assert plan.corrected(_product("B")).bbox == (3, 4, 50, 40)
    assert plan.corrected(_product("A", (1, 1, 5, 5))).bbox == (1, 1, 5, 5)
    assert plan.seed_offset("D") == 1 and plan.seed_offset("B") == 0

    # A plain run into the folder redoes everything that changed, and keeps the corrections.
    plain = make_plan(None, False, None, storage)
    assert plain.chosen is None and plain.corrected(_product("B")).bbox == (3, 4, 50, 40)
    assert make_plan(["A"], True, None, storage).chosen == {"A"}


def test_a_folder_without_review_is_a_clear_error(tmp_path):
    make_run(tmp_path)
    with pytest.raises(PackshotError, match="has no review.json: review the run first"):
        make_plan(None, False, str(tmp_path), LocalStorage(tmp_path))
    with pytest.raises(PackshotError, match="--sku NOPE: not in the catalog"):
        check_skus(["A", "NOPE"], [_product("A")])


def test_products_not_chosen_keep_their_previous_result(tmp_path):
    storage = LocalStorage(tmp_path)
    before = ProductResult(sku="A", status="done", notes=["n"], key="k1", source_file="old.csv",
                           source_line=9)
    storage.write_bytes("A/.done.json", before.model_dump_json().encode())
    kept = carried_over(_product("A"), storage, "A", RerunPlan())
    assert kept.status == "skipped" and kept.key == "k1" and kept.notes == ["n", NOT_CHOSEN]
    assert kept.source_file == "cat.csv"  # where the product is in this catalog
    storage.write_bytes("B/.done.json", b"{broken")
    assert carried_over(_product("B"), storage, "B", RerunPlan()).notes[0].endswith("(it has none yet)")


def test_seed_offset_moves_every_brand_seed():
    from packshot.schemas.brand import BrandStyle

    brand = BrandStyle.model_validate({"name": "b", "seed": 7, "seeds": [1, 2],
                                       "scene_prompts": ["a {title} on a table"]})
    moved = with_seed_offset(brand, 2)
    assert (moved.seed, moved.seeds, brand.seed) == (9, [3, 4], 7)
    assert with_seed_offset(None, 3) is None and with_seed_offset(brand, 0) is brand


def _variant_run(tmp_path):
    """A run folder whose products have one color variant each: M knows its own color, U does not."""
    from datetime import UTC, datetime

    from packshot.schemas.results import OutputRecord, RunManifest
    from packshot.types import RecolorReport
    from tests.review_run import write_manifest

    storage = LocalStorage(tmp_path)
    products = []
    for sku, own in (("M", "Mustard #E1AD01"), ("U", None)):
        key = f"{sku}/navy/packshot-white.png"
        storage.write_bytes(key, sku.encode())
        report = RecolorReport(mode="relative", target="#1F2A44", own_color=own, own_color_source="test")
        rec = OutputRecord(sku=sku, kind="packshot", preset="white", variant="navy", key=key, uri=key,
                           format="PNG", width=1, height=1, bytes=1, sha256=sku * 8, source_file="cat.csv",
                           source_line=2, recolor=report)
        products.append(ProductResult(sku=sku, status="done", outputs=[rec], source_file="cat.csv",
                                      source_line=2))
    manifest = RunManifest(catalog="cat.csv", catalog_format="packshot", output=str(tmp_path),
                           started=datetime(2026, 1, 1, tzinfo=UTC), stages=["recolor"], presets=["white"],
                           products=products)
    write_manifest(storage, manifest)
    return storage, {p.sku: p.outputs[0] for p in products}


def test_a_rejected_color_variant_is_really_redone_or_says_why_not(tmp_path):
    import numpy as np

    from orchestrator.review.decisions import recolor_redo
    from packshot.colors import parse_color
    from packshot.types import Rendered
    from stages.recolor import recolor_variants

    storage, records = _variant_run(tmp_path)
    store = ReviewStore(storage)
    for sku, rec in records.items():
        store.decide(Decision(sku=sku, key=rec.key, status="rejected", basis=rec.sha256), rec)
    plan = make_plan(None, False, str(tmp_path), storage)
    assert plan.chosen == {"M"}  # U would come back identical: not "redone"
    assert any("U/navy" in n and "own color is not known" in n for n in plan.notes)
    assert "1 rejected product(s) redone (M)" in " ".join(plan.notes)

    # the redo uses the other mode, which gives another image (a new content key: the row changed)
    colors = [parse_color("Mustard"), parse_color("Navy")]
    product = Product(sku="M", title="cushion", images=["M.jpg"], colors=colors, source_file="cat.csv",
                      source_line=2)
    redo = plan.corrected(product)
    assert redo.recolor_modes == {"navy": "exact-swatch"} and redo.model_dump() != product.model_dump()
    rng = np.random.default_rng(0)
    rgb = np.clip(np.array([150, 112, 30]) * rng.uniform(0.6, 1.0, (64, 64, 1)), 0, 255).astype(np.uint8)
    item = Rendered(rgb, np.full((64, 64), 255, np.uint8), kind="packshot", preset="white")
    before = recolor_variants(item, colors, product=product)[1]
    after = recolor_variants(item, colors, product=redo)[1]
    assert before.recolor.mode == "relative" and after.recolor.mode == "exact-swatch"
    assert not np.array_equal(before.rgb, after.rgb)

    # the redo rejected again: nothing left to try, and the page says so
    again = records["M"].model_copy(update={"recolor": after.recolor, "sha256": "redone"})
    mode, why = recolor_redo(again, store.review.corrections["M"])
    assert mode is None and "already the redo" in why and "recolor_mask" in why


def test_the_review_page_says_how_a_rejected_variant_is_redone(tmp_path):
    from fastapi.testclient import TestClient

    from orchestrator.review.server import create_app

    _, records = _variant_run(tmp_path)
    client = TestClient(create_app(tmp_path), base_url="http://127.0.0.1")
    for sku, rec in records.items():
        assert client.post("/api/decisions", json={"sku": sku, "key": rec.key, "status": "rejected",
                                                   "reason": "too bright"}).status_code == 200
    redo = {p["sku"]: p["outputs"][0]["redo"] for p in client.get("/api/products").json()["items"]}
    assert redo["M"] == "redone in exact-swatch mode by the next run with --from-review"
    assert redo["U"].startswith("cannot be redone automatically") and "photo_color" in redo["U"]
    saved = client.get("/api/review").json()["corrections"]
    assert saved["M"]["recolor_modes"] == {"navy": "exact-swatch"} and "U" not in saved
