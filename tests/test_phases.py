"""The orchestrator's per-product phases: what reaches which preset, and merchant masks through placement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.studio import studio_shot, write_catalog

HERE = Path(__file__).parent
# A brand that asks for scenes on both presets: the one that forbids generated images must not get them.
BRAND = """name: both
scene_prompts: ["{title} on a shelf"]
scenes_per_product: 1
presets: [test-white, test-shop]
"""


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_BRAND_STYLES_DIR", str(tmp_path / "brands"))
    (tmp_path / "brands").mkdir()
    (tmp_path / "brands" / "both.yaml").write_text(BRAND)
    return tmp_path


def _process(catalog: Path, out: Path, stages: list[str]):
    import orchestrator
    from packshot.catalog import load_catalog

    orchestrator.clear_contexts()
    options = orchestrator.RunOptions(catalog=str(catalog), out=str(out), presets=["test-white", "test-shop"],
                                      stages=stages, brand="both")
    (result,) = orchestrator.process_batch(load_catalog(catalog).products, options)
    return result


def test_generated_images_never_reach_a_preset_that_forbids_them(env, monkeypatch):
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "tiny")  # a real generative backend (tiny weights)
    catalog = write_catalog(env / "cat", [{"sku": "GATE-1"}])
    result = _process(catalog, env / "out", ["segment", "background", "lifestyle", "export"])
    assert result.status == "done", result.error
    by_preset: dict[str, set[str]] = {}
    for out in result.outputs:
        by_preset.setdefault(out.preset, set()).add(out.kind)
        if out.preset == "test-white":
            assert not out.generated, out.key
    assert by_preset["test-white"] == {"packshot"}
    assert {"packshot", "background", "scene"} <= by_preset["test-shop"]
    assert all(o.generated for o in result.outputs if o.kind in ("background", "scene"))


def test_merchant_recolor_mask_is_mapped_through_the_placement(env, monkeypatch):
    """The mask is drawn on the source photo; in each output only the mapped region changes color."""
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    folder = env / "cat"
    rgb, alpha = studio_shot(size=160, shape="disc", color=(200, 200, 200))
    mask = np.zeros(alpha.shape, np.uint8)
    mask[:, :80] = 255  # the left half of the source photo only
    mask &= np.where(alpha > 250, 255, 0).astype(np.uint8)
    (folder / "images").mkdir(parents=True)
    Image.fromarray(rgb).save(folder / "images" / "disc.png")
    Image.fromarray(mask).save(folder / "images" / "disc-mask.png")
    catalog = write_catalog(folder, [{"sku": "MASK-1", "image": "images/disc.png",
                                      "recolor_mask": "images/disc-mask.png", "colors": "Red=#C8102E"}])
    result = _process(catalog, env / "out", ["segment", "recolor", "export"])
    assert result.status == "done", result.error
    out = env / "out"
    checked = 0
    for record in result.outputs:
        if record.variant is None or record.kind != "packshot":
            continue
        original = next(o for o in result.outputs if o.variant is None and o.kind == record.kind
                        and o.preset == record.preset)
        before = np.asarray(Image.open(out / original.key).convert("RGB"), np.int16)
        after = np.asarray(Image.open(out / record.key).convert("RGB"), np.int16)
        changed = np.abs(after - before).max(axis=2) > 40
        ys, xs = np.nonzero(changed)
        assert len(xs) > 200, record.key  # the masked half was recolored ...
        assert xs.max() < before.shape[1] / 2 + 4, record.key  # ... and nothing right of the centre line
        checked += 1
    assert checked == 2  # both presets' packshots
