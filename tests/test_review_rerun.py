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
