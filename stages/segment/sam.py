"""Segment Anything backend.

The model is loaded once per process through ``packshot.registry.models`` and shared by every
product. Images are embedded ``batch_size`` at a time in one image-encoder call (bfloat16 on
CUDA, float32 on the CPU, ``SegmentSettings.dtype``), and each is prompted on its cached
embedding without a human: the catalog's box when the row has one, else a box and points derived
from the cheap studio foreground estimate (:mod:`stages.segment.estimate`). Of SAM's three
masks the one with the best mix of predicted quality and agreement with that estimate wins.
Only the model call needs the card (:meth:`SamSegmenter.draft_batch`, a
:class:`~stages.segment.sam_draft.SamDraft` per photo): the estimate and prompts before it
(:meth:`SamSegmenter.prompt`) and the mask choice, cleanup and edge refinement after it
(:meth:`SamDraft.finish`) are CPU work, which the pipeline runs in loader threads and worker processes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch

from packshot.errors import ModelUnavailableError
from packshot.registry import models
from packshot.types import Cutout
from stages.segment._torchvision_compat import import_segment_anything
from stages.segment.estimate import Box
from stages.segment.sam_draft import (  # noqa: F401 (choose_mask, derive_prompts: the backend's API)
    SamDraft,
    SamPrompt,
    choose_mask,
    derive_prompts,
    sam_prompt,
)
from stages.segment.settings import SegmentSettings, embed_batch_size

log = logging.getLogger(__name__)

OFFICIAL_CHECKPOINTS = {"vit_h": "sam_vit_h_4b8939.pth", "vit_l": "sam_vit_l_0b3195.pth",
                        "vit_b": "sam_vit_b_01ec64.pth"}
CHECKPOINT_SETTING = "PACKSHOT_SEGMENT__SAM_CHECKPOINT"
TINY_IMG_SIZE = 256


def build_tiny_sam(checkpoint: str | Path | None = None):
    """A small SAM (ViT depth 2, width 64, 256 px input) made of segment-anything's own classes.

    Same structure as ``segment_anything.build_sam._build_sam``, only narrower, so the real
    predictor, prompt encoder and mask decoder code runs in tests in milliseconds.
    """
    sa = import_segment_anything()
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer

    prompt_dim, patch = 32, 16
    grid = TINY_IMG_SIZE // patch
    sam = sa.modeling.Sam(
        image_encoder=ImageEncoderViT(
            depth=2, embed_dim=64, img_size=TINY_IMG_SIZE, mlp_ratio=2,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=patch, qkv_bias=True,
            use_rel_pos=True, global_attn_indexes=[1], window_size=4, out_chans=prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim, image_embedding_size=(grid, grid),
            input_image_size=(TINY_IMG_SIZE, TINY_IMG_SIZE), mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=64, num_heads=2),
            transformer_dim=prompt_dim, iou_head_depth=2, iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    sam.eval()
    if checkpoint is not None:
        _load_state(sam, Path(checkpoint), "tiny")
    return sam


def _builders() -> dict:
    sa = import_segment_anything()
    return {**{k: sa.sam_model_registry[k] for k in OFFICIAL_CHECKPOINTS}, "tiny": build_tiny_sam}


def _checkpoint_help(model_type: str) -> str:
    names = ", ".join(f"{v} ({k})" for k, v in OFFICIAL_CHECKPOINTS.items())
    return (f"Set {CHECKPOINT_SETTING} to a SAM checkpoint matching PACKSHOT_SEGMENT__SAM_MODEL_TYPE="
            f"{model_type}; the official files are {names}, from the segment-anything repository. "
            f"Or set PACKSHOT_SEGMENT__BACKEND=classic to cut out studio shots without weights.")


def read_checkpoint(checkpoint: Path, model_type: str) -> dict:
    """The state dict in ``checkpoint`` (tensors on the CPU); errors name the setting and the files."""
    if not checkpoint.is_file():
        raise ModelUnavailableError(
            f"SAM checkpoint {checkpoint} does not exist. {_checkpoint_help(model_type)}"
        )
    try:
        with open(checkpoint, "rb") as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise ModelUnavailableError(
            f"SAM checkpoint {checkpoint} could not be read ({type(exc).__name__}): the file is corrupt or "
            f"not a PyTorch checkpoint. {_checkpoint_help(model_type)}"
        ) from None
    if not isinstance(state, dict):
        raise ModelUnavailableError(
            f"SAM checkpoint {checkpoint} holds no state dict. {_checkpoint_help(model_type)}"
        )
    return state


def _load_state(model: torch.nn.Module, checkpoint: Path, model_type: str, state: dict | None = None) -> None:
    state = read_checkpoint(checkpoint, model_type) if state is None else state
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise ModelUnavailableError(
            f"SAM checkpoint {checkpoint} does not fit model type {model_type} (wrong file or wrong "
            f"PACKSHOT_SEGMENT__SAM_MODEL_TYPE). {_checkpoint_help(model_type)}"
        ) from None


def load_sam(model_type: str, checkpoint: Path, device: str = "cpu") -> torch.nn.Module:
    """Build the ``model_type`` architecture and load ``checkpoint`` into it; errors name the setting.

    The file is read before the (large) model is built, so a bad file fails fast.
    """
    state = read_checkpoint(Path(checkpoint), model_type)
    model = _builders()[model_type](checkpoint=None)
    _load_state(model, Path(checkpoint), model_type, state)
    return model.to(device).eval()


def sam_dtype(settings: SegmentSettings, device: str) -> torch.dtype:
    """The image encoder's dtype: ``settings.dtype``, where auto is bfloat16 on CUDA, else float32."""
    if settings.dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    return getattr(torch, settings.dtype)


@torch.no_grad()
def embed_images(model: torch.nn.Module, transform, images: list[np.ndarray]):
    """One image-encoder call for several RGB ``HxWx3 uint8`` images (what ``SamPredictor.set_image``
    does, batched): (features ``N x C x h x w`` float32, input sizes after resizing)."""
    encoder = model.image_encoder
    dtype = next(encoder.parameters()).dtype
    device = next(encoder.parameters()).device
    batch, input_sizes = [], []
    for image in images:
        resized = transform.apply_image(image)
        tensor = torch.as_tensor(resized, device=device).permute(2, 0, 1).contiguous()
        input_sizes.append(tuple(tensor.shape[-2:]))
        batch.append(model.preprocess(tensor[None]))  # normalise and pad to a square
    features = encoder(torch.cat(batch).to(dtype))
    return features.float(), input_sizes  # the prompt encoder and mask decoder stay float32


def tiny_checkpoint(seed: int = 0) -> Path:
    """Write (once) a random-weight tiny SAM checkpoint to the temp folder and return its path."""
    path = Path(tempfile.gettempdir()) / f"packshot-tiny-sam-{seed}.pt"
    if not path.is_file():
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            state = build_tiny_sam().state_dict()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # parallel test workers never share a temp file
        torch.save(state, tmp)
        tmp.replace(path)
    return path


def _load_with_encoder_dtype(model_type: str, checkpoint: Path, device: str, dtype: torch.dtype):
    model = load_sam(model_type, checkpoint, device)
    model.image_encoder.to(dtype)  # the expensive part; prompts and masks stay float32
    return model


SAM_LICENCE = "Apache-2.0 (Segment Anything, Meta AI: github.com/facebookresearch/segment-anything)"
TINY_LICENCE = "tiny random-weight SAM built locally for tests (no licence terms; not for production)"


class SamSegmenter:
    """SAM cutouts. ``tiny=True`` uses the random-weight tiny model (tests; garbage masks)."""

    def __init__(self, settings: SegmentSettings, device: str = "cpu", tiny: bool = False):
        sa = import_segment_anything()
        self.settings, self.device = settings, device
        self.name = self.identity = "tiny" if tiny else "sam"
        self.licence = TINY_LICENCE if tiny else SAM_LICENCE
        self.generated = False
        if tiny:
            model_type, checkpoint = "tiny", tiny_checkpoint()
        else:
            model_type = settings.sam_model_type
            if settings.sam_checkpoint is None:
                raise ModelUnavailableError(
                    f"The sam backend needs a checkpoint. {_checkpoint_help(model_type)}"
                )
            checkpoint = Path(settings.sam_checkpoint).expanduser().resolve()
        dtype = sam_dtype(settings, device)
        key = f"segment:sam:{model_type}:{checkpoint}:{device}:{str(dtype).removeprefix('torch.')}"
        self.model = models.get(key, lambda: _load_with_encoder_dtype(model_type, checkpoint, device, dtype),
                                identity=f"sam {model_type} {checkpoint.name}")
        self.predictor = sa.SamPredictor(self.model)
        self.embed_batch = embed_batch_size(settings, device)
        self.dtype = dtype

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout:
        return self.segment_batch([image], [box])[0]

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]:
        """``images``: RGB ``HxWx3 uint8``; ``boxes``: catalog boxes (x0, y0, x1, y1) or None each.
        :meth:`draft_batch`, then each draft finished here (:meth:`SamDraft.finish`)."""
        drafts = self.draft_batch(images, boxes)
        return [draft.finish(image) for draft, image in zip(drafts, images, strict=True)]

    def prompt(self, image: np.ndarray, box: Box | None) -> SamPrompt:
        """The CPU work before the model call for ``image`` (:func:`stages.segment.sam_draft.sam_prompt`)."""
        return sam_prompt(image, box, self.name)

    def draft_batch(self, images: list[np.ndarray], boxes: list[Box | None],
                    prompts: list[SamPrompt | None] | None = None) -> list[SamDraft]:
        """The model's part of :meth:`segment_batch`: one image-encoder call per ``embed_batch`` images
        (``N x 3 x S x S`` in, ``N x C x S/16 x S/16`` out), then the mask decoder per image on its own
        embedding with its prompt (``prompts``, made by :meth:`prompt`; made here where missing).

        Returns one :class:`SamDraft` per image (``3 x H x W`` masks at the photo's size). Finishing it
        (mask choice, cleanup, confidence, edge refinement: CPU only) is left to the caller, so the card
        can be let go first. ``images`` may differ in size.
        """
        if len(images) != len(boxes) or (prompts is not None and len(prompts) != len(images)):
            raise ValueError("draft_batch needs one box (or None) and one prompt (or None) per image")
        prompts = list(prompts or [None] * len(images))
        drafts = []
        for start in range(0, len(images), self.embed_batch):
            chunk = images[start : start + self.embed_batch]
            for i, image in enumerate(chunk, start):
                if prompts[i] is None:
                    prompts[i] = self.prompt(image, boxes[i])
            embeddings = embed_images(self.model, self.predictor.transform, chunk)
            for i, image in enumerate(chunk):
                self._set_embedding(image, embeddings, i)
                drafts.append(self._draft(prompts[start + i]))
        return drafts

    def _set_embedding(self, image: np.ndarray, embeddings, index: int) -> None:
        features, input_sizes = embeddings
        self.predictor.reset_image()
        self.predictor.original_size = image.shape[:2]
        self.predictor.input_size = input_sizes[index]
        self.predictor.features = features[index : index + 1]
        self.predictor.is_image_set = True

    def _draft(self, prompt: SamPrompt) -> SamDraft:
        masks, quality, low_res_logits = self.predictor.predict(
            point_coords=prompt.points if len(prompt.points) else None,
            point_labels=prompt.labels if len(prompt.labels) else None,
            box=np.array(prompt.box, np.float32),
            multimask_output=True,
        )
        return SamDraft(prompt, masks, quality, low_res_logits, self.settings, backend=self.name)
