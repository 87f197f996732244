"""Peak host memory of loading a FLUX.1 Fill-shaped pipeline from disk for the ``fp8`` memory plan (issue 23,
item 7): the old way (``FluxFillPipeline.from_pretrained`` reads every part in bf16, then the transformer is
quantised) against loading straight into the plan (``stages.background.generators.load_pipeline``: the
transformer read first, each linear weight quantised by torchao as it is read; then the other parts).
Each arm runs in a fresh interpreter, side by side in one run, on a random model saved to disk in bf16
(real FLUX block layout and head size, fewer and narrower blocks; T5 and CLIP narrowed alike, keeping the
transformer about 2.5 times the text encoders, as in FLUX.1 Fill: 22.2 against 8.9 GiB).

    PYTHONPATH=. .venv/bin/python bench/load_memory.py [--heads 8 --double 4 --single 8] [--out FILE]

On the CPU the quantised transformer stays in host memory; on a card it goes there weight by weight and
host memory holds the text encoders only (that part is arithmetic here, not measured). Figures: peak
anonymous memory (``RssAnon``, sampled every 2 ms: what must fit in RAM or swap) and peak resident set
(``VmHWM``, which also counts the memory-mapped safetensors pages the kernel can drop), each minus the
interpreter's own before loading.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIB = 1024**2


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class PeakAnon:
    """The highest ``RssAnon`` seen while the block runs (a sampling thread)."""

    def __enter__(self):
        self.peak, self._stop = status_kib("RssAnon"), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kib("RssAnon"))
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_kib("RssAnon"))


def build(directory: Path, heads: int, double: int, single: int) -> dict:
    """Save a random FLUX Fill-shaped pipeline (bf16 safetensors) to ``directory``; returns part sizes."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from stages.background.tiny import _build_tokenizers

    width = heads * 128
    clip_tok, t5_tok = _build_tokenizers()
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=384, out_channels=64, num_layers=double, num_single_layers=single,
        attention_head_dim=128, num_attention_heads=heads, joint_attention_dim=width,
        pooled_projection_dim=256, guidance_embeds=True, axes_dims_rope=(16, 56, 56))
    t5 = T5EncoderModel(T5Config(vocab_size=32128, d_model=width, d_kv=64, d_ff=int(width * 2.75),
                                 num_layers=max(2, double + 2), num_heads=width // 64,
                                 feed_forward_proj="gated-gelu", relative_attention_num_buckets=32))
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=256, intermediate_size=1024,
                                        num_hidden_layers=2, num_attention_heads=4, projection_dim=256,
                                        max_position_embeddings=77))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(32, 64, 128, 128), layers_per_block=1, norm_num_groups=32,
                        use_quant_conv=False, use_post_quant_conv=False)
    torch.set_default_dtype(torch.float32)
    pipe = FluxFillPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=clip,
                            tokenizer=clip_tok, text_encoder_2=t5, tokenizer_2=t5_tok,
                            transformer=transformer)
    pipe.save_pretrained(directory)

    def mib(module) -> float:
        return round(sum(p.numel() * p.element_size() for p in module.parameters()) / MIB, 1)

    return {"transformer_bf16_mib": mib(transformer), "text_encoders_bf16_mib": mib(t5) + mib(clip),
            "vae_bf16_mib": mib(vae)}


ARMS = {  # name: (how, dtype)
    "before_fp32": ("whole", "float32"), "after_fp32": ("plan", "float32"),
    "before_bf16": ("whole", "bfloat16"), "after_bf16": ("plan", "bfloat16"),
}


def arm(name: str, directory: str) -> dict:
    """One way of loading, in this (fresh) interpreter: peak host memory above the baseline."""
    import importlib.util

    import torch
    from diffusers import FluxFillPipeline, FluxTransformer2DModel  # noqa: F401 - imported before the baseline
    from transformers import CLIPTextModel, T5EncoderModel  # noqa: F401

    from packshot import placement
    from stages.background.generators import load_pipeline

    if importlib.util.find_spec("torchao"):
        import diffusers.quantizers.torchao.torchao_quantizer  # noqa: F401
        import torchao.quantization  # noqa: F401
    how, dtype_name = ARMS[name]
    dtype = getattr(torch, dtype_name)
    base_anon, base_hwm = status_kib("RssAnon"), status_kib("VmHWM")
    t = time.perf_counter()
    with PeakAnon() as peak:
        if how == "whole":  # before: every part read in the load dtype, then the plan quantises
            pipe = FluxFillPipeline.from_pretrained(directory, dtype=dtype)
            placement.apply_memory_plan(pipe, "fp8", "cpu")
        else:  # after: the transformer read straight into FP8, then the other parts
            pipe = load_pipeline(FluxFillPipeline, directory, revision=None, device="cpu", local=True,
                                 plan="fp8", label="bench", setting="bench", url="bench", dtype=dtype)
    seconds = time.perf_counter() - t
    weight = pipe.transformer.x_embedder.weight
    return {
        "peak_anon_mib": round((peak.peak - base_anon) / 1024, 1),
        "peak_rss_mib": round((status_kib("VmHWM") - base_hwm) / 1024, 1),
        "held_after_load_anon_mib": round((status_kib("RssAnon") - base_anon) / 1024, 1),
        "transformer_linear_weight": f"{type(weight).__name__} {weight.dtype}".replace("torch.", ""),
        "load_s": round(seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heads", type=int, default=8, help="attention heads of 128 (FLUX.1: 24)")
    ap.add_argument("--double", type=int, default=4, help="double-stream blocks (FLUX.1: 19)")
    ap.add_argument("--single", type=int, default=8, help="single-stream blocks (FLUX.1: 38)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm:  # the child: one arm, JSON on the last line
        print(json.dumps(arm(args.arm, args.dir)))
        return
    import importlib.util

    with tempfile.TemporaryDirectory(prefix="packshot-load-memory-") as work:
        directory = Path(work) / "flux-fill"
        sizes = build(directory, args.heads, args.double, args.single)
        result = {"model": f"random FLUX Fill layout: {args.double} double + {args.single} single blocks, "
                           f"{args.heads} heads of 128, saved in bf16", **sizes,
                  "torchao": importlib.util.find_spec("torchao") is not None, "arms": {}}
        # glibc keeps freed blocks below its (growing) mmap threshold: a fixed threshold returns them, so the
        # resident figures follow live tensors
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
        for name in ARMS:  # each in a fresh interpreter
            child = subprocess.run([sys.executable, __file__, "--arm", name, "--dir", str(directory)],
                                   capture_output=True, text=True, check=True, env=env)
            result["arms"][name] = json.loads(child.stdout.strip().splitlines()[-1])
    for dtype in ("fp32", "bf16"):
        before, after = (result["arms"][f"{w}_{dtype}"] for w in ("before", "after"))
        result[f"peak_anon_ratio_after_over_before_{dtype}"] = ratio(after["peak_anon_mib"],
                                                                     before["peak_anon_mib"])
        result[f"peak_rss_ratio_after_over_before_{dtype}"] = ratio(after["peak_rss_mib"],
                                                                    before["peak_rss_mib"])
    # On a card the FP8 transformer leaves host memory weight by weight; text encoders and VAE pass through
    on_card = sizes["text_encoders_bf16_mib"] + sizes["vae_bf16_mib"]
    result["on_a_card_host_peak_expected_mib"] = round(on_card, 1)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


if __name__ == "__main__":
    main()
