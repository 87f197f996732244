"""GPU sections of ``flux_throughput.py`` (issue 14): full-size FLUX.1 Fill with random bf16 weights
built on the card (no network, no weights), 1 warm-up + N timed runs per arm, CUDA-event splits
(text encoding / denoising / VAE decode), peak memory reset per arm, JSON saved after every arm.

Arms, in order of importance (later ones are skipped when the time budget runs out):
1. ``diffusers_plain``: bf16, eager, default attention, the pipeline encoding the prompt each call;
2. SAM ViT-H image-encoder images/s at batch 1 and 8 (bf16);
3. our stage, a brand LoRA active and brands switched A-B-A between runs, options added in turn:
   ``stage_defaults`` (prompt cache), ``+attention_auto``, ``+compile_hotswap``, ``+fp8`` (all
   options at batch 1; its image is compared with ``+compile_hotswap``'s: same seeded random
   weights, LoRA, prompt and seed, so the PSNR is FP8's error alone);
4. ``plan_24gb``: :func:`stages.background.memory_plan.apply_memory_plan` with the process capped
   at 23.5 GiB (``torch.cuda.set_per_process_memory_fraction``);
5. ``+batch4_all``: all options, 4 images per pipeline call.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from packshot.config import FluxSpeedSettings, GenerativeSettings
from packshot.schemas.brand import BrandStyle
from stages.background.generators import FillRequest, FluxFillGenerator

CUDA = torch.cuda.is_available()
PRICE_PER_GPU_HOUR = 2.5
PROMPTS = {"A": "glass bottle on a marble kitchen counter, soft morning light, high detail",
           "B": "glass bottle on weathered oak, warm evening light, shallow depth of field"}


class _CpuEvent:
    """``torch.cuda.Event`` stand-in for the CPU dry run (``--tiny --gpu-arms``)."""

    def record(self):
        self.t = time.perf_counter()

    def elapsed_time(self, other) -> float:
        return (other.t - self.t) * 1000


def event():
    return torch.cuda.Event(enable_timing=True) if CUDA else _CpuEvent()


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def peak_gib(kind: str) -> float | None:
    if not CUDA:
        return None
    value = torch.cuda.max_memory_allocated() if kind == "allocated" else torch.cuda.max_memory_reserved()
    return round(value / 1024**3, 2)


def reset_peak() -> None:
    if CUDA:
        torch.cuda.reset_peak_memory_stats()


class Splits:
    """CUDA events around text encoding, every transformer call and VAE decode of one pipe."""

    def __init__(self, pipe):
        self.events: dict[str, list] = {"text_encoding": [], "denoising": [], "vae_decode": []}
        self._wrap(pipe, "encode_prompt", "text_encoding")
        self._wrap(pipe.vae, "decode", "vae_decode")
        pipe.transformer.register_forward_pre_hook(lambda *_: self._start("denoising"))
        pipe.transformer.register_forward_hook(lambda *_: self._stop("denoising"))

    def _wrap(self, owner, method: str, name: str) -> None:
        original = getattr(owner, method)

        def timed(*args, **kwargs):
            self._start(name)
            try:
                return original(*args, **kwargs)
            finally:
                self._stop(name)

        object.__setattr__(owner, method, timed)

    def _start(self, name):
        start = event()
        start.record()
        self.events[name].append([start, None])

    def _stop(self, name):
        stop = event()
        stop.record()
        self.events[name][-1][1] = stop

    def reset(self):
        for v in self.events.values():
            v.clear()

    def seconds(self) -> dict[str, float]:
        sync()
        return {k: round(sum(a.elapsed_time(b) for a, b in v if b is not None) / 1000, 4)
                for k, v in self.events.items()}


def random_lora(pipe, path: Path, seed: int, rank: int = 16) -> Path:
    """A random rank-``rank`` LoRA on the attention projections of the full transformer (safetensors)."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, module in pipe.transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v"):
            state[f"transformer.{name}.lora_A.weight"] = (torch.randn(rank, module.in_features, generator=g)
                                                          * 0.01).to(torch.bfloat16)
            state[f"transformer.{name}.lora_B.weight"] = (torch.randn(module.out_features, rank, generator=g)
                                                          * 0.01).to(torch.bfloat16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


class GpuBench:
    def __init__(self, out: Path, budget_s: float, runs: int, size: int, steps: int, command: str,
                 device: str = "cuda"):
        self.out, self.runs, self.size, self.steps, self.device = out, runs, size, steps, device
        self.deadline = time.monotonic() + budget_s
        self.results: dict = {
            "device": torch.cuda.get_device_name() if CUDA else "cpu (dry run of the GPU arms)",
            "command": command, "torch": torch.__version__,
            "model": "full-size FLUX.1 Fill architecture, random bf16 weights built on the GPU",
            "size": size, "steps": steps, "timed_runs": runs, "warmup_runs": 1,
            "price_per_gpu_hour_usd": PRICE_PER_GPU_HOUR, "arms": {}, "skipped": {}, "errors": {},
        }
        self.lora_dir = Path(f"/tmp/packshot-bench-loras-{os.getpid()}")
        self.images: dict[str, np.ndarray] = {}  # brand A's image per arm, for the FP8-vs-bf16 PSNR

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=2) + "\n")
        tmp.replace(self.out)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def need(self, images: int, fixed_s: float) -> float:
        """Seconds an arm of ``images`` generations is expected to take: from the plain arm's
        seconds per image once measured (10 s before), plus ``fixed_s`` for building and compiling."""
        plain = self.results["arms"].get("diffusers_plain", {}).get("seconds_per_image") or 10.0
        return images * plain + fixed_s

    def section(self, name: str, need_s: float, fn) -> None:
        if self.left() < need_s:
            left = self.left()
            self.results["skipped"][name] = f"time budget: {left:.0f} s left, about {need_s:.0f} s needed"
        else:
            print(f"== {name} ({self.left():.0f} s left)", flush=True)
            try:
                fn()
            except Exception as exc:  # keep the other arms' data
                self.results["errors"][name] = f"{type(exc).__name__}: {str(exc)[:600]}"
                print(f"   failed: {self.results['errors'][name]}", flush=True)
        free_cuda()
        self.save()

    def record(self, name: str, pipe, splits: Splits, calls, images_per_call: int = 1, extra=None) -> None:
        """1 warm-up + ``runs`` timed calls (``calls(i)`` runs call i, -1 the warm-up); seconds per
        image, memory, and ``extra()`` read after the runs (compile counts)."""
        sync()
        reset_peak()
        warm_t = time.perf_counter()
        calls(-1)
        sync()
        warmup_s = time.perf_counter() - warm_t
        totals, parts = [], []
        for i in range(self.runs):
            splits.reset()
            start, end = event(), event()
            start.record()
            calls(i)
            end.record()
            sync()
            totals.append(start.elapsed_time(end) / 1000)
            parts.append(splits.seconds())
        per_image = float(np.median(totals)) / images_per_call
        arm = {
            "seconds_per_image": round(per_image, 3),
            "images_per_gpu_hour": round(3600 / per_image),
            "usd_per_image": round(PRICE_PER_GPU_HOUR / 3600 * per_image, 5),
            "seconds_per_call_runs": [round(t, 3) for t in totals],
            "images_per_call": images_per_call,
            "split_seconds_median_per_call": {k: round(float(np.median([p[k] for p in parts])), 4)
                                              for k in parts[0]},
            "warmup_s": round(warmup_s, 1),
            "peak_allocated_gib": peak_gib("allocated"),
            "peak_reserved_gib": peak_gib("reserved"),
            **(extra() if extra else {}),
        }
        self.results["arms"][name] = arm
        peak = arm["peak_allocated_gib"]
        print(f"   {name}: {arm['seconds_per_image']} s/image, peak {peak} GiB", flush=True)

    def request(self, brand: str) -> FillRequest:
        rng = np.random.default_rng(0)
        mask = np.ones((self.size, self.size), bool)
        mask[self.size // 4 : 3 * self.size // 4, self.size // 3 : 2 * self.size // 3] = False
        return FillRequest(rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8), mask,
                           PROMPTS[brand], 1234)

    def plain(self, build) -> None:
        from PIL import Image

        pipe = build()
        splits = Splits(pipe)
        req = self.request("A")

        def call(_i):
            pipe(prompt=req.prompt, image=Image.fromarray(req.image), height=self.size, width=self.size,
                 mask_image=Image.fromarray(req.mask.astype(np.uint8) * 255),
                 num_inference_steps=self.steps,
                 guidance_scale=30.0, generator=torch.Generator("cpu").manual_seed(req.seed),
                 max_sequence_length=512, output_type="np")

        self.record("diffusers_plain", pipe, splits, call)

    def stage(self, build, name: str, speed: FluxSpeedSettings, batch: int = 1,
              plan: str | None = None, keep_image: bool = False, compare_with: str = "") -> None:
        from stages.background.memory_plan import apply_memory_plan

        pipe = build()
        brands = {b: BrandStyle(name=f"brand-{b.lower()}", scene_prompts=["x"], lora={
            "source": str(self.lora_file(pipe, b, seed=i)), "scale": 1.0}) for i, b in enumerate("AB")}
        notes: list[str] = []
        if plan is not None:
            speed, notes = apply_memory_plan(pipe, plan, self.device)
        splits = Splits(pipe)
        settings = GenerativeSettings(backend="flux", steps=self.steps, speed=speed.model_copy(
            update={"batch_size": batch}))
        gen = FluxFillGenerator(pipe, name="flux", key=f"bench:{name}", model_identity="bench:random",
                                licence="random weights", settings=settings, long_side=self.size,
                                steps=self.steps, max_sequence_length=512, device=self.device)
        if plan is not None:  # steady state after loading: the load path itself is issue 13's
            free_cuda()
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, 23.5 * 1024**3 / total))
        order = ["A", "B", "A", "B"]

        def call(i):
            brand = order[(i + 1) % len(order)]  # warm-up A, then B, A, B: every timed run switches
            if i < 0:  # load B's LoRA and encode its prompt once, so timed runs measure switches only
                gen.use_brand(brands["B"])
                gen.prompts.get(PROMPTS["B"], 512)
            gen.use_brand(brands[brand])
            gen.fill_batch([self.request(brand)] * batch)

        try:
            self.record(name, pipe, splits, call, images_per_call=batch, extra=lambda: {
                "attention_backend": gen.attention_backend, "recompiles_after_warmup": gen.recompiles,
                "graphs_compiled": gen.speed_state.graphs_compiled, "notes": [*notes, *gen.notes],
                "lora": "random rank-16 LoRA on to_q/to_k/to_v, brands A and B switched every run",
                "memory_cap_gib": 23.5 if plan else None})
            if keep_image:  # same weights (seeded build), LoRA, prompt and seed in every arm
                gen.use_brand(brands["A"])
                self.images[name] = gen.fill_batch([self.request("A")])[0]
            if compare_with in self.images and name in self.images:
                a, b = self.images[compare_with].astype(float), self.images[name].astype(float)
                mse = float(((a - b) ** 2).mean())
                self.results["arms"][name][f"psnr_db_vs_{compare_with}"] = (
                    round(10 * float(np.log10(255**2 / mse)), 2) if mse else None)
                self.results["arms"][name]["psnr_note"] = "random weights: kernel error, not image quality"
        finally:
            if plan is not None:
                torch.cuda.set_per_process_memory_fraction(1.0)

    def lora_file(self, pipe, brand: str, seed: int) -> Path:
        """Made once from the un-adapted transformer (a LoRA slot wraps its linear layers later)."""
        path = self.lora_dir / f"{brand}.safetensors"
        return path if path.is_file() else random_lora(pipe, path, seed)

    def sam(self) -> None:
        from stages.segment._torchvision_compat import import_segment_anything
        from stages.segment.sam import embed_images

        sa = import_segment_anything()
        from segment_anything.utils.transforms import ResizeLongestSide

        if CUDA:
            model = sa.sam_model_registry["vit_h"](checkpoint=None).to(self.device).eval()
        else:  # dry run: the tiny SAM, 256 px
            from stages.segment.sam import build_tiny_sam

            model = build_tiny_sam()
        model.image_encoder.to(torch.bfloat16)
        transform = ResizeLongestSide(model.image_encoder.img_size)
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
        arm: dict = {"model": "SAM ViT-H, random weights, image encoder bf16 (prompts on the embedding)"}
        reset_peak()
        for batch in (1, 8):
            images = [image] * batch
            embed_images(model, transform, images)  # warm-up
            sync()
            start, end = event(), event()
            start.record()
            for _ in range(self.runs):
                embed_images(model, transform, images)
            end.record()
            sync()
            arm[f"images_per_s_batch{batch}"] = round(batch * self.runs / (start.elapsed_time(end) / 1000), 1)
        arm["peak_allocated_gib"] = peak_gib("allocated")
        self.results["arms"]["sam_vit_h"] = arm
        print(f"   sam: {arm}", flush=True)


def free_cuda() -> None:
    torch._dynamo.reset()  # compiled graphs keep the previous arm's modules alive
    gc.collect()
    if CUDA:
        torch.cuda.empty_cache()


def run_gpu(args, build, device: str = "cuda") -> dict:
    """All arms; ``device="cpu"`` with the tiny ``build`` is the dry run that checks this script."""
    out = args.out or Path(os.environ.get("OUT", "bench/results")) / "flux_throughput.json"
    tiny = device == "cpu"
    bench = GpuBench(out, args.budget_s, args.runs or (1 if tiny else 3), args.size or (64 if tiny else 1024),
                     args.steps or (2 if tiny else 28), command=" ".join(["python", *sys.argv]),
                     device=device)
    bench.save()
    eager = FluxSpeedSettings()
    auto = eager.model_copy(update={"attention_backend": "auto"})
    fast = auto.model_copy(update={"compile": True, "lora_hotswap": True, "lora_max_rank": 16})
    fp8 = fast.model_copy(update={"fp8": "dynamic" if CUDA else "weight_only"})  # CPU dry run: weight-only
    runs = 1 + bench.runs
    bench.section("diffusers_plain", bench.need(runs, 30), lambda: bench.plain(build))
    bench.section("sam_vit_h", 40, bench.sam)
    bench.section("stage_defaults", bench.need(runs, 30), lambda: bench.stage(build, "stage_defaults", eager))
    bench.section("+attention_auto", bench.need(runs, 30),
                  lambda: bench.stage(build, "+attention_auto", auto))
    bench.section("+compile_hotswap", bench.need(runs + 1, 120),
                  lambda: bench.stage(build, "+compile_hotswap", fast, keep_image=True))
    bench.section("+fp8", bench.need(runs + 1, 130), lambda: bench.stage(build, "+fp8", fp8, keep_image=True,
                                                                       compare_with="+compile_hotswap"))
    bench.section("plan_24gb", bench.need(runs, 60),
                  lambda: bench.stage(build, "plan_24gb", eager, plan="24gb"))
    bench.section("+batch4_all", bench.need(4 * runs, 130),
                  lambda: bench.stage(build, "+batch4_all", fp8, batch=4))
    print(f"results: {out}")
    return bench.results
