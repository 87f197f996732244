"""A randomly initialised, tiny FLUX.1 Fill pipeline built from configs (no download, no weights).

It has the real FLUX Fill layout (384 transformer input channels, 16-channel VAE with scale
factor 8, CLIP + T5 text encoders) at toy widths, so the same ``FluxFillPipeline.from_pretrained``
code that loads the real model runs in tests and in the ``tiny`` backend. Tokenizers are built from
Python objects, never fetched.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

from stages.background.compat import import_diffusers

TINY_VERSION = "1"  # bump when the configs change so stale cache directories are rebuilt

# Shapes shared by the Fill and dev-style transformers: axes_dims_rope sums to attention_head_dim,
# joint_attention_dim equals T5's d_model, pooled_projection_dim equals CLIP's hidden size.
TRANSFORMER_CONFIG = dict(
    patch_size=1,
    out_channels=64,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    pooled_projection_dim=32,
    guidance_embeds=True,
    axes_dims_rope=(4, 6, 6),
)
FILL_IN_CHANNELS = 384  # 64 packed latent + 64 packed masked-image latent + 256 packed mask
DEV_IN_CHANNELS = 64  # a text-to-image FLUX transformer (what most brand LoRAs are trained on)


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"packshot-tiny-flux-v{TINY_VERSION}"


def build_transformer(in_channels: int = FILL_IN_CHANNELS, seed: int = 0):
    import torch

    import_diffusers()
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    return FluxTransformer2DModel(in_channels=in_channels, **TRANSFORMER_CONFIG)


def build_tiny_fill_pipeline(seed: int = 0):
    """The tiny pipeline in memory (float32, CPU)."""
    import torch

    import_diffusers()
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxFillPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tokenizer, t5_tokenizer = _build_tokenizers()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
            num_attention_heads=2, projection_dim=32, max_position_embeddings=77,
            bos_token_id=clip_tokenizer.bos_token_id, eos_token_id=clip_tokenizer.eos_token_id,
            pad_token_id=clip_tokenizer.pad_token_id,
        )
    )
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4,
            relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0,
        )
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4, sample_size=64,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611,
    )
    transformer = build_transformer(FILL_IN_CHANNELS, seed)
    for module in (text_encoder, text_encoder_2, vae, transformer):
        module.eval()  # built modules start in training mode: T5's dropout would make every call random
    return FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )


def ensure_tiny_fill_model(directory: Path | None = None) -> Path:
    """Build and ``save_pretrained`` the tiny pipeline once; return the directory to load from."""
    return save_pretrained_once(Path(directory or default_cache_dir()), build_tiny_fill_pipeline)


def save_pretrained_once(directory: Path, build) -> Path:
    """``build().save_pretrained(directory)`` unless a pipeline is already there; returns ``directory``."""
    if (directory / "model_index.json").is_file():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Save into a sibling temp dir and rename, so a concurrent worker never sees a half-written model.
    staging = Path(tempfile.mkdtemp(prefix=directory.name + ".", dir=directory.parent))
    build().save_pretrained(staging)
    try:
        staging.rename(directory)
    except OSError:  # another process won the race; its copy is identical
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return directory


def save_tiny_lora(
    path: Path,
    target_modules: list[str],
    in_channels: int = FILL_IN_CHANNELS,
    rank: int = 4,
    seed: int = 1,
    weight_name: str = "pytorch_lora_weights.safetensors",
) -> Path:
    """Train-free LoRA for the tiny transformer: random, non-zero A and B (so it changes the output).

    ``in_channels=DEV_IN_CHANNELS`` with ``"x_embedder"`` in ``target_modules`` makes a LoRA that,
    like a real FLUX-dev LoRA touching ``x_embedder``, cannot apply to the Fill transformer.
    """
    import torch

    import_diffusers()
    from diffusers import FluxFillPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    transformer = build_transformer(in_channels)
    torch.manual_seed(seed)
    # init_lora_weights=False: peft's default leaves B at zero, which would be a no-op LoRA.
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=target_modules,
                                       init_lora_weights=False))
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    FluxFillPipeline.save_lora_weights(
        path, transformer_lora_layers=get_peft_model_state_dict(transformer), weight_name=weight_name
    )
    return path / weight_name


def _build_tokenizers():
    from transformers import CLIPTokenizer, T5Tokenizer

    # Character-level vocabularies: enough to tokenise any ASCII prompt deterministically.
    chars = string.ascii_lowercase + string.digits + string.punctuation
    clip_vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        clip_vocab.setdefault(c, len(clip_vocab))
        clip_vocab.setdefault(c + "</w>", len(clip_vocab))
    clip = CLIPTokenizer(vocab=clip_vocab, merges=[], model_max_length=77)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -2.0) for c in chars] + [("\u2581" + c, -2.5) for c in chars]
    t5 = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)
    return clip, t5
