"""Memory plans chosen from a card's free memory (arithmetic only, nothing loaded), applied to a real
(tiny) pipeline, and what ``packshot plan`` prints."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from orchestrator.plans import describe, plan_run
from orchestrator.settings import Settings
from packshot import memory
from packshot.memory import FOOTPRINTS, GIB, plan_phase
from packshot.placement import apply_memory_plan

FLUX, SAM = FOOTPRINTS["flux-fill"], FOOTPRINTS["sam-vit_h"]


def _settings(**video) -> Settings:
    return Settings(segment={"backend": "sam", "sam_checkpoint": "/models/sam.pth", "batch_size": 4},
                    generative={"backend": "flux", "flux_model": "/models/flux-fill"}, video=video or {})


@pytest.mark.parametrize(("free_gib", "plan"), [(23.4, "fp8"), (47.3, "full"), (79.2, "full"),
                                                (38.9, "text-offload"), (12.0, "group-offload")])
def test_image_plan_for_the_free_memory_of_common_cards(free_gib, plan):
    chosen = plan_phase("image", [SAM, FLUX], int(free_gib * GIB), work_scale={SAM.name: 4})
    assert chosen.plan == plan and chosen.fits, chosen.why
    assert chosen.peak_bytes <= free_gib * GIB
    heavier = memory.PLAN_ORDER[: memory.PLAN_ORDER.index(plan)]
    assert all(memory.phase_peak([SAM, FLUX], p, {SAM.name: 4}) > free_gib * GIB for p in heavier)


def test_the_24_gb_plan_keeps_fp8_flux_and_sam_on_the_card_with_room_to_spare():
    chosen = plan_phase("image", [SAM, FLUX], int(23.4 * GIB), work_scale={SAM.name: 4})
    by_name = {m.footprint.name: m for m in chosen.models}
    assert by_name["FLUX.1 Fill"].plan == "fp8" and by_name["SAM ViT-H"].plan == "full"
    # 11.90 B params x 1 byte (+2% bf16 norms) + 2 of 24 T5 layers + CLIP/VAE
    assert by_name["FLUX.1 Fill"].card_bytes == int(11.90e9 * 1.02) + 2 * FLUX.text // 24 + FLUX.rest
    assert by_name["FLUX.1 Fill"].host_bytes == FLUX.text  # T5 streamed from host memory
    assert 20 * GIB < chosen.peak_bytes < 21 * GIB


def test_a_setting_overrides_auto_and_an_impossible_card_says_so():
    forced = plan_phase("image", [SAM, FLUX], int(79 * GIB), "group-offload")
    assert forced.plan == "group-offload" and "PACKSHOT_GENERATIVE__MEMORY_PLAN=group-offload" in forced.why
    small = plan_phase("image", [SAM, FLUX], int(7.5 * GIB), work_scale={SAM.name: 4})
    assert not small.fits and small.plan == "group-offload" and "cannot fit" in small.why
    with pytest.raises(memory.ConfigError, match="PACKSHOT_VIDEO__MEMORY_PLAN='fast'"):
        plan_phase("video", [FLUX], GIB, "fast")
    assert memory.lighter_plan("full") == "text-offload" and memory.lighter_plan("group-offload") is None


def test_wan_14b_and_flux_cannot_stay_together_on_24_or_80_gb_but_take_turns():
    settings = _settings(provider="local", local_model="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
                         local_pipeline="WanImageToVideoPipeline")
    stages = ["segment", "background", "video"]
    small = plan_run(settings, stages, "cuda", free_bytes=int(23.5 * GIB))
    assert (small.image.plan, small.video.plan, small.together) == ("fp8", "group-offload", False)
    large = plan_run(settings, stages, "cuda", free_bytes=int(79.5 * GIB))
    assert (large.image.plan, large.video.plan, large.together) == ("full", "full", False)
    text = describe(small)
    assert "cannot stay resident together" in text and "not measurements" in text
    ltx = plan_run(_settings(provider="local", local_model="Lightricks/LTX-Video"), stages, "cuda",
                   free_bytes=int(79.5 * GIB))
    assert ltx.together and ltx.video.plan == "full"


def test_packshot_plan_prints_each_phase_for_a_card_size(monkeypatch):
    from cli.main import app

    for name, value in {"PACKSHOT_SEGMENT__BACKEND": "sam", "PACKSHOT_SEGMENT__SAM_CHECKPOINT": "/m/sam.pth",
                        "PACKSHOT_GENERATIVE__BACKEND": "flux",
                        "PACKSHOT_GENERATIVE__FLUX_MODEL": "/m/flux",
                        "PACKSHOT_LICENCES__HELD": '["flux-1-dev"]'}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["plan", "--gpu-memory", "24"])
    assert result.exit_code == 0, result.output
    assert "image phase: plan fp8" in result.output and "FLUX.1 Fill" in result.output
    tiny = CliRunner().invoke(app, ["plan", "--gpu-memory", "6"])
    assert tiny.exit_code == 1 and "CANNOT FIT" in tiny.output


def test_plans_apply_to_a_real_tiny_pipeline_and_it_still_renders():
    import numpy as np
    import torch
    from PIL import Image

    from stages.background.tiny import build_tiny_fill_pipeline

    image = np.full((64, 64, 3), 200, np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[:, :32] = True
    outputs = {}
    for plan in memory.PLAN_ORDER:
        pipe = build_tiny_fill_pipeline()
        notes = apply_memory_plan(pipe, plan, "cpu")
        assert notes[0].startswith(f"memory plan {plan}")
        result = pipe(prompt="a bottle", image=Image.fromarray(image),
                      mask_image=Image.fromarray(mask.astype(np.uint8) * 255), height=64, width=64,
                      num_inference_steps=2, generator=torch.Generator("cpu").manual_seed(0),
                      max_sequence_length=16, output_type="np")
        outputs[plan] = result.images[0]
    # placement alone changes nothing; FP8 storage changes the pixels a little, not the picture
    assert np.allclose(outputs["full"], outputs["text-offload"], atol=1e-5)
    assert np.allclose(outputs["full"], outputs["group-offload"], atol=1e-5)
    assert 0 < np.abs(outputs["full"] - outputs["fp8"]).mean() < 0.1
    fp8 = build_tiny_fill_pipeline()
    apply_memory_plan(fp8, "fp8", "cpu")
    weight = fp8.transformer.x_embedder.weight  # torchao's FP8 tensor, or FP8 storage without torchao
    assert type(weight).__name__ == "Float8Tensor" or weight.dtype == torch.float8_e4m3fn


def test_a_run_stops_at_the_start_when_no_plan_fits_the_free_memory():
    from orchestrator.context import _check_fits
    from packshot.errors import PackshotError

    settings = _settings()
    busy = plan_run(settings, ["segment", "background"], "cuda", free_bytes=int(6 * GIB))  # others hold it
    with pytest.raises(PackshotError, match="cannot fit.*GPU_WORKERS=served.*GENERATIVE__MEMORY_PLAN"):
        _check_fits(busy, settings)
    forced = settings.model_copy(update={"generative": settings.generative.model_copy(
        update={"memory_plan": "group-offload"})})
    _check_fits(plan_run(forced, ["segment", "background"], "cuda", free_bytes=int(6 * GIB)), forced)
    _check_fits(plan_run(settings, ["segment", "background"], "cuda", free_bytes=int(23.4 * GIB)), settings)
