"""One generator call per distinct request: presets of one aspect ratio share their background and
scene fills (same size, prompt, seed and mask up to the product's edge); each preset is fitted from the
shared image. Counted on the tiny FLUX Fill backend and in the run's results and manifest summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.studio import write_catalog

# A demo-like brand (background + two scenes) that asks for three square presets of different sizes
# and one portrait preset: two aspect ratios, so 2 x 3 distinct images.
PRESETS = """presets:
  sq-small: {width: 200, height: 200, format: JPEG}
  sq-mid: {width: 256, height: 256, format: JPEG}
  sq-large: {width: 320, height: 320, format: JPEG}
  portrait: {width: 256, height: 320, format: JPEG}
"""
BRAND = """name: demo-like
background_prompt: "{title} on a pale oak floor, white wall"
scene_prompts: ["{title} on a shelf", "{title} in a living room"]
scenes_per_product: 2
seed: 7
fill_fraction: 0.6
presets: [sq-small, sq-mid, sq-large, portrait]
"""
NAMES = ["sq-small", "sq-mid", "sq-large", "portrait"]


@pytest.fixture
def env(monkeypatch, tmp_path):
    (tmp_path / "presets.yaml").write_text(PRESETS)
    (tmp_path / "brands").mkdir()
    (tmp_path / "brands" / "demo-like.yaml").write_text(BRAND)
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(tmp_path / "presets.yaml"))
    monkeypatch.setenv("PACKSHOT_BRAND_STYLES_DIR", str(tmp_path / "brands"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "tiny")
    return tmp_path


def test_one_generation_per_aspect_ratio_and_shot(env):
    import orchestrator
    from orchestrator.run import finish_run, process_part, start_run

    catalog = write_catalog(env / "cat", [{"sku": "BOTTLE-1", "brand_style": "demo-like"}])
    orchestrator.clear_contexts()
    options = orchestrator.RunOptions(catalog=str(catalog), out=str(env / "out"), presets=NAMES,
                                      stages=["segment", "background", "lifestyle", "export"])
    run = start_run(options, "share-1")
    generator = run.ctx.generator
    before = generator.images_generated
    part = process_part(run.products, options, "share-1", 0)
    summary = finish_run(run, parts=[part])

    per_product = 2 * 3  # (square, portrait) x (background, scene 1, scene 2); one image per preset today: 12
    assert generator.images_generated - before == per_product
    manifest = (env / "out" / "manifest.json").read_text()
    data = json.loads(manifest)
    assert data["generator_calls"] == per_product
    assert data["fills_shared"] == 4 * 3 - per_product
    assert any("6 images generated; 6 more fitted" in n for n in data["notes"]), data["notes"]
    for product in data["products"]:
        assert product["status"] == "done", product["error"]
        assert product["generator_calls"] == per_product
        made = {(o["preset"], o["kind"]) for o in product["outputs"]}
        for name in NAMES:  # every preset still gets its background and both scenes, at its own size
            assert (name, "background") in made and (name, "scene") in made
    sizes = {o["preset"]: (o["width"], o["height"]) for o in data["products"][0]["outputs"]
             if o["kind"] == "background"}
    assert sizes == {"sq-small": (200, 200), "sq-mid": (256, 256), "sq-large": (320, 320),
                     "portrait": (256, 320)}
    assert summary.counts["done"] == 1


def test_sharing_off_generates_one_image_per_preset(env, monkeypatch):
    """The switch the benchmark compares against: one generation per preset, as before."""
    import orchestrator
    from packshot.catalog import load_catalog

    monkeypatch.setenv("PACKSHOT_ORCHESTRATION__SHARE_FILLS", "false")
    catalog = write_catalog(env / "cat", [{"sku": "BOTTLE-1", "brand_style": "demo-like"}])
    orchestrator.clear_contexts()
    options = orchestrator.RunOptions(catalog=str(catalog), out=str(env / "out"), presets=NAMES,
                                      stages=["segment", "background", "export"])
    (result,) = orchestrator.process_batch(load_catalog(catalog).products, options)
    assert (result.generator_calls, result.fills_shared) == (4, 0)


def test_shared_image_is_fitted_to_each_preset(env):
    """Two square presets of a product show the same generated picture, scaled: they come from one image."""
    import orchestrator
    from packshot.catalog import load_catalog

    catalog = write_catalog(env / "cat", [{"sku": "BOTTLE-1", "brand_style": "demo-like"}])
    orchestrator.clear_contexts()
    options = orchestrator.RunOptions(catalog=str(catalog), out=str(env / "out"), presets=NAMES,
                                      stages=["segment", "background", "export"])
    (result,) = orchestrator.process_batch(load_catalog(catalog).products, options)
    assert result.status == "done", result.error
    assert (result.generator_calls, result.fills_shared) == (2, 2)
    images = {o.preset: _small(env / "out" / o.key) for o in result.outputs if o.kind == "background"}
    same = np.abs(images["sq-small"] - images["sq-large"]).mean()
    other = np.abs(images["sq-small"] - images["portrait"]).mean()
    assert same < 6 and same < other / 2, (same, other)


def _small(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB").resize((64, 64)), np.float32)


def test_reruns_count_no_generation(env):
    """An unchanged product reuses its files: the second run generates nothing and says so."""
    import orchestrator
    from packshot.catalog import load_catalog

    catalog = write_catalog(env / "cat", [{"sku": "BOTTLE-1", "brand_style": "demo-like"}])
    options = orchestrator.RunOptions(catalog=str(catalog), out=str(env / "out"), presets=["sq-mid"],
                                      stages=["segment", "background", "export"])
    products = load_catalog(catalog).products
    orchestrator.clear_contexts()
    (first,) = orchestrator.process_batch(products, options)
    (again,) = orchestrator.process_batch(products, options)
    assert first.generator_calls == 2 and first.fills_shared == 2  # (square, portrait) backgrounds
    assert again.status == "skipped" and again.generator_calls == 0 and again.fills_shared == 0


def test_requests_differing_beyond_the_edge_are_not_shared():
    from stages.background.generators import FillRequest
    from stages.background.render import same_fill

    guide = np.zeros((64, 64, 3), np.uint8)
    mask = np.ones((64, 64), bool)
    mask[20:44, 24:40] = False  # the protected product
    edge = mask.copy()
    edge[20, 24:40] = True  # one pixel row at the edge moved: same image
    moved = np.ones((64, 64), bool)
    moved[24:48, 24:40] = False  # the product placed 4 px lower: another image
    a = FillRequest(guide, mask, "p", 1)
    assert same_fill(a, FillRequest(guide, edge, "p", 1))
    assert not same_fill(a, FillRequest(guide, moved, "p", 1))
    assert not same_fill(a, FillRequest(guide, mask, "p", 2))
    assert not same_fill(a, FillRequest(guide, mask, "q", 1))
    assert not same_fill(a, FillRequest(guide[:32], mask[:32], "p", 1))
