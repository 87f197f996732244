"""FLUX.1 Fill [dev] beside FLUX.2 [klein] 4B: sizes, expected memory per plan, and seconds per image.

    python bench/generators.py                 # CPU: sizes (meta device), plans (arithmetic), tiny timings
    python bench/generators.py --gpu --flux-model DIR --klein-model DIR --out $OUT   # on a lent GPU

Sizes are parameter counts of the full-size architectures built on the meta device (nothing is
downloaded or allocated). The memory table is arithmetic from :mod:`packshot.memory`, labelled so. The
CPU timing runs both pipelines' real code at toy widths with each model's own step count (28 vs 4):
it measures pipeline overhead per image, not model speed. The ``--gpu`` arm times 1024 px fills of the
real weights and writes each result to ``--out`` as it finishes; until it runs on a GPU, every GPU
figure in docs/benchmarks.md stays "not measured".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packshot.config import GenerativeSettings  # noqa: E402
from packshot.memory import FOOTPRINTS, GIB, PLAN_ORDER, phase_peak  # noqa: E402

GENERATORS = {  # backend -> (label, memory footprint, the model's own step count)
    "flux": ("FLUX.1 Fill [dev]", "flux-fill", 28),
    "flux2-klein": ("FLUX.2 [klein] 4B", "flux2-klein", 4),
}


def full_size_parameters() -> dict[str, dict[str, float]]:
    """Billions of parameters per component, built on the meta device from the published shapes."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, AutoencoderKLFlux2, Flux2Transformer2DModel, FluxTransformer2DModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        Qwen3Config,
        Qwen3ForCausalLM,
        T5Config,
        T5EncoderModel,
    )

    def billions(module) -> float:
        return sum(p.numel() for p in module.parameters()) / 1e9

    with init_empty_weights():
        flux = {
            "transformer": FluxTransformer2DModel(in_channels=384, out_channels=64, num_layers=19,
                                                  num_single_layers=38, attention_head_dim=128,
                                                  num_attention_heads=24, joint_attention_dim=4096,
                                                  pooled_projection_dim=768, guidance_embeds=True),
            "text encoders (T5-XXL + CLIP-L)": [
                T5EncoderModel(T5Config(d_model=4096, d_ff=10240, d_kv=64, num_layers=24, num_heads=64,
                                        vocab_size=32128, feed_forward_proj="gated-gelu")),
                CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                             num_attention_heads=12, projection_dim=768)),
            ],
            "vae": AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                                 down_block_types=("DownEncoderBlock2D",) * 4,
                                 up_block_types=("UpDecoderBlock2D",) * 4,
                                 block_out_channels=(128, 256, 512, 512), layers_per_block=2),
        }
        klein = {
            "transformer": Flux2Transformer2DModel(in_channels=128, num_layers=5, num_single_layers=20,
                                                   attention_head_dim=128, num_attention_heads=24,
                                                   joint_attention_dim=7680, axes_dims_rope=(32, 32, 32, 32),
                                                   guidance_embeds=False),
            "text encoder (Qwen3-4B)": Qwen3ForCausalLM(Qwen3Config(
                hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True)),
            "vae": AutoencoderKLFlux2(),
        }
    out = {}
    for name, parts in (("flux", flux), ("flux2-klein", klein)):
        out[name] = {part: sum(billions(m) for m in (mods if isinstance(mods, list) else [mods]))
                     for part, mods in parts.items()}
    return out


def memory_table() -> list[tuple[str, str, float]]:
    """(generator, plan, expected peak GiB with SAM ViT-H batch 4): arithmetic, not measured."""
    rows = []
    for name, (_label, footprint, _steps) in GENERATORS.items():
        models = [FOOTPRINTS["sam-vit_h"], FOOTPRINTS[footprint]]
        for plan in PLAN_ORDER:
            rows.append((name, plan, phase_peak(models, plan, {"SAM ViT-H": 4}) / GIB))
    return rows


def tiny_seconds_per_image(images: int) -> dict[str, float]:
    """CPU seconds per 64 px fill through each backend's real pipeline code at its own step count."""
    from stages.background import get_background_generator

    image = np.full((64, 64, 3), 200, np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[:, :40] = True
    out = {}
    for name, backend in (("flux", "tiny"), ("flux2-klein", "tiny-klein")):
        steps = GENERATORS[name][2]
        settings = GenerativeSettings(backend=backend, steps=steps, klein_steps=steps, generate_long_side=64)
        generator = get_background_generator(settings, "cpu")
        generator.steps = steps  # the tiny backends cap steps for tests; time each model's real count
        generator.fill(image, mask, "warm-up", 0)
        start = time.perf_counter()
        for i in range(images):
            generator.fill(image, mask, f"a product on a table {i % 3}", i)
        out[name] = (time.perf_counter() - start) / images
    return out


def gpu_arms(flux_model: str | None, klein_model: str | None, out: Path, images: int) -> None:
    """Seconds per 1024 px fill on the card for each configured model; one JSON line per result."""
    import torch

    from stages.background import get_background_generator

    image = np.full((1024, 1024, 3), 200, np.uint8)
    mask = np.zeros((1024, 1024), bool)
    mask[:, :600] = True
    for name, model in (("flux", flux_model), ("flux2-klein", klein_model)):
        if not model:
            continue
        settings = GenerativeSettings(backend=name, flux_model=flux_model, klein_model=klein_model)
        torch.cuda.reset_peak_memory_stats()
        generator = get_background_generator(settings, "cuda")
        generator.fill(image, mask, "warm-up", 0)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(images):
            generator.fill(image, mask, "a product on an oak table, soft window light", i)
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / images
        row = {"generator": name, "steps": generator.steps, "s_per_image": seconds,
               "peak_gib": torch.cuda.max_memory_allocated() / GIB, "device": torch.cuda.get_device_name()}
        with open(out / "generators_gpu.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        del generator
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--gpu", action="store_true", help="time the real models on this machine's GPU")
    parser.add_argument("--flux-model")
    parser.add_argument("--klein-model")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    if args.gpu:
        args.out.mkdir(parents=True, exist_ok=True)
        gpu_arms(args.flux_model, args.klein_model, args.out, args.images)
        return
    params = full_size_parameters()
    print("| generator | component | parameters (B) | bf16 GiB |")
    print("|---|---|---|---|")
    for name, parts in params.items():
        for part, billions in parts.items():
            print(f"| {GENERATORS[name][0]} | {part} | {billions:.2f} | {billions * 2e9 / GIB:.2f} |")
    print("\nExpected peak with SAM ViT-H (batch 4), GiB (arithmetic from packshot.memory, not measured):")
    print("| generator | " + " | ".join(PLAN_ORDER) + " |")
    print("|---|" + "---|" * len(PLAN_ORDER))
    table = memory_table()
    for name in GENERATORS:
        cells = " | ".join(f"{gib:.1f}" for g, _p, gib in table if g == name)
        print(f"| {GENERATORS[name][0]} | {cells} |")
    seconds = tiny_seconds_per_image(args.images)
    print(f"\nTiny random pipelines on this CPU, 64 px, each model's own step count, {args.images} images:")
    for name, value in seconds.items():
        print(f"  {GENERATORS[name][0]} ({GENERATORS[name][2]} steps): {value:.3f} s per image")
    ratio = seconds["flux"] / seconds["flux2-klein"]
    print(f"  ratio FLUX.1 Fill / klein: {ratio:.1f}x (pipeline overhead only)")


if __name__ == "__main__":
    main()
