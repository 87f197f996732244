"""Compile traps (issue 23), counted with dynamo's graph counter on the tiny FLUX Fill: compile implies the
LoRA hot-swap slot (brand switches never recompile), a short last batch is padded to the compiled size,
and the group-offload plan drops the fullgraph compile diffusers does not support there."""

from __future__ import annotations

import numpy as np

from packshot.config import FluxSpeedSettings
from stages.background.generators import speed_under_plan
from tests.test_speed_options import (  # noqa: F401 - the tiny generator
    generator,
    loras,  # noqa: F401 - fixture
    max_diff,
    requests,
)


def test_compile_without_hotswap_switches_brands_without_recompiling(loras):  # noqa: F811
    gen = generator(compile=True, compile_backend="eager")
    assert gen.settings.speed.lora_hotswap and any("LORA_HOTSWAP on" in n for n in gen.notes)
    req = requests(["a cup"])[0]
    gen.use_brand(loras["warm"])
    gen.fill(req.image, req.mask, req.prompt, req.seed)
    assert gen.speed_state.graphs_compiled > 0
    for name in ("cool", None, "warm", "cool"):
        gen.use_brand(loras[name] if name else None)
        gen.fill(req.image, req.mask, req.prompt, req.seed)
    assert gen.recompiles == 0


def test_a_short_last_batch_is_padded_to_the_compiled_size():
    gen = generator(compile=True, compile_backend="eager", batch_size=2)
    reqs = requests(["a cup", "a vase", "a lamp"])
    first = gen.fill_batch(reqs[:2])  # compiled for 2
    out = gen.fill_batch(reqs)  # 2 + 1: the 1 goes in padded to 2
    assert len(out) == 3 and gen.recompiles == 0
    assert max_diff(out[0], first[0]) <= 2 and max_diff(out[1], first[1]) <= 2
    alone = generator().fill_batch(reqs[2:])[0]  # eager, alone: the padded image is still its own
    assert max_diff(out[2], alone) <= 2
    assert gen.pipeline_calls == 3


def test_group_offload_drops_fullgraph_compile_and_fills():
    fast = FluxSpeedSettings(compile=True, lora_hotswap=True)
    assert speed_under_plan(fast, "group-offload").compile is False
    assert speed_under_plan(fast, "full").compile is True
    from packshot.placement import apply_memory_plan

    gen = generator(**speed_under_plan(fast, "group-offload").model_dump())
    apply_memory_plan(gen.pipe, "group-offload", "cpu")
    req = requests(["a cup"])[0]
    image = gen.fill(req.image, req.mask, req.prompt, req.seed)
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()


def test_the_fp8_plan_compiles_by_default_where_fp8_kernels_run():
    eager = FluxSpeedSettings()
    h100 = speed_under_plan(eager, "fp8", capability=(9, 0))
    assert h100.compile and h100.lora_hotswap  # compiled, with the slot: brand switches do not recompile
    assert speed_under_plan(eager, "fp8", capability=(8, 9)).compile  # L4, RTX 4090
    assert not speed_under_plan(eager, "fp8", capability=(8, 0)).compile  # A100: FP8 storage only
    assert not speed_under_plan(eager, "fp8").compile  # not a CUDA device
    assert not speed_under_plan(eager, "full", capability=(9, 0)).compile  # bf16: left as configured
