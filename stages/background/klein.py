"""FLUX.2 [klein] 4B inpainting: the licence-clean generator (Apache-2.0), 4 distilled steps.

``Flux2KleinInpaintPipeline`` (diffusers) regenerates the masked background around the product from
noise and keeps the unmasked pixels through latent blending; the product's own pixels are pasted back
afterwards exactly as with FLUX.1 Fill (:mod:`stages.background.compose`). One Qwen3 text encoder
replaces CLIP + T5: its hidden states at ``text_layers`` are stacked into the ``1 x L x 3D`` prompt
embedding, which the prompt cache keeps per prompt like FLUX.1's.

The ``tiny-klein`` backend builds the same pipeline classes at toy widths from configs (no download)
and loads them back through ``from_pretrained``, the code path the real model takes.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from packshot.backends import BackendSpec
from packshot.config import GenerativeSettings
from packshot.errors import ModelUnavailableError
from stages.background.compat import import_diffusers
from stages.background.generators import (
    BACKENDS,
    GENERATIVE_MODULES,
    FillRequest,
    FluxFillGenerator,
    fill_generator,
    load_pipeline,
    locate_model,
)
from stages.background.prompts import Embedding, PromptEmbeddings

KLEIN_DEFAULT = "black-forest-labs/FLUX.2-klein-4B"
KLEIN_URL = "https://huggingface.co/black-forest-labs/FLUX.2-klein-4B"
KLEIN_SETTING = "PACKSHOT_GENERATIVE__KLEIN_MODEL"
KLEIN_TEXT_LAYERS = (9, 18, 27)  # Qwen3-4B hidden states the transformer was trained on
TINY_TEXT_LAYERS = (1,)
TINY_KLEIN_VERSION = "1"


class KleinPromptEmbeddings(PromptEmbeddings):
    """The prompt cache for the Qwen3 encoder: ``prompt_embeds`` ``1 x L x 3D``, no pooled vector."""

    def batch(self, prompts: list[str], max_sequence_length: int) -> tuple[Any, None]:
        import torch

        items = [self.get(p, max_sequence_length) for p in prompts]
        return torch.cat([e.prompt_embeds for e in items]), None

    def _encode(self, prompt: str, max_sequence_length: int) -> Embedding:
        import torch

        if self.freed:
            raise ModelUnavailableError(
                f"the FLUX.2 [klein] text encoder was freed and the prompt {prompt[:60]!r} is not in the "
                "prompt cache; encode every prompt before freeing it, or keep it"
            )
        encoder = self.pipe.text_encoder
        encoder_device = self.pipe._execution_device if hasattr(encoder, "_hf_hook") else encoder.device
        layers = getattr(self.pipe, "_packshot_text_layers", KLEIN_TEXT_LAYERS)
        with torch.no_grad():
            prompt_embeds, _ids = self.pipe.encode_prompt(
                prompt=prompt, device=encoder_device, max_sequence_length=max_sequence_length,
                text_encoder_out_layers=layers,
            )
        self.encoded += 1
        return Embedding(prompt_embeds.to(self.device, self.pipe.transformer.dtype), None)


class Flux2KleinGenerator(FluxFillGenerator):
    """A loaded ``Flux2KleinInpaintPipeline``: the same ``fill``/``fill_batch`` contract as FLUX.1 Fill
    (``HxWx3 uint8`` guide, ``HxW bool`` mask, True = generate), brand LoRAs, prompt cache and batches."""

    prompt_cache_class = KleinPromptEmbeddings

    def _call(self, requests: list[FillRequest]) -> list[np.ndarray]:
        import torch
        from PIL import Image

        h, w = requests[0].mask.shape
        prompt_embeds, _ = self.prompts.batch([r.prompt for r in requests], self.max_sequence_length)
        result = self.pipe(
            prompt_embeds=prompt_embeds,
            image=[Image.fromarray(r.image, "RGB") for r in requests],
            mask_image=[Image.fromarray(r.mask.astype(np.uint8) * 255, "L") for r in requests],
            height=h,
            width=w,
            strength=1.0,  # the masked background is generated from noise; the rest is blended back
            num_inference_steps=self.steps,
            guidance_scale=self.settings.klein_guidance_scale,
            generator=[torch.Generator("cpu").manual_seed(r.seed) for r in requests],
            max_sequence_length=self.max_sequence_length,
            text_encoder_out_layers=getattr(self.pipe, "_packshot_text_layers", KLEIN_TEXT_LAYERS),
            output_type="np",
        )
        self.speed_state.mark_warm()
        self.pipeline_calls += 1
        self.images_generated += len(requests)  # padded slots included: the card computed them
        return [np.clip(np.round(img * 255), 0, 255).astype(np.uint8) for img in result.images]


def build_klein(settings: GenerativeSettings, device: str) -> Flux2KleinGenerator:
    """The ``flux2-klein`` backend: the model in ``PACKSHOT_GENERATIVE__KLEIN_MODEL``."""
    if not settings.klein_model:
        raise ModelUnavailableError(
            f"PACKSHOT_GENERATIVE__BACKEND=flux2-klein needs {KLEIN_SETTING}: a local directory with the "
            f"FLUX.2 [klein] 4B weights or the hub id {KLEIN_DEFAULT} (Apache-2.0; {KLEIN_URL})"
        )
    source, local = locate_model(settings.klein_model, KLEIN_SETTING, KLEIN_DEFAULT, KLEIN_URL)
    notes = []
    if not device.startswith("cuda"):
        notes.append(f"background: FLUX.2 [klein] runs on {device}; expect tens of seconds per image")
    return fill_generator(
        "flux2-klein", source, settings.klein_revision, local, device, settings, KLEIN_LICENCE_TEXT,
        long_side=settings.generate_long_side or 1024, steps=settings.klein_steps,
        max_sequence_length=min(settings.max_sequence_length, 512), notes=notes,
        footprint="flux2-klein", loader=load_klein_pipeline, generator_class=Flux2KleinGenerator,
    )


def build_tiny_klein(settings: GenerativeSettings, device: str) -> Flux2KleinGenerator:
    """The ``tiny-klein`` test backend: random toy weights through the real loading path."""
    directory = ensure_tiny_klein_model(settings.tiny_model_dir and Path(settings.tiny_model_dir) / "klein")
    return fill_generator(
        "tiny-klein", str(directory), None, True, device, settings, TINY_KLEIN_LICENCE,
        long_side=settings.generate_long_side or 64, steps=min(settings.klein_steps, 2),
        max_sequence_length=32, footprint="tiny", loader=load_klein_pipeline,
        generator_class=Flux2KleinGenerator,
        notes=["background: tiny random-weight FLUX.2 [klein] (test backend): images are noise"],
    )


KLEIN_LICENCE_TEXT = "Apache-2.0 (FLUX.2 [klein] 4B): commercial use allowed"
TINY_KLEIN_LICENCE = "tiny random-weight FLUX.2 [klein] built locally for tests (no licence terms)"

# auto prefers the licence-clean model: klein goes before FLUX.1 Fill [dev] in the table.
BACKENDS.register(BackendSpec(
    "flux2-klein", build_klein, f"FLUX.2 [klein] 4B inpainting (Apache-2.0) from {KLEIN_SETTING}",
    unavailable=lambda s: None if s.klein_model else f"no FLUX.2 [klein] model (set {KLEIN_SETTING})",
    licence="apache-2.0", extra="generative", modules=GENERATIVE_MODULES,
), before="flux")
BACKENDS.register(BackendSpec("tiny-klein", build_tiny_klein, "a random-weight tiny FLUX.2 [klein] (tests)",
                              auto=False, licence="test", extra="generative", modules=GENERATIVE_MODULES))


def load_klein_pipeline(source: str, *, revision: str | None, device: str, local: bool, plan: str = "full"):
    """``Flux2KleinInpaintPipeline.from_pretrained`` (see :func:`stages.background.generators.load_pipeline`),
    with the Qwen3 hidden states the transformer expects."""
    pipe = load_pipeline(import_diffusers().Flux2KleinInpaintPipeline, source, revision=revision,
                         device=device, local=local, plan=plan, label="FLUX.2 [klein]", setting=KLEIN_SETTING,
                         url=KLEIN_URL)
    # the released encoder has 36 layers; a smaller (test) encoder uses its own last hidden state
    released = pipe.text_encoder.config.num_hidden_layers > max(KLEIN_TEXT_LAYERS)
    pipe._packshot_text_layers = KLEIN_TEXT_LAYERS if released else TINY_TEXT_LAYERS
    return pipe


def default_tiny_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"packshot-tiny-klein-v{TINY_KLEIN_VERSION}"


def build_tiny_klein_pipeline(seed: int = 0):
    """The tiny pipeline in memory (float32, CPU): real classes, toy widths, a local tokenizer."""
    import torch

    diffusers = import_diffusers()
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = _tiny_qwen_tokenizer()
    torch.manual_seed(seed)
    transformer = diffusers.Flux2Transformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=16, timestep_guidance_channels=256,
        axes_dims_rope=(4, 4, 4, 4), guidance_embeds=False,
    )
    text_encoder = Qwen3ForCausalLM(Qwen3Config(
        hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, head_dim=8, vocab_size=len(tokenizer), max_position_embeddings=512,
    ))
    vae = diffusers.AutoencoderKLFlux2(
        sample_size=32, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",), block_out_channels=(4,), layers_per_block=1,
        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
    )
    for module in (transformer, text_encoder, vae):
        module.eval()
    return diffusers.Flux2KleinInpaintPipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
        tokenizer=tokenizer, transformer=transformer, is_distilled=True,
    )


def ensure_tiny_klein_model(directory: Path | None = None) -> Path:
    """Build and ``save_pretrained`` the tiny pipeline once (atomically); return the directory."""
    from stages.background.tiny import save_pretrained_once

    return save_pretrained_once(Path(directory or default_tiny_dir()), build_tiny_klein_pipeline)


def _tiny_qwen_tokenizer():
    """A character-level ``Qwen2TokenizerFast`` with Qwen's chat markers (built, never fetched)."""
    from tokenizers import Tokenizer, models
    from transformers import Qwen2TokenizerFast

    chars = string.ascii_letters + string.digits + string.punctuation + " \n"
    vocab = {c: i for i, c in enumerate(chars)}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=Tokenizer(models.BPE(vocab=vocab, merges=[])),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, bos_token=None,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tokenizer
