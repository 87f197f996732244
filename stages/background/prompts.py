"""Prompt embeddings computed once per distinct prompt and reused across products and scenes.

FLUX encodes every prompt with CLIP (pooled, ``1 x 768``) and T5 (``1 x L x 4096`` at
``max_sequence_length`` L = 512): on a GPU about as long as one denoising step, on the CPU
seconds. The cache keys on the prompt text, L and the text-encoder LoRA (if any), and holds the
embeddings on the transformer's device, so a cached prompt needs no text encoder at all: they
can then live on the CPU or be freed (:meth:`PromptEmbeddings.free_encoders`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from packshot.errors import ModelUnavailableError


@dataclass(frozen=True)
class Embedding:
    """One prompt: ``prompt_embeds`` (1 x L x D), ``pooled`` (1 x P) on the transformer's device."""

    prompt_embeds: Any
    pooled: Any


class PromptEmbeddings:
    """LRU of :class:`Embedding` per (prompt, max_sequence_length, text-encoder adapter)."""

    def __init__(self, pipe: Any, max_entries: int, device: str):
        self.pipe, self.max_entries, self.device = pipe, max_entries, device
        self._entries: OrderedDict[tuple[str, int, str], Embedding] = OrderedDict()
        self.encoded = 0  # text-encoder calls made (for tests and the benchmark)
        self.freed = False

    def get(self, prompt: str, max_sequence_length: int) -> Embedding:
        key = (prompt, max_sequence_length, self._text_adapter())
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        embedding = self._encode(prompt, max_sequence_length)
        if self.max_entries:
            self._entries[key] = embedding
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return embedding

    def batch(self, prompts: list[str], max_sequence_length: int) -> tuple[Any, Any]:
        """(prompt_embeds ``N x L x D``, pooled ``N x P``) for the pipeline's ``prompt_embeds=``."""
        import torch

        items = [self.get(p, max_sequence_length) for p in prompts]
        return (torch.cat([e.prompt_embeds for e in items]), torch.cat([e.pooled for e in items]))

    def free_encoders(self) -> None:
        """Drop CLIP and T5 (about 9 GiB for FLUX); cached prompts keep working, new ones raise."""
        for name in ("text_encoder", "text_encoder_2"):
            if getattr(self.pipe, name, None) is not None:
                self.pipe.register_modules(**{name: None})
        self.freed = True

    def _encode(self, prompt: str, max_sequence_length: int) -> Embedding:
        import torch

        if self.freed:
            raise ModelUnavailableError(
                f"the FLUX text encoders were freed and the prompt {prompt[:60]!r} is not in the prompt "
                "cache; encode every prompt before freeing them, or keep them (PACKSHOT_GENERATIVE__SPEED__"
                "TEXT_ENCODER_DEVICE=cpu keeps them off the GPU instead)"
            )
        encoder = self.pipe.text_encoder_2
        # under model CPU offload the encoder sits on the CPU and its hook runs it on the GPU
        encoder_device = self.pipe._execution_device if hasattr(encoder, "_hf_hook") else encoder.device
        with torch.no_grad():
            prompt_embeds, pooled, _ids = self.pipe.encode_prompt(
                prompt=prompt, prompt_2=None, device=encoder_device, max_sequence_length=max_sequence_length
            )
        self.encoded += 1
        dtype = self.pipe.transformer.dtype
        return Embedding(prompt_embeds.to(self.device, dtype), pooled.to(self.device, dtype))

    def _text_adapter(self) -> str:
        """Active text-encoder LoRA adapters (they change the embeddings), or ''."""
        names = []
        for name in ("text_encoder", "text_encoder_2"):
            encoder = getattr(self.pipe, name, None)
            if encoder is None or not getattr(encoder, "peft_config", None):
                continue
            layers = [m for m in encoder.modules() if hasattr(m, "disable_adapters") and hasattr(m, "lora_A")]
            if layers and not layers[0].disable_adapters:
                names += [f"{name}:{a}" for a in layers[0].active_adapters]
        return ",".join(sorted(names))
