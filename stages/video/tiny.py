"""A tiny LTX-Video image-to-video pipeline with random weights, built from configs (no download).

Real component classes and shapes at toy widths, as in diffusers' own LTX tests: it exercises the
same load / call / encode path as the real model in about a second on a CPU. ``local_model="tiny"``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

_TOKEN_PIECES = ["\u2581", *"abcdefghijklmnopqrstuvwxyz0123456789,.-"]


def build_tiny_ltx(directory: Path) -> Path:
    """Save a random tiny ``LTXImageToVideoPipeline`` to ``directory`` (loadable by from_pretrained)."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXImageToVideoPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4,
        upsample_factor=(1,) * 4,
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    vae.use_framewise_encoding = vae.use_framewise_decoding = False
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(p, -1.0) for p in _TOKEN_PIECES]
    tokenizer = T5TokenizerFast(vocab=pieces, extra_ids=0)
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=1,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    pipe = LTXImageToVideoPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )
    pipe.save_pretrained(directory)
    return directory


_tiny_dir: Path | None = None


def tiny_ltx_dir() -> Path:
    """A per-process directory holding the tiny pipeline (built on first use)."""
    global _tiny_dir
    if _tiny_dir is None:
        _tiny_dir = build_tiny_ltx(Path(tempfile.mkdtemp(prefix="packshot-tiny-ltx-")))
    return _tiny_dir
