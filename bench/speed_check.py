"""``flux_throughput.py --tiny --check-options``: every speed option once on the tiny models (CPU).

Each check runs the option and compares it with what it promises (the eager, unbatched, uncached
output of the same seed); the last line is ``options ok: <names>`` or ``option failed: <name>: ...``.
Random tiny weights: a plumbing and equivalence check, not a speed or quality figure.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import torch

from packshot.config import FluxSpeedSettings, GenerativeSettings
from packshot.errors import ConfigError
from packshot.schemas.brand import BrandStyle
from stages.background.generators import FillRequest, FluxFillGenerator
from stages.background.tiny import build_tiny_fill_pipeline, save_tiny_lora
from stages.segment.settings import SegmentSettings

SIZE, TOLERANCE = 64, 2  # uint8 levels: rounding differences between kernels and batch shapes


def tiny_generator(dtype=torch.float32, **speed) -> FluxFillGenerator:
    pipe = build_tiny_fill_pipeline().to(dtype)
    pipe.set_progress_bar_config(disable=True)
    settings = GenerativeSettings(backend="tiny", steps=2, speed=FluxSpeedSettings(**speed))
    return FluxFillGenerator(pipe, name="tiny", key=f"check:{speed}", model_identity="tiny:check",
                             licence="test", settings=settings, long_side=SIZE, steps=2,
                             max_sequence_length=32, device="cpu")


def sample_requests(n: int) -> list[FillRequest]:
    rng = np.random.default_rng(3)
    mask = np.ones((SIZE, SIZE), bool)
    mask[18:46, 22:42] = False
    prompts = ["a red cup on oak", "a blue vase on slate", "a red cup on oak", "a lamp by a window"]
    return [FillRequest(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), mask, prompts[i % 4], i)
            for i in range(n)]


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(float) - b.astype(float)) ** 2).mean())
    return round(float(10 * np.log10(255**2 / mse)), 1) if mse else float("inf")


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def run_checks(work: Path, compile_backend: str) -> tuple[list[str], dict]:
    """Run every check; returns (names that passed, figures). Raises on the first failure with its name."""
    figures: dict = {}
    passed: list[str] = []
    reqs = sample_requests(4)
    eager = tiny_generator()
    alone = [eager.fill(r.image, r.mask, r.prompt, r.seed) for r in reqs]

    def check(name: str, fn) -> None:
        t = time.perf_counter()
        try:
            detail = fn()
        except Exception as exc:
            raise RuntimeError(f"{name}: {type(exc).__name__}: {exc}") from exc
        figures[name] = {"seconds": round(time.perf_counter() - t, 2), **(detail or {})}
        passed.append(name)
        print(f"  {name}: ok {figures[name]}", flush=True)

    def prompt_cache():
        with torch.no_grad():  # as inside the pipeline call
            fresh, pooled, _ = eager.pipe.encode_prompt(prompt=reqs[0].prompt, prompt_2=None, device="cpu",
                                                        max_sequence_length=32)
        cached = eager.prompts.get(reqs[0].prompt, 32)
        expect(torch.equal(cached.prompt_embeds, fresh) and torch.equal(cached.pooled, pooled),
               "cached embedding differs from a fresh one")
        expect(eager.prompts.encoded == 3, f"4 fills of 3 distinct prompts encoded {eager.prompts.encoded}x")
        return {"text_encoder_calls_for_4_fills": eager.prompts.encoded}

    def batch():
        batched = tiny_generator(batch_size=4).fill_batch(reqs)
        worst = max(diff(a, b) for a, b in zip(alone, batched, strict=True))
        expect(worst <= TOLERANCE, f"batched image differs from alone by {worst} levels")
        return {"max_diff_levels": worst}

    def attention_auto():
        gen = tiny_generator(attention_backend="auto")
        out = gen.fill(reqs[0].image, reqs[0].mask, reqs[0].prompt, reqs[0].seed)
        expect(diff(out, alone[0]) <= TOLERANCE, "auto attention changed the image")
        return {"backend": gen.attention_backend}

    def text_encoders_cpu():
        gen = tiny_generator(text_encoder_device="cpu")
        out = gen.fill(reqs[0].image, reqs[0].mask, reqs[0].prompt, reqs[0].seed)
        gen.free_text_encoders()
        again = gen.fill(reqs[0].image, reqs[0].mask, reqs[0].prompt, reqs[0].seed)
        expect(diff(out, alone[0]) == 0 and diff(again, out) == 0, "text encoders on CPU / freed changed it")
        return {"freed_then_cached": True}

    loras = {name: BrandStyle(name=name, scene_prompts=["x"], lora={"source": str(
        save_tiny_lora(work / name, targets, rank=rank, seed=seed)), "scale": 0.8})
        for name, targets, rank, seed in (("warm", ["to_q", "to_k", "to_v", "proj_out"], 4, 1),
                                          ("cool", ["to_q", "to_v", "proj_mlp"], 8, 2))}
    lora_eager = {}
    for name in ("warm", "cool"):
        eager.use_brand(loras[name])
        lora_eager[name] = eager.fill(reqs[0].image, reqs[0].mask, reqs[0].prompt, reqs[0].seed)
    eager.use_brand(None)

    def compile_blocks():
        gen = tiny_generator(compile=True, compile_backend=compile_backend)
        out = gen.fill(reqs[0].image, reqs[0].mask, reqs[0].prompt, reqs[0].seed)
        expect(diff(out, alone[0]) <= TOLERANCE, f"compiled output differs by {diff(out, alone[0])}")
        expect(gen.speed_state.graphs_compiled > 0, "nothing was compiled")
        return {"graphs": gen.speed_state.graphs_compiled, "backend": compile_backend}

    def lora_hotswap_compiled():
        gen = tiny_generator(compile=True, compile_backend=compile_backend, lora_hotswap=True,
                             lora_max_rank=16)
        worst = 0
        for name in ("warm", "cool", "warm", None, "cool"):
            gen.use_brand(loras[name] if name else None)
            out = gen.fill(reqs[0].image, reqs[0].mask, reqs[0].prompt, reqs[0].seed)
            worst = max(worst, diff(out, lora_eager[name] if name else alone[0]))
        expect(worst <= TOLERANCE, f"hot-swapped LoRA differs from eager by {worst} levels")
        expect(gen.recompiles == 0, f"{gen.recompiles} recompiles after brand switches")
        return {"max_diff_levels": worst, "recompiles": gen.recompiles,
                "graphs": gen.speed_state.graphs_compiled}

    check("prompt-cache", prompt_cache)
    check("batch", batch)
    check("attention-auto", attention_auto)
    check("text-encoders-cpu-and-freed", text_encoders_cpu)
    check("compile", compile_blocks)
    check("lora-hotswap+compile", lora_hotswap_compiled)
    check_fp8(check, reqs)
    check_sam(check)
    return passed, figures


def check_fp8(check, reqs) -> None:
    if importlib.util.find_spec("torchao") is None:
        def missing():
            try:
                tiny_generator(fp8="weight_only")
            except ConfigError as exc:
                expect("FP8" in str(exc) and "torchao" in str(exc), f"unclear error: {exc}")
                return {"torchao": "not installed: the option refuses with the setting's name"}
            raise AssertionError("FP8 without torchao did not raise")

        check("fp8-refused-without-torchao", missing)
        return

    def weight_only():
        base = tiny_generator(dtype=torch.bfloat16).fill(reqs[0].image, reqs[0].mask, reqs[0].prompt, 0)
        fp8 = tiny_generator(dtype=torch.bfloat16, fp8="weight_only").fill(
            reqs[0].image, reqs[0].mask, reqs[0].prompt, 0)
        return {"psnr_db_vs_bf16": psnr(base, fp8),
                "note": "tiny random weights; not the real model's figure"}

    def dynamic_on_cpu():
        try:
            tiny_generator(dtype=torch.bfloat16, fp8="dynamic")
        except ConfigError as exc:
            expect("FP8=dynamic" in str(exc), f"unclear error: {exc}")
            return {"refused": "FP8 dynamic needs CUDA compute capability 8.9+"}
        raise AssertionError("FP8 dynamic ran on the CPU")

    check("fp8-weight-only", weight_only)
    check("fp8-dynamic-refused-on-cpu", dynamic_on_cpu)


def check_sam(check) -> None:
    from stages.segment import get_segmenter
    from stages.segment.sam import embed_images

    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (96, 80 + 8 * i, 3), dtype=np.uint8) for i in range(3)]

    def sam_batch():
        seg = get_segmenter(SegmentSettings(backend="tiny", refine_edges=False, batch_size=3))
        together, _ = embed_images(seg.model, seg.predictor.transform, images)
        alone = torch.cat([embed_images(seg.model, seg.predictor.transform, [im])[0] for im in images])
        err = float((together - alone).abs().max())
        expect(err < 1e-3, f"batched SAM embeddings differ by {err}")
        expect(len(seg.segment_batch(images, [None] * 3)) == 3, "segment_batch lost images")
        return {"max_abs_diff": err}

    def sam_bf16():
        fp32 = get_segmenter(SegmentSettings(backend="tiny", refine_edges=False))
        bf16 = get_segmenter(SegmentSettings(backend="tiny", refine_edges=False, dtype="bfloat16"))
        a, _ = embed_images(fp32.model, fp32.predictor.transform, images[:1])
        b, _ = embed_images(bf16.model, bf16.predictor.transform, images[:1])
        rel = float((a - b).norm() / a.norm())
        expect(rel < 0.05, f"bf16 SAM embedding is {rel:.3f} off in relative L2")
        return {"relative_l2_vs_fp32": round(rel, 4)}

    check("sam-batch", sam_batch)
    check("sam-bf16", sam_bf16)
