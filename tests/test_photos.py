"""Every photo of every product (issue 22): each catalog image is processed and named by its place in
the listing, the manifest, report, review page and publish keep that order, each photo is redone or
reused on its own, and a variant's own photo is used for it instead of a recolor."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.studio import studio_shot, write_catalog
from tests.test_orchestration import CountingSegmenter  # the real segmenter, counting its calls

HERE = Path(__file__).parent
PRESETS = ["test-white", "test-shop"]
BRAND = """name: acme
scene_prompts: ["{title} on a kitchen table"]
scenes_per_product: 2
presets: [test-shop]
"""


def _settings(mp: pytest.MonkeyPatch, folder: Path) -> None:
    mp.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    mp.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    mp.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    mp.setenv("PACKSHOT_BRAND_STYLES_DIR", str(folder / "brands"))
    (folder / "brands").mkdir(exist_ok=True)
    (folder / "brands" / "acme.yaml").write_text(BRAND)


def _photo(folder: Path, name: str, **shot) -> str:
    rgb, _ = studio_shot(**shot)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(folder / "images" / name, quality=92)
    return f"images/{name}"


def _run(catalog: Path, out: Path, stages: list[str], run_id: str = "r1"):
    """One run as the flow makes it (no Prefect): manifest, report; returns (manifest, segment calls)."""
    from orchestrator.context import clear_contexts, get_context
    from orchestrator.options import RunOptions
    from orchestrator.run import finish_run, process_part, start_run

    clear_contexts()
    opts = RunOptions(catalog=str(catalog), out=str(out), presets=PRESETS, stages=stages, brand="acme")
    run = start_run(opts, run_id)
    segmenter = get_context(opts).segmenter = CountingSegmenter(run.ctx.segmenter)
    parts = [process_part(batch, opts, run_id, i) for i, batch in enumerate(run.batches)]
    finish_run(run, parts=parts)
    return json.loads((out / "manifest.json").read_text()), segmenter.calls


@pytest.fixture(scope="module")
def candle(tmp_path_factory):
    """The demo's candle case: one product listing two photos (the candle, then the candle lit), two
    colors, the brand's scenes; plus a one-photo product."""
    folder = tmp_path_factory.mktemp("candle")
    with pytest.MonkeyPatch.context() as mp:
        _settings(mp, folder)
        cat = folder / "cat"
        _photo(cat, "candle.jpg", shape="bottle", color=(225, 215, 190))
        _photo(cat, "candle_lit.jpg", shape="disc", color=(230, 200, 150), seed=3)
        write_catalog(cat, [{"sku": "MUG-1", "shape": "mug"}])  # writes images/MUG-1.jpg
        catalog = write_catalog(cat, [
            {"sku": "CANDLE", "image": "images/candle.jpg|images/candle_lit.jpg", "colors": "Burgundy|Olive"},
            {"sku": "MUG-1", "image": "images/MUG-1.jpg"},
        ])
        out = folder / "out"
        manifest, _ = _run(catalog, out, ["segment", "background", "lifestyle", "recolor", "export"])
        yield out, {p["sku"]: p for p in manifest["products"]}, manifest


def test_every_photo_gets_its_cutout_packshots_scenes_and_variants_under_a_readable_name(candle):
    out, products, _ = candle
    product = products["CANDLE"]
    assert product["status"] == "done", product["error"]
    keys = {o["key"]: o for o in product["outputs"]}
    for key in keys:
        assert (out / key).is_file(), key
    # Photo 1 keeps the names a one-photo product always had; photo 2 has the same names in photo-2/.
    for folder, photo in (("CANDLE", 1), ("CANDLE/photo-2", 2)):
        for name in ("cutout.png", "packshot-test-white.jpg", "packshot-test-shop.jpg",
                     "background-test-shop.jpg", "scene2-test-shop.jpg", "burgundy/packshot-test-white.jpg",
                     "olive/scene2-test-shop.jpg"):
            assert keys[f"{folder}/{name}"]["photo"] == photo, name
    # The two photos' cutouts are cut from different pictures.
    assert keys["CANDLE/cutout.png"]["sha256"] != keys["CANDLE/photo-2/cutout.png"]["sha256"]
    assert [(p["photo"], p["image"], p["folder"]) for p in product["photos"]] == [
        (1, "images/candle.jpg", "CANDLE"), (2, "images/candle_lit.jpg", "CANDLE/photo-2")]
    assert [(v["slug"], v["made"], v["photos"]) for v in product["variants"]] == [
        ("burgundy", "recolored", [1, 2]), ("olive", "recolored", [1, 2])]
    # A one-photo product is unchanged: its files in its folder, photo 1, no photo-2 folder.
    mug = products["MUG-1"]
    assert {o["photo"] for o in mug["outputs"]} == {1} and not (out / "MUG-1" / "photo-2").exists()
    assert "MUG-1/packshot-test-white.jpg" in {o["key"] for o in mug["outputs"]}


def test_listing_positions_put_the_main_photo_first_in_manifest_csv_and_publish(candle):
    from orchestrator.publish import select_outputs
    from packshot.schemas.results import RunManifest

    out, products, manifest = candle
    shop = [o for o in products["CANDLE"]["outputs"] if o["preset"] == "test-shop"]
    by_position = sorted(shop, key=lambda o: o["position"])
    assert [o["position"] for o in by_position] == list(range(1, len(shop) + 1))  # one listing, no gaps
    photos = [o["photo"] for o in by_position]
    assert photos == sorted(photos) and photos[0] == 1 and photos[-1] == 2
    assert by_position[0]["key"] == "CANDLE/packshot-test-shop.jpg"
    rows = [r for r in csv.DictReader(io.StringIO((out / "manifest.csv").read_text()))
            if r["sku"] == "CANDLE"]
    assert {r["key"]: r["photo"] for r in rows}["CANDLE/photo-2/cutout.png"] == "2"
    chosen = select_outputs(RunManifest.model_validate(manifest), None, "test-shop", all_=True)
    sent = [o.key for o in chosen["CANDLE"]]
    assert sent[0] == "CANDLE/packshot-test-shop.jpg"
    assert [o.photo for o in chosen["CANDLE"]] == sorted(o.photo for o in chosen["CANDLE"])
    assert sent.index("CANDLE/photo-2/packshot-test-shop.jpg") > sent.index("CANDLE/scene2-test-shop.jpg")


def test_report_and_review_page_name_the_photo(candle):
    from fastapi.testclient import TestClient

    from orchestrator.review.server import create_app

    out, _, _ = candle
    report = (out / "report.html").read_text()
    assert "photo 2 packshot test-white" in report
    with TestClient(create_app(out), base_url="http://127.0.0.1") as client:
        items = client.get("/api/products", params={"q": "CANDLE"}).json()["items"]
        (item,) = items
        photos = {o["key"]: o["photo"] for o in item["outputs"]}
        assert photos["CANDLE/photo-2/packshot-test-white.jpg"] == 2 and photos["CANDLE/cutout.png"] == 1
        # A box becomes the catalog's bbox, which belongs to the main photo: refused on photo 2's cutout.
        box = {"sku": "CANDLE", "status": "rejected", "correction": {"box": [1, 1, 50, 50]}}
        two = client.post("/api/decisions", json={**box, "key": "CANDLE/photo-2/cutout.png"})
        assert two.status_code == 422 and "main photo" in two.json()["detail"]
        one = client.post("/api/decisions", json={**box, "key": "CANDLE/cutout.png"})
        assert one.status_code == 200, one.text


def test_adding_a_photo_redoes_only_that_photo(tmp_path, monkeypatch):
    _settings(monkeypatch, tmp_path)
    cat = tmp_path / "cat"
    _photo(cat, "front.jpg", shape="bottle")
    catalog = write_catalog(cat, [{"sku": "P", "image": "images/front.jpg", "colors": "Navy"}])
    out, stages = tmp_path / "out", ["segment", "recolor", "export"]
    first, calls = _run(catalog, out, stages)
    assert calls == 1 and first["products"][0]["status"] == "done"
    before = {p: p.stat().st_mtime_ns for p in out.joinpath("P").rglob("*") if p.is_file()}

    _photo(cat, "back.jpg", shape="disc", seed=5)
    two = "images/front.jpg|images/back.jpg"
    catalog = write_catalog(cat, [{"sku": "P", "image": two, "colors": "Navy"}])
    second, calls = _run(catalog, out, stages, "r2")
    (product,) = second["products"]
    assert calls == 1  # only the new photo was cut out
    assert product["status"] == "done"
    assert [p["status"] for p in product["photos"]] == ["skipped", "done"]
    assert "photo 1: unchanged since the last run: reused its outputs" in product["notes"]
    assert not [n for n in product["notes"] if "unchanged" in n and not n.startswith("photo 1: ")]
    after = {p: p.stat().st_mtime_ns for p in out.joinpath("P").rglob("*") if p.is_file()}
    assert {p: after[p] for p in before} == before  # photo 1's files untouched
    new = {str(p.relative_to(out)) for p in set(after) - set(before)}
    assert new and all(k.startswith("P/photo-2/") for k in new)
    assert {o["key"] for o in product["outputs"]} >= {"P/packshot-test-white.jpg", "P/photo-2/cutout.png",
                                                      "P/photo-2/navy/packshot-test-shop.jpg"}

    third, calls = _run(catalog, out, stages, "r3")
    assert calls == 0 and third["products"][0]["status"] == "skipped"

    # Photo 2's record lost: only photo 2 is made again, its cutout from the stage cache (no segment call).
    (out / "P" / "photo-2" / ".done.json").unlink()
    fourth, calls = _run(catalog, out, stages, "r4")
    assert calls == 0 and [p["status"] for p in fourth["products"][0]["photos"]] == ["skipped", "done"]


def test_a_broken_photo_fails_the_product_by_name_and_the_good_photo_is_reused(tmp_path, monkeypatch):
    _settings(monkeypatch, tmp_path)
    cat = tmp_path / "cat"
    _photo(cat, "front.jpg", shape="bottle")
    catalog = write_catalog(cat, [{"sku": "P", "image": "images/front.jpg|images/side.jpg"}])
    out, stages = tmp_path / "out", ["segment", "export"]
    first, calls = _run(catalog, out, stages)
    (product,) = first["products"]
    assert product["status"] == "failed" and "photo 2 (images/side.jpg)" in product["error"]
    assert "side.jpg" in product["error"].partition("): ")[2]  # the loader's own reason follows
    assert {o["key"] for o in product["outputs"]} >= {"P/cutout.png", "P/packshot-test-white.jpg"}
    assert [p["status"] for p in product["photos"]] == ["done", "failed"]

    _photo(cat, "side.jpg", shape="disc", seed=4)  # the merchant adds the missing file
    second, calls = _run(catalog, out, stages, "r2")
    (product,) = second["products"]
    assert product["status"] == "done" and calls == 1
    assert [p["status"] for p in product["photos"]] == ["skipped", "done"]


SHOPIFY = """Handle,Title,Option1 Name,Option1 Value,Image Src,Image Position,Variant Image
tote,Canvas tote,Color,Natural,images/natural.jpg,1,
tote,,,Red,,,images/red.jpg
tote,,,Forest Green,,,
"""


def test_shopify_variant_image_makes_a_photographed_variant_not_a_recolor(tmp_path, monkeypatch):
    from packshot.catalog import load_catalog

    _settings(monkeypatch, tmp_path)
    cat = tmp_path / "cat"
    _photo(cat, "natural.jpg", shape="bottle", color=(200, 190, 160))
    _photo(cat, "red.jpg", shape="bottle", color=(170, 30, 30), seed=2)
    (cat / "products_export.csv").write_text(SHOPIFY)
    (tote,) = load_catalog(cat / "products_export.csv").products
    assert tote.images == ["images/natural.jpg", "images/red.jpg"]
    assert [(c.slug, c.image) for c in tote.colors] == [
        ("natural", None), ("red", "images/red.jpg"), ("forest-green", None)]

    manifest, _ = _run(cat / "products_export.csv", tmp_path / "out", ["segment", "recolor", "export"])
    (product,) = manifest["products"]
    assert product["status"] == "done", product["error"]
    outputs = product["outputs"]
    assert not [o for o in outputs if o["variant"] == "red"]  # never a recolor into the photographed color
    red = [o for o in outputs if o["shows_variant"] == "red"]
    assert red and {o["photo"] for o in red} == {2}
    assert "tote/photo-2/packshot-test-white.jpg" in {o["key"] for o in red}
    # The other colors are recolored from the main photo only: the red photo is red's, not a base.
    assert {o["photo"] for o in outputs if o["variant"] == "forest-green"} == {1}
    made = {v["slug"]: (v["made"], v["photos"]) for v in product["variants"]}
    assert made == {"natural": ("recolored", [1]), "red": ("photographed", [2]),
                    "forest-green": ("recolored", [1])}
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "manifest.csv").read_text())))
    assert {r["shows_variant"] for r in rows if r["photo"] == "2"} == {"red"}


def test_feed_item_per_color_gives_each_variant_its_own_photo(tmp_path):
    from orchestrator.photos import photos_of
    from packshot.sources import open_source
    from packshot.sources.base import SourceSettings

    rows = [
        "id\ttitle\timage_link\tadditional_image_link\titem_group_id\tcolor\tsize",
        "S-RED-M\tShirt Red M\thttps://x.example/r.jpg\thttps://x.example/detail.jpg\tS\tRed\tM",
        "S-RED-L\tShirt Red L\thttps://x.example/r.jpg\t\tS\tRed\tL",
        "S-BLU-M\tShirt Blue M\thttps://x.example/b.jpg\t\tS\tBlue\tM",
        "S-GRN-M\tShirt Green M\thttps://x.example/r.jpg\t\tS\tGreen\tM",
        "SOLO\tMug\thttps://x.example/mug.jpg\t\t\tWhite\t",
    ]
    path = tmp_path / "feed.txt"
    path.write_text("\n".join(rows) + "\n")
    shirt, mug = open_source(path, SourceSettings()).read().products
    assert [(c.slug, c.image) for c in shirt.colors] == [
        ("red", "https://x.example/r.jpg"), ("blue", "https://x.example/b.jpg"),
        ("green", "https://x.example/r.jpg")]  # the merchant reused red's photo for green
    photos = photos_of(shirt, "S")
    assert [(p.position, p.ref, p.shows) for p in photos] == [
        (1, "https://x.example/r.jpg", "red"), (2, "https://x.example/b.jpg", "blue"),
        (3, "https://x.example/detail.jpg", None)]
    # Green has no photo of its own (red's is taken): it is recolored from the main and the detail photo.
    assert [[c.slug for c in p.product.colors] for p in photos] == [["green"], [], ["green"]]
    assert [c.image for c in mug.colors] == [None]  # a single item is no variant


WOO = """ID,Type,SKU,Name,Parent,Images,Attribute 1 name,Attribute 1 value(s)
10,variable,TEE,Tee,,images/tee.jpg,Color,"Navy, Sand"
11,variation,TEE-N,Tee Navy,id:10,images/tee-navy.jpg,Color,Navy
12,variation,TEE-S,Tee Sand,id:10,,Color,Sand
"""


def test_woocommerce_variation_image_is_its_color_photo(tmp_path):
    from packshot.catalog import load_catalog

    (tmp_path / "wc.csv").write_text(WOO)
    (tee,) = load_catalog(tmp_path / "wc.csv").products
    assert tee.images == ["images/tee.jpg", "images/tee-navy.jpg"]
    assert [(c.slug, c.image) for c in tee.colors] == [("navy", "images/tee-navy.jpg"), ("sand", None)]


def test_catalog_bbox_and_mask_belong_to_the_main_photo_and_names_never_collide():
    from orchestrator.photos import photos_of
    from orchestrator.writer import variant_folder
    from packshot.colors import parse_color
    from packshot.types import Product

    product = Product(sku="X", title="X", images=["a.jpg", "b.jpg"], bbox=(1, 2, 30, 40),
                      recolor_mask="m.png", colors=[parse_color("Photo 2=#112233")], source_file="c.csv",
                      source_line=2)
    one, two = photos_of(product, "X")
    assert (one.product.bbox, one.product.recolor_mask) == ((1, 2, 30, 40), "m.png")
    assert (two.product.bbox, two.product.recolor_mask, two.folder) == (None, None, "X/photo-2")
    assert variant_folder("photo-2") != "photo-2" and variant_folder("navy") == "navy"


@pytest.mark.skipif(not Path("/usr/bin/chromium").is_file(), reason="Debian's chromium is not installed")
def test_review_page_in_chromium_labels_photos_and_offers_a_box_on_the_main_photo_only(candle):
    import threading
    import time

    import uvicorn

    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev extra)")
    from orchestrator.review.server import create_app

    out, _, _ = candle
    server = uvicorn.Server(uvicorn.Config(create_app(out), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the review server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            second = page.locator("figure.output[data-key='CANDLE/photo-2/cutout.png']")
            second.wait_for()
            assert "photo 2 cutout" in second.locator("figcaption").inner_text()
            assert second.locator("input.coord").count() == 0  # a box belongs to the main photo
            first = page.locator("figure.output[data-key='CANDLE/cutout.png']")
            assert first.locator("input.coord").count() == 4
            assert "photo" not in first.locator("figcaption span").first.inner_text()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)


def test_each_photo_gets_its_own_generated_background(tmp_path, monkeypatch):
    """A generative backend (tiny random weights): the fills are made per photo, on the GPU holder."""
    _settings(monkeypatch, tmp_path)
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "tiny")
    cat = tmp_path / "cat"
    _photo(cat, "a.jpg", shape="bottle")
    _photo(cat, "b.jpg", shape="mug", seed=6)
    catalog = write_catalog(cat, [{"sku": "G", "image": "images/a.jpg|images/b.jpg"}])
    manifest, calls = _run(catalog, tmp_path / "out", ["segment", "background", "export"])
    (product,) = manifest["products"]
    assert product["status"] == "done", product["error"]
    backgrounds = {o["photo"]: o for o in product["outputs"] if o["kind"] == "background"}
    assert set(backgrounds) == {1, 2} and all(o["generated"] for o in backgrounds.values())
    assert backgrounds[1]["key"] == "G/background-test-shop.jpg"
    assert backgrounds[2]["key"] == "G/photo-2/background-test-shop.jpg"
    assert backgrounds[1]["sha256"] != backgrounds[2]["sha256"] and calls == 2
