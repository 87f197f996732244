"""FLUX.2 [klein] 4B inpainting: the real ``Flux2KleinInpaintPipeline.from_pretrained`` path on tiny
random components, through every generative stage, with brand LoRAs, the prompt cache and batches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from packshot.config import GenerativeSettings
from packshot.errors import ModelUnavailableError
from packshot.schemas.presets import Preset
from stages.background import get_background_generator, render_background
from stages.background.generators import BACKENDS
from stages.background.klein import Flux2KleinGenerator, ensure_tiny_klein_model
from tests.studio import write_catalog
from tests.test_background import product, solid_inside, vase_cutout
from tests.test_lifestyle import brand, render_scenes

PRESET = Preset(name="scene", width=96, height=80)


@pytest.fixture(scope="module")
def klein_dir(tmp_path_factory):
    """A local model folder as a merchant would have it (model_index.json + components)."""
    return ensure_tiny_klein_model(tmp_path_factory.mktemp("models") / "flux2-klein")


@pytest.fixture(scope="module")
def klein(klein_dir):
    settings = GenerativeSettings(backend="flux2-klein", klein_model=str(klein_dir), fill_fraction=0.5,
                                  generate_long_side=64, klein_steps=2, max_sequence_length=32)
    return get_background_generator(settings, "cpu")


def test_klein_backend_loads_the_local_folder_and_keeps_product_pixels(klein):
    assert isinstance(klein, Flux2KleinGenerator) and klein.name == "flux2-klein"
    assert "Apache-2.0" in klein.licence and klein.generated
    cut = vase_cutout()
    x0, y0, x1, y1 = cut.bbox
    preset = Preset(name="exact", width=2 * (y1 - y0) + 20, height=2 * (y1 - y0))
    out = render_background(cut, product(), None, preset, klein)
    ys, xs = np.nonzero(out.product_alpha > 8)
    source = cut.rgba[y0:y1, x0:x1]
    placed = out.rgb[ys.min() : ys.min() + (y1 - y0), xs.min() : xs.min() + (x1 - x0)]
    inside = solid_inside(source[..., 3])
    assert inside.sum() > 500 and np.array_equal(placed[inside], source[..., :3][inside])
    classic = render_background(cut, product(), None, preset,
                                get_background_generator(GenerativeSettings(backend="classic"), "cpu"))
    assert np.abs(out.rgb.astype(int) - classic.rgb).mean() > 5  # the backdrop really was generated


def test_batched_fills_equal_fills_alone_and_prompts_are_encoded_once(klein):
    image = np.full((64, 48, 3), 180, np.uint8)
    mask = np.zeros((64, 48), bool)
    mask[:30] = True
    before = klein.prompts.encoded
    alone = [klein.fill(image, mask, prompt, seed) for prompt, seed in (("a table", 1), ("a beach", 2))]
    klein.settings.speed.batch_size = 2
    try:
        together = klein.fill_batch([(image, mask, "a table", 1), (image, mask, "a beach", 2)])
    finally:
        klein.settings.speed.batch_size = 1
    for a, b in zip(alone, together, strict=True):
        assert np.abs(a.astype(int) - b).max() <= 1
    assert klein.prompts.encoded - before <= 2  # the batch reused both cached prompts
    assert not np.array_equal(alone[0], alone[1])  # prompt and seed matter


def test_brand_lora_loads_into_klein_and_switching_back_restores_the_base(klein, tmp_path):
    import torch
    from diffusers import Flux2KleinInpaintPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    from stages.background.klein import build_tiny_klein_pipeline

    transformer = build_tiny_klein_pipeline().transformer
    torch.manual_seed(3)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"],
                                       init_lora_weights=False))
    with torch.no_grad():  # a strong style: random A and B at peft's init are too faint for 2 steps
        for name, param in transformer.named_parameters():
            if "lora_" in name:
                param.mul_(8)
    Flux2KleinInpaintPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(
        transformer), weight_name="warm.safetensors")
    cut, item = vase_cutout(), product()
    plain = render_scenes(cut, item, brand("plain"), PRESET, klein)[0]
    warm = render_scenes(cut, item, brand("warm", tmp_path / "warm.safetensors"), PRESET, klein)[0]
    assert "lora:warm" in klein.active_identity
    assert np.abs(plain.rgb.astype(int) - warm.rgb).mean() > 0.5
    again = render_scenes(cut, item, brand("plain"), PRESET, klein)[0]
    assert np.abs(plain.rgb.astype(int) - again.rgb).mean() < 0.5 and "lora" not in klein.active_identity


def test_auto_prefers_the_licence_clean_klein_when_both_models_are_configured(klein_dir):
    both = GenerativeSettings(flux_model="/models/flux-fill", klein_model=str(klein_dir))
    spec, notes = BACKENDS.choose("auto", both)
    assert spec.name == "flux2-klein" and spec.licence_of(both).commercial == "allowed"
    only_flux = GenerativeSettings(flux_model="/models/flux-fill")
    assert BACKENDS.choose("auto", only_flux)[0].name == "flux"


def test_missing_klein_folder_names_the_setting_and_the_official_weights(tmp_path):
    with pytest.raises(ModelUnavailableError, match="PACKSHOT_GENERATIVE__KLEIN_MODEL.*FLUX.2-klein-4B"):
        get_background_generator(GenerativeSettings(backend="flux2-klein", klein_model=str(tmp_path / "x")),
                                 "cpu")


def test_a_klein_run_goes_through_every_generative_stage(klein_dir, tmp_path, monkeypatch):
    """A catalog run configured as a merchant would (backend + local folder): cutout, packshots,
    background, brand scenes and color variants, with the licence in the manifest."""
    from pathlib import Path

    import orchestrator as pipeline
    from orchestrator.run import finish_run, process_part, start_run

    here = Path(__file__).parent
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(here / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "flux2-klein")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__KLEIN_MODEL", str(klein_dir))
    monkeypatch.setenv("PACKSHOT_GENERATIVE__KLEIN_STEPS", "2")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__GENERATE_LONG_SIDE", "64")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__MAX_SEQUENCE_LENGTH", "32")
    monkeypatch.setenv("PACKSHOT_BRAND_STYLES_DIR", str(tmp_path / "brands"))
    (tmp_path / "brands").mkdir()
    (tmp_path / "brands" / "acme.yaml").write_text(
        'name: acme\nscene_prompts: ["{title} on a kitchen table"]\nscenes_per_product: 1\n'
        'presets: [test-shop]\npalette: ["#D9CBB5"]\n')
    catalog = write_catalog(tmp_path / "cat", [{"sku": "K-1", "brand_style": "acme", "colors": "navy"}])
    out = tmp_path / "out"
    options = pipeline.RunOptions(catalog=str(catalog), out=str(out), presets=["test-white", "test-shop"],
                                  stages=["segment", "background", "lifestyle", "recolor", "export"])
    run = start_run(options, "klein-run")
    parts = [process_part(batch, options, run.run_id, i) for i, batch in enumerate(run.batches)]
    summary = finish_run(run, parts=parts)
    assert summary.counts["done"] == 1, summary.markdown
    manifest = json.loads((out / "manifest.json").read_text())
    kinds = {o["kind"] for p in manifest["products"] for o in p["outputs"]}
    assert {"cutout", "packshot", "background", "scene"} <= kinds
    assert any(o.get("variant") for p in manifest["products"] for o in p["outputs"])
    assert manifest["licences"]["background:flux2-klein"].startswith("Apache-2.0: commercial use allowed")
    assert "Apache-2.0" in (out / "report.html").read_text()


def test_klein_compiles_regionally_with_the_hotswap_slot_and_batches_without_recompiling(klein_dir, klein):
    from packshot.config import FluxSpeedSettings

    speed = FluxSpeedSettings(compile=True, compile_backend="aot_eager", lora_hotswap=True, lora_max_rank=8,
                              batch_size=2)
    compiled = get_background_generator(GenerativeSettings(
        backend="flux2-klein", klein_model=str(klein_dir), klein_steps=2, max_sequence_length=32,
        speed=speed), "cpu")
    assert any("compiled regionally" in n for n in compiled.notes)
    image = np.full((64, 48, 3), 180, np.uint8)
    mask = np.zeros((64, 48), bool)
    mask[:30] = True
    first = compiled.fill_batch([(image, mask, "a table", 1), (image, mask, "a beach", 2)])
    again = compiled.fill_batch([(image, mask, "a kitchen", 3), (image, mask, "a beach", 2)])
    assert compiled.recompiles == 0 and np.array_equal(first[1], again[1])
    eager = klein.fill(image, mask, "a beach", 2)
    assert np.abs(eager.astype(int) - first[1]).max() <= 1  # compiling changes no pixel beyond rounding
