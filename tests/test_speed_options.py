"""Speed options of FLUX Fill and SAM (issue 14) on the tiny models: each one gives the output it
promises (batched = alone, cached = fresh, hot-swapped after compile = eager) and fails with the
setting's name where it cannot run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from packshot.config import FluxSpeedSettings, GenerativeSettings
from packshot.errors import ConfigError, ModelUnavailableError
from packshot.schemas.brand import BrandStyle
from stages.background.generators import FillRequest, FluxFillGenerator
from stages.background.speed import choose_attention_backend, quantize_fp8
from stages.background.tiny import build_tiny_fill_pipeline, save_tiny_lora
from stages.segment import get_segmenter
from stages.segment.settings import SegmentSettings
from tests.studio import studio_shot

SIZE = 64


def generator(steps: int = 1, dtype=torch.float32, **speed) -> FluxFillGenerator:
    """A tiny generator on its own fresh pipe (speed options are applied to a pipe once)."""
    pipe = build_tiny_fill_pipeline().to(dtype)
    pipe.set_progress_bar_config(disable=True)
    settings = GenerativeSettings(backend="tiny", steps=steps, speed=FluxSpeedSettings(**speed))
    return FluxFillGenerator(pipe, name="tiny", key=f"test:{speed}", model_identity="tiny:test",
                             licence="test", settings=settings, long_side=SIZE, steps=steps,
                             max_sequence_length=32, device="cpu")


def requests(prompts: list[str]) -> list[FillRequest]:
    rng = np.random.default_rng(7)
    mask = np.ones((SIZE, SIZE), bool)
    mask[20:44, 24:40] = False  # a kept product area
    return [FillRequest(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), mask, p, seed)
            for seed, p in enumerate(prompts)]


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def loras(tmp_path_factory) -> dict[str, BrandStyle]:
    root = tmp_path_factory.mktemp("speed-loras")
    files = {
        "warm": save_tiny_lora(root / "warm", ["to_q", "to_k", "to_v", "proj_out"], rank=4, seed=1),
        "cool": save_tiny_lora(root / "cool", ["to_q", "to_v", "proj_mlp"], rank=8, seed=2),
        "wide": save_tiny_lora(root / "wide", ["to_q"], rank=32, seed=3),
    }
    return {name: BrandStyle(name=name, scene_prompts=["a scene"], lora={"source": str(path), "scale": 0.8})
            for name, path in files.items()}


def test_batched_fill_equals_each_image_rendered_alone():
    reqs = requests(["a red cup on oak", "a blue cup on slate", "a red cup on oak", "a vase"])
    alone = generator()
    singles = [alone.fill(r.image, r.mask, r.prompt, r.seed) for r in reqs]
    batched = generator(batch_size=3).fill_batch(reqs)  # a batch of 3 and one of 1
    assert len(batched) == 4
    assert max(max_diff(a, b) for a, b in zip(singles, batched, strict=True)) <= 2
    assert max_diff(singles[0], singles[2]) > 20  # same prompt, other seed: another image


def test_fill_batch_refuses_mixed_sizes():
    small = FillRequest(np.zeros((32, 32, 3), np.uint8), np.ones((32, 32), bool), "x", 0)
    with pytest.raises(ValueError, match="one size"):
        generator().fill_batch([*requests(["x"]), small])


def test_cached_prompt_embeddings_equal_fresh_ones_and_encode_each_prompt_once():
    gen = generator()
    first = gen.prompts.get("a red cup", 32)
    again = gen.prompts.get("a red cup", 32)
    with torch.no_grad():
        fresh, pooled, _ = gen.pipe.encode_prompt(prompt="a red cup", prompt_2=None, device="cpu",
                                                  max_sequence_length=32)
    assert again is first and gen.prompts.encoded == 1
    assert torch.equal(first.prompt_embeds, fresh) and torch.equal(first.pooled, pooled)
    assert not torch.equal(gen.prompts.get("a blue cup", 32).prompt_embeds, fresh)
    gen.prompts.get("a red cup", 16)  # another sequence length is another entry
    assert gen.prompts.encoded == 3

    # the pipeline fed the cached embedding gives exactly what it gives when it encodes the prompt
    req = requests(["a red cup"])[0]
    ours = gen.fill(req.image, req.mask, req.prompt, req.seed)
    from PIL import Image

    plain = gen.pipe(prompt=req.prompt, image=Image.fromarray(req.image),
                     mask_image=Image.fromarray(req.mask.astype(np.uint8) * 255), height=SIZE, width=SIZE,
                     num_inference_steps=1, guidance_scale=gen.settings.guidance_scale,
                     generator=torch.Generator("cpu").manual_seed(req.seed), max_sequence_length=32,
                     output_type="np").images[0]
    assert max_diff(ours, np.clip(np.round(plain * 255), 0, 255).astype(np.uint8)) == 0
    assert gen.prompts.encoded == 3  # the fill used the cache


def test_prompt_cache_evicts_the_least_recent_prompt():
    gen = generator(prompt_cache=2)
    for prompt in ("one", "two", "one", "three", "one"):
        gen.prompts.get(prompt, 32)
    assert gen.prompts.encoded == 3  # "one" stayed; "two" was evicted by "three"
    gen.prompts.get("two", 32)
    assert gen.prompts.encoded == 4


def test_freed_text_encoders_keep_cached_prompts_and_say_what_to_do_for_new_ones():
    gen = generator()
    req = requests(["a red cup"])[0]
    before = gen.fill(req.image, req.mask, req.prompt, req.seed)
    gen.free_text_encoders()
    assert gen.pipe.text_encoder is None and gen.pipe.text_encoder_2 is None
    assert max_diff(gen.fill(req.image, req.mask, req.prompt, req.seed), before) == 0
    with pytest.raises(ModelUnavailableError, match="TEXT_ENCODER_DEVICE"):
        gen.fill(req.image, req.mask, "a prompt never seen", 0)


def test_lora_hotswap_after_compile_gives_each_loras_eager_output_without_recompiling(loras):
    req = requests(["a cup"])[0]
    eager = generator()
    expected = {}
    for name in (None, "warm", "cool"):
        eager.use_brand(loras[name] if name else None)
        expected[name] = eager.fill(req.image, req.mask, req.prompt, req.seed)
    assert max_diff(expected["warm"], expected[None]) > 2 and max_diff(expected["warm"], expected["cool"]) > 2

    fast = generator(lora_hotswap=True, lora_max_rank=16, compile=True, compile_backend="aot_eager")
    fast.use_brand(loras["warm"])
    assert max_diff(fast.fill(req.image, req.mask, req.prompt, req.seed), expected["warm"]) <= 2
    assert fast.speed_state.graphs_compiled > 0  # the blocks really went through dynamo
    for name in ("cool", None, "warm", "cool"):
        fast.use_brand(loras[name] if name else None)
        out = fast.fill(req.image, req.mask, req.prompt, req.seed)
        assert max_diff(out, expected[name]) <= 2, name
    assert "lora:cool" in fast.active_identity
    half = loras["warm"].model_copy(update={"lora": loras["warm"].lora.model_copy(update={"scale": 0.1})})
    fast.use_brand(half)  # the scale is folded into the swapped weights: a new scale is a new swap
    assert max_diff(fast.fill(req.image, req.mask, req.prompt, req.seed), expected["warm"]) > 2
    assert fast.recompiles == 0


def test_hotswap_refuses_a_lora_above_the_slot_rank(loras):
    gen = generator(lora_hotswap=True, lora_max_rank=16)
    with pytest.raises(ConfigError, match="LORA_MAX_RANK=16"):
        gen.use_brand(loras["wide"])


def test_attention_backend_is_chosen_per_device_and_reported():
    assert choose_attention_backend("auto", "cpu") == ("native", "auto on cpu")
    gen = generator(attention_backend="auto")
    assert gen.attention_backend == "native"
    assert any("attention backend native" in note for note in gen.notes)
    with pytest.raises(ConfigError, match="ATTENTION_BACKEND='nope'"):
        choose_attention_backend("nope", "cpu")
    if importlib.util.find_spec("flash_attn") is None:
        with pytest.raises(ConfigError, match="ATTENTION_BACKEND=flash cannot run here"):
            choose_attention_backend("flash", "cpu")


def test_fp8_names_the_setting_where_it_cannot_run(monkeypatch):
    transformer = torch.nn.Sequential(torch.nn.Linear(8, 8))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torchao" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="FP8=weight_only needs the torchao package"):
        quantize_fp8(transformer, "weight_only", "cpu")
    monkeypatch.undo()
    if real_find_spec("torchao") is not None:
        with pytest.raises(ConfigError, match="FP8=dynamic needs a CUDA GPU"):
            quantize_fp8(transformer, "dynamic", "cpu")


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is a GPU extra")
def test_fp8_weight_only_stays_close_to_bf16():
    req = requests(["a cup"])[0]
    outputs = []
    for fp8 in ("off", "weight_only"):
        gen = generator(dtype=torch.bfloat16, fp8=fp8)
        outputs.append(gen.fill(req.image, req.mask, req.prompt, req.seed).astype(float))
    psnr = 10 * np.log10(255**2 / max(((outputs[0] - outputs[1]) ** 2).mean(), 1e-9))
    assert 25 < psnr < 100


def test_sam_batch_size_setting_batches_the_encoder_and_bfloat16_stays_close():
    images = [studio_shot(size=96, shape=s, seed=i)[0] for i, s in enumerate(["mug", "ball", "bottle"])]
    one = get_segmenter(SegmentSettings(backend="tiny", refine_edges=False, batch_size=1))
    three = get_segmenter(SegmentSettings(backend="tiny", refine_edges=False, batch_size=3))
    bf16 = get_segmenter(SegmentSettings(backend="tiny", refine_edges=False, batch_size=3, dtype="bfloat16"))
    assert (one.embed_batch, three.embed_batch) == (1, 3)
    assert next(bf16.model.image_encoder.parameters()).dtype == torch.bfloat16
    assert next(three.model.image_encoder.parameters()).dtype == torch.float32  # its own registry entry
    calls = []
    encoder = three.model.image_encoder
    hook = encoder.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    try:
        batched = three.segment_batch(images, [None] * 3)
    finally:
        hook.remove()
    assert calls == [3]
    singles = one.segment_batch(images, [None] * 3)
    halves = bf16.segment_batch(images, [None] * 3)
    for a, b, c in zip(singles, batched, halves, strict=True):
        assert (a.alpha != b.alpha).mean() < 0.01
        assert (a.alpha != c.alpha).mean() < 0.1


def test_speed_settings_are_part_of_the_model_key(tmp_path: Path):
    from stages.background import get_background_generator

    plain = get_background_generator(GenerativeSettings(backend="tiny", tiny_model_dir=tmp_path / "m"), "cpu")
    cached = get_background_generator(GenerativeSettings(
        backend="tiny", tiny_model_dir=tmp_path / "m", speed=FluxSpeedSettings(lora_hotswap=True)), "cpu")
    assert plain.pipe is not cached.pipe and plain.key != cached.key
    assert cached.speed_state.hotswap and not plain.speed_state.hotswap


def test_render_backgrounds_batches_a_products_shots_like_one_at_a_time(tmp_path: Path):
    from packshot.schemas.presets import Preset
    from packshot.schemas.scenes import ScenePlan
    from stages.background import get_background_generator, render_background, render_backgrounds
    from tests.test_background import product, vase_cutout

    preset = Preset(name="test", width=96, height=80, fill_fraction=0.7)
    settings = GenerativeSettings(backend="tiny", steps=1, tiny_model_dir=tmp_path / "m",
                                  speed=FluxSpeedSettings(batch_size=3))
    gen = get_background_generator(settings, "cpu")
    item, cut = product(), vase_cutout()
    scenes = [None, ScenePlan(template="on oak, {title}", seed=11, index=0),
              ScenePlan(template="on slate", seed=12, index=1)]
    calls = []  # batch size of each transformer call (1 step: one call per pipeline call)
    hook = gen.pipe.transformer.register_forward_pre_hook(
        lambda _m, _a, kw: calls.append(kw["hidden_states"].shape[0]), with_kwargs=True)
    try:
        together = render_backgrounds(cut, item, None, preset, gen, scenes)
        assert calls == [3]
        for scene, image in zip(scenes, together, strict=True):
            alone = render_background(cut, item, None, preset, gen, scene=scene)
            assert (image.kind, image.scene, image.notes) == (alone.kind, alone.scene, alone.notes)
            assert max_diff(image.rgb, alone.rgb) <= 2
    finally:
        hook.remove()
    assert calls == [3, 1, 1, 1]
    assert together[1].notes != together[2].notes  # two scenes, two prompts and seeds
