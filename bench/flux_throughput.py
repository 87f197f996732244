"""FLUX Fill throughput: diffusers as a user writes it against our stage and its speed options.

On a GPU (no weights, no network: the full-size FLUX.1 Fill architecture is built with random
bf16 weights directly on the device; the machine needs the wheels from bench/fetch_gpu_wheels.sh):

    python bench/flux_throughput.py --out $OUT/flux_throughput.json

runs the one-shot benchmark of bench/flux_gpu.py (a tiny preflight of every arm, then calibration,
LoRA costs, compile without LoRA, the 24 GiB cap with the fp8 plan eager and compiled with brand LoRAs,
batch 4, SAM and 20 products end to end) within --budget-s seconds (default 480: it ends within 8
minutes; the dry run prints the H100 plan against it), saving the JSON after every arm. On CPU, with
the tiny model:

    python bench/flux_throughput.py --dry-run               # every arm of the GPU run, tiny, with its budget

    python bench/flux_throughput.py --tiny                  # plain vs stage, plumbing only
    python bench/flux_throughput.py --tiny --check-options  # every speed option vs its promise
    python bench/flux_throughput.py --tiny --gpu-arms --out /tmp/arms.json  # the GPU script, on CPU

The last line of --check-options is ``options ok: <names>`` or ``option failed: <name>: <why>``.
Random weights give noise images, which does not change the work done per step.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packshot.config import GenerativeSettings  # noqa: E402
from packshot.schemas.presets import Preset  # noqa: E402
from packshot.types import Cutout, Product  # noqa: E402
from stages.background import FluxFillGenerator, render_background  # noqa: E402


def full_size_pipeline(device: str):
    """FLUX.1 Fill [dev] architecture (11.9B transformer, T5-XXL, CLIP-L, VAE), random bf16 weights."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from stages.background.tiny import _build_tokenizers

    clip_tok, t5_tok = _build_tokenizers()  # small local vocabularies: token ids fit the real embeddings
    torch.manual_seed(0)  # the same random weights in every arm, so arms' images can be compared
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=384,
            out_channels=64,
            num_layers=19,
            num_single_layers=38,
            attention_head_dim=128,
            num_attention_heads=24,
            joint_attention_dim=4096,
            pooled_projection_dim=768,
            guidance_embeds=True,
            axes_dims_rope=(16, 56, 56),
        )
        text_encoder_2 = T5EncoderModel(
            T5Config(
                vocab_size=32128,
                d_model=4096,
                d_kv=64,
                d_ff=10240,
                num_layers=24,
                num_heads=64,
                feed_forward_proj="gated-gelu",
                relative_attention_num_buckets=32,
            )
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                projection_dim=768,
                max_position_embeddings=77,
            )
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=16,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            norm_num_groups=32,
            use_quant_conv=False,
            use_post_quant_conv=False,
            shift_factor=0.1159,
            scaling_factor=0.3611,
        )
    torch.set_default_dtype(torch.float32)
    pipe = FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(
            shift=3.0,
            use_dynamic_shifting=True,
            base_shift=0.5,
            max_shift=1.15,
            base_image_seq_len=256,
            max_image_seq_len=4096,
        ),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tok,
        text_encoder_2=text_encoder_2,
        tokenizer_2=t5_tok,
        transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_pipeline():
    from stages.background.tiny import build_tiny_fill_pipeline

    pipe = build_tiny_fill_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_cutout(size: int) -> Cutout:
    """A bottle-like product covering about a third of the frame, with soft edges."""
    rgba = np.zeros((size, size, 4), np.uint8)
    cx = size // 2
    cv2.ellipse(
        rgba, (cx, int(size * 0.7)), (size // 6, size // 5), 0, 0, 360, (180, 40, 40, 255), -1, cv2.LINE_AA
    )
    cv2.rectangle(
        rgba, (cx - size // 16, size // 6), (cx + size // 16, int(size * 0.6)), (30, 80, 190, 255), -1
    )
    return Cutout(rgba, backend="bench")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--tiny", action="store_true", help="tiny random model on CPU (plumbing check, not a speed)"
    )
    ap.add_argument("--check-options", action="store_true", help="with --tiny: check every speed option")
    ap.add_argument("--gpu-arms", action="store_true", help="with --tiny: dry run of the GPU arms on CPU")
    ap.add_argument("--dry-run", action="store_true",
                    help="every arm of the one-shot GPU benchmark, tiny, on CPU (= --tiny --gpu-arms)")
    ap.add_argument("--products", type=int, default=20, help="GPU: products of the end-to-end arm")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend for --check-options")
    ap.add_argument("--budget-s", type=float, default=480, help="GPU: start no arm that would end after this")
    ap.add_argument(
        "--size", type=int, default=None, help="square image side (default 1024; 128 with --tiny)"
    )
    ap.add_argument("--steps", type=int, default=None, help="inference steps (default 28; 2 with --tiny)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs per arm (default 3; 2 with --tiny)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.check_options:
        sys.exit(check_options(args))
    if args.dry_run or (args.tiny and args.gpu_arms):
        from bench.flux_gpu import run_gpu

        run_gpu(args, tiny_pipeline, device="cpu")
        return
    if not args.tiny:
        import torch

        if not torch.cuda.is_available():
            sys.exit("no CUDA GPU visible: run with --tiny for the CPU check")
        from bench.flux_gpu import run_gpu

        run_gpu(args, lambda: full_size_pipeline("cuda"), build_tiny=lambda: tiny_pipeline().to("cuda"))
        return
    tiny_plain_vs_stage(args)


def check_options(args) -> int:
    """Every speed option on the tiny models; prints ``options ok: ...`` or ``option failed: ...``."""
    import tempfile

    from bench.speed_check import run_checks

    if not args.tiny:
        print("option failed: --check-options runs with --tiny (the tiny models on CPU)")
        return 2
    with tempfile.TemporaryDirectory(prefix="packshot-speed-check-") as work:
        try:
            passed, figures = run_checks(Path(work), args.compile_backend)
        except Exception as exc:
            print(f"option failed: {exc}")
            return 1
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"options ok: {', '.join(passed)}")
    return 0


def tiny_plain_vs_stage(args) -> None:
    import torch
    from PIL import Image

    size = args.size or 128
    steps = args.steps or 2
    runs = args.runs or 2

    t0 = time.perf_counter()
    pipe = tiny_pipeline()
    build_s = time.perf_counter() - t0
    settings = GenerativeSettings(backend="tiny", steps=steps, generate_long_side=size)
    generator = FluxFillGenerator(
        pipe,
        name=settings.backend,
        key="bench",
        model_identity="bench:random",
        licence="random weights",
        settings=settings,
        long_side=size,
        steps=steps,
        max_sequence_length=512,
        device="cpu",
    )
    preset = Preset(name="bench", width=size, height=size)
    cutout = sample_cutout(size)
    product = Product(
        sku="BENCH-1",
        title="glass bottle",
        category="kitchen",
        images=["x"],
        source_file="bench",
        source_line=2,
    )
    prompt = "glass bottle, standing on a marble kitchen counter, soft morning light, high detail"
    image = Image.fromarray(np.full((size, size, 3), 128, np.uint8))
    mask = Image.fromarray(np.full((size, size), 255, np.uint8))

    def plain():
        pipe(
            prompt=prompt,
            image=image,
            mask_image=mask,
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=30.0,
            generator=torch.Generator("cpu").manual_seed(0),
            max_sequence_length=512,
        )

    def stage():
        render_background(cutout, product, None, preset, generator)

    arms = {"diffusers_plain": plain, "packshot_stage": stage}
    for fn in arms.values():  # warm-up (allocations, kernels)
        fn()
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(runs):  # interleaved so drift affects both arms alike
        for name, fn in arms.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)

    result = {
        "device": f"cpu ({platform.processor() or 'unknown'})",
        "model": "tiny random FLUX Fill",
        "size": size,
        "steps": steps,
        "runs": runs,
        "build_s": round(build_s, 2),
        "seconds_per_image": {k: round(statistics.median(v), 4) for k, v in times.items()},
        "all_runs_s": {k: [round(x, 4) for x in v] for k, v in times.items()},
    }
    base, ours = (result["seconds_per_image"][k] for k in ("diffusers_plain", "packshot_stage"))
    result["stage_overhead_pct"] = round(100 * (ours - base) / base, 1)
    result["images_per_hour_stage"] = round(3600 / ours)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
