"""Loading straight into the memory plan's precision (issue 23, item 7), on the tiny FLUX Fill saved to disk:
the ``fp8`` plan's transformer is FP8 before anything else loads (torchao quantises each weight as it is
read where torchao is installed), every plan still renders, group offload pins weights as it streams them,
and ``packshot plan``'s host-memory arithmetic follows. Item 8: the ``fp8`` plan compiles by default where
the card's own capability probe says FP8 kernels run.

Peak host memory of a larger model is measured by ``bench/load_memory.py`` (docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from packshot.config import FluxSpeedSettings, GenerativeSettings
from packshot.memory import FOOTPRINTS, GIB
from stages.background.generators import FluxFillGenerator, load_fill_pipeline
from stages.background.tiny import ensure_tiny_fill_model
from tests.test_speed_options import loras, max_diff, requests  # noqa: F401 - fixture

TORCHAO = importlib.util.find_spec("torchao") is not None


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return ensure_tiny_fill_model(tmp_path_factory.mktemp("tiny-flux") / "fill")


def linear_weights(model) -> dict[str, float]:
    """How the model's linear weights are stored, as shares of their elements: ``fp8`` (a torchao FP8 tensor
    or float8 storage) or the dtype's name."""
    counts: dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            weight = module.weight
            quantised = type(weight).__name__ == "Float8Tensor" or weight.dtype == torch.float8_e4m3fn
            kind = "fp8" if quantised else str(weight.dtype)
            counts[kind] = counts.get(kind, 0) + weight.numel()
    total = sum(counts.values())
    return {kind: n / total for kind, n in counts.items()}


def mostly_fp8(kinds: dict[str, float] | None) -> bool:
    """torchao quantises every linear layer; layerwise casting (the fallback without torchao) keeps the layers
    diffusers skips (the norms' modulation linears, the output projection) in full precision: 22% of the
    tiny model's linear weights."""
    return kinds is not None and kinds.get("fp8", 0) >= 0.7


def spy_loads(monkeypatch) -> list[tuple[str, dict[str, float] | None]]:
    """Record, in order, what each component's real ``from_pretrained`` returned (the transformer's linear
    weights) and, when a text encoder starts loading, how the transformer loaded so far is stored."""
    from diffusers import FluxTransformer2DModel
    from transformers import CLIPTextModel, T5EncoderModel

    events: list[tuple[str, dict[str, float] | None]] = []
    loaded: dict = {}
    real = FluxTransformer2DModel.from_pretrained.__func__

    def transformer(cls, *args, **kwargs):
        model = real(cls, *args, **kwargs)
        loaded["transformer"] = model
        events.append(("transformer returned", linear_weights(model)))
        return model

    monkeypatch.setattr(FluxTransformer2DModel, "from_pretrained", classmethod(transformer))
    for encoder in (CLIPTextModel, T5EncoderModel):
        def text(cls, *args, _real=encoder.from_pretrained.__func__, **kwargs):
            events.append((f"{cls.__name__} starts", linear_weights(loaded["transformer"])
                           if "transformer" in loaded else None))
            return _real(cls, *args, **kwargs)

        monkeypatch.setattr(encoder, "from_pretrained", classmethod(text))
    return events


def test_the_fp8_plan_holds_the_transformer_in_fp8_before_the_text_encoders_load(tiny_dir, monkeypatch):
    events = spy_loads(monkeypatch)
    pipe = load_fill_pipeline(str(tiny_dir), revision=None, device="cpu", local=True, plan="fp8")
    names = [name for name, _ in events]
    assert names[0] == "transformer returned", names  # read first, on its own
    starts = [kinds for name, kinds in events if name.endswith("starts")]
    assert len(starts) == 2 and all(mostly_fp8(kinds) for kinds in starts), events
    if TORCHAO:  # quantised as it was read: from_pretrained never returned a full-precision transformer
        assert events[0][1] == {"fp8": 1.0}
        assert type(pipe.transformer.x_embedder.weight).__name__ == "Float8Tensor"
    assert mostly_fp8(linear_weights(pipe.transformer))
    assert linear_weights(pipe.text_encoder_2) == {"torch.float32": 1.0}  # T5 keeps its precision (streamed)


def test_every_plan_loaded_from_disk_renders_like_the_full_plan(tiny_dir):
    req = requests(["a cup"])[0]
    images = {}
    for plan in ("full", "text-offload", "fp8", "group-offload"):
        pipe = load_fill_pipeline(str(tiny_dir), revision=None, device="cpu", local=True, plan=plan)
        gen = FluxFillGenerator(pipe, name="tiny", key=f"load:{plan}", model_identity="tiny:test",
                                licence="test", settings=GenerativeSettings(backend="tiny", steps=2),
                                long_side=64, steps=2, max_sequence_length=32, device="cpu")
        images[plan] = gen.fill(req.image, req.mask, req.prompt, req.seed)
    assert max_diff(images["full"], images["text-offload"]) == 0
    assert max_diff(images["full"], images["group-offload"]) == 0
    # FP8 weights change the pixels a little, not the picture
    assert 0 < np.abs(images["full"].astype(int) - images["fp8"].astype(int)).mean() < 3


def test_group_offload_pins_each_group_as_it_streams_not_a_copy_of_the_model(tiny_dir):
    from diffusers.hooks import HookRegistry

    pipe = load_fill_pipeline(str(tiny_dir), revision=None, device="cpu", local=True, plan="group-offload")
    groups = []
    tops = (pipe.transformer, pipe.text_encoder_2)
    for module in [*tops[0].modules(), *tops[1].modules()]:
        registry = getattr(module, "_diffusers_hook", None)
        hook = registry.get_hook("group_offloading") if isinstance(registry, HookRegistry) else None
        if hook is not None and module not in tops:  # diffusers never pins the top module's leftover group
            groups.append(hook.group)
    # every block (transformer) and layer (T5) group: pinned when streamed to the card, not copied up front
    assert len(groups) > 4 and all(group.low_cpu_mem_usage for group in groups)


def test_loading_needs_about_the_text_encoders_in_host_memory_not_the_whole_model(monkeypatch):
    from orchestrator.plans import describe, plan_run
    from orchestrator.settings import Settings
    from packshot import memory

    flux = FOOTPRINTS["flux-fill"]
    text_and_rest = flux.text + flux.rest
    assert flux.load_host_bytes("fp8") == flux.load_host_bytes("full") == text_and_rest  # 9.3 GiB
    assert flux.load_host_bytes("fp8", quantise_at_load=False) == flux.denoiser  # cast in host, then moved
    assert flux.load_host_bytes("group-offload") == flux.denoiser + text_and_rest  # the plan keeps it there
    monkeypatch.setattr(memory, "host_total_bytes", lambda: 24 * GIB)  # a 24 GB card in a 24 GiB machine
    settings = Settings(segment={"backend": "sam", "sam_checkpoint": "/m/sam.pth"},
                        generative={"backend": "flux", "flux_model": "/m/flux-fill"})
    card24 = plan_run(settings, ["segment", "background"], "cuda", free_bytes=int(23.4 * GIB))
    assert card24.image.plan == "fp8" and not any("host memory" in n for n in card24.notes), card24.notes
    assert card24.image.load_host_bytes < 23 * GIB and "loading: about" in describe(card24)
    card12 = plan_run(settings, ["segment", "background"], "cuda", free_bytes=int(12 * GIB))
    assert card12.image.plan == "group-offload"
    assert any("needs about 31.4 GiB of host memory" in n for n in card12.notes), card12.notes


def test_the_fp8_plan_compiles_where_the_cards_capability_probe_says_fp8_kernels_run(
        tiny_dir, loras, monkeypatch):  # noqa: F811
    from importlib.machinery import ModuleSpec

    from stages.background.generators import plan_speed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cards = {"cuda:0": (9, 0), "cuda:1": (8, 9), "cuda:2": (8, 6)}  # H100, L4 / RTX 4090, A10 / RTX 3090
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda device=None: cards[str(device)])
    real_find_spec = importlib.util.find_spec
    for installed in (True, False):  # the GPU image has torchao; without it no FP8 kernel runs anywhere
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, _on=installed: (
            (ModuleSpec(name, None) if _on else None) if name == "torchao" else real_find_spec(name, *a)))
        eager = FluxSpeedSettings()
        h100, l4 = plan_speed(eager, "fp8", "cuda:0"), plan_speed(eager, "fp8", "cuda:1")
        assert h100.compile is l4.compile is installed
        assert h100.lora_hotswap is installed  # compiled with the slot: brand switches do not recompile
        assert not plan_speed(eager, "fp8", "cuda:2").compile  # FP8 weights, bf16 matmuls: nothing to gain
        assert not plan_speed(eager, "full", "cuda:0").compile  # bf16 plans keep what is configured
    monkeypatch.undo()
    # The fast path on the tiny model: FP8 at load, compiled with the hot-swap slot; brand switches do
    # not recompile (dynamo's eager backend on CPU: the same graphs without code generation). Without
    # torchao (FP8 storage by layerwise casting, never compiled by default) brand LoRAs run eagerly: peft
    # used to give their layers the float8 storage dtype, and every brand failed there.
    fast = plan_speed(eager, "fp8", "cpu")
    if TORCHAO:
        fast = fast.model_copy(update={"compile": True, "compile_backend": "eager"})
    pipe = load_fill_pipeline(str(tiny_dir), revision=None, device="cpu", local=True, plan="fp8")
    gen = FluxFillGenerator(pipe, name="tiny", key="load:fp8-fast", model_identity="tiny:test",
                            licence="test", settings=GenerativeSettings(backend="tiny", steps=1, speed=fast),
                            long_side=64, steps=1, max_sequence_length=32, device="cpu")
    assert gen.speed_state.compiled is gen.speed_state.hotswap is TORCHAO
    req = requests(["a cup"])[0]
    images = []
    for brand in ("warm", "cool", None, "warm"):
        gen.use_brand(loras[brand] if brand else None)
        images.append(gen.fill(req.image, req.mask, req.prompt, req.seed))
    assert gen.recompiles == 0
    assert max_diff(images[0], images[3]) <= 2 and max_diff(images[0], images[1]) > 2  # brands differ
