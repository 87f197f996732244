"""Cut the product out of its photo.

``get_segmenter(settings, device)`` returns a backend chosen by ``settings.backend`` from the table
:data:`BACKENDS`:

- ``sam``: Segment Anything with the checkpoint in ``PACKSHOT_SEGMENT__SAM_CHECKPOINT``;
- ``rembg``: learned matting by a rembg ONNX session (BiRefNet, ISNet, u2net) from the model folder;
- ``classic``: no weights, for studio shots on plain light backgrounds;
- ``tiny``: a randomly initialised small SAM built from the package's own classes (tests);
- ``auto``: ``sam`` when a checkpoint is configured, else ``rembg`` when it is installed and its model
  file is in the model folder, else ``classic`` (said in ``Cutout.notes``). A SAM checkpoint is an
  explicit setting, while a rembg file may only be left over in rembg's folder, so SAM comes first.

Every backend turns an RGB ``HxWx3 uint8`` photo into a :class:`Cutout` (RGBA, straight alpha, edge
band matted and color-corrected when ``refine_edges`` is on), with a confidence and the reasons a
person should review it (:mod:`stages.segment.confidence`).

A backend whose model runs on a GPU may also split its cut so that only the model call holds the card
(SAM does, :mod:`stages.segment.sam_draft`): ``prompt(image, box)``, the CPU work before the model;
``draft_batch(images, boxes, prompts)``, the model call for several photos, a :class:`Draft` each; and
``Draft.finish(image)``, the CPU work after it (edge refinement included). :func:`model_prompt` and
:func:`model_batch` use the split where a backend has it and fall back to one ``segment`` call per
photo (classic, rembg); :func:`model_batch_size` says how many photos one call should get.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from packshot.backends import BackendSpec, BackendTable
from packshot.types import Cutout
from stages.segment.estimate import Box
from stages.segment.settings import SegmentSettings

__all__ = ["BACKENDS", "Box", "Draft", "Segmenter", "get_segmenter", "model_batch", "model_batch_size",
           "model_prompt"]


class Segmenter(Protocol):
    """A segment backend (:class:`packshot.backends.Backend` plus the two calls)."""

    name: str
    identity: str
    licence: str
    generated: bool

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout: ...

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]: ...


class Draft(Protocol):
    """A cut decided by a model but not finished: plain data (it pickles); ``finish`` is CPU work."""

    notes: list[str]  # said after the backend's own notes

    def finish(self, image: np.ndarray) -> Cutout:
        """The cutout of ``image``, the RGB ``HxWx3 uint8`` photo the draft was made for."""
        ...


class _Noted:
    """Wraps a backend and adds notes to every cutout (how ``auto`` reports its choice)."""

    def __init__(self, inner: Segmenter, notes: list[str]):
        self.inner, self.notes = inner, notes
        self.name, self.identity, self.licence = inner.name, inner.identity, inner.licence
        self.generated = False
        if hasattr(inner, "draft_batch"):  # offered only where the backend offers it (model_batch)
            self.prompt, self.draft_batch = inner.prompt, self._draft_batch

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout:
        cutout = self.inner.segment(image, box)
        cutout.notes.extend(self.notes)
        return cutout

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]:
        cutouts = self.inner.segment_batch(images, boxes)
        for cutout in cutouts:
            cutout.notes.extend(self.notes)
        return cutouts

    def _draft_batch(self, images: list[np.ndarray], boxes: list[Box | None],
                     prompts: list | None = None) -> list[Draft]:
        drafts = self.inner.draft_batch(images, boxes, prompts)
        for draft in drafts:
            draft.notes.extend(self.notes)
        return drafts


def _classic(settings: SegmentSettings, device: str) -> Segmenter:
    from stages.segment.classic import ClassicSegmenter

    return ClassicSegmenter(settings)


def _sam(settings: SegmentSettings, device: str) -> Segmenter:
    from stages.segment.sam import SamSegmenter

    return SamSegmenter(settings, device)


def _rembg(settings: SegmentSettings, device: str) -> Segmenter:
    from stages.segment.rembg_backend import RembgSegmenter

    return RembgSegmenter(settings, device)


def _rembg_unavailable(settings: SegmentSettings) -> str | None:
    from stages.segment.rembg_backend import unavailable

    return unavailable(settings)


def _rembg_licence(settings: SegmentSettings) -> str:
    """BiRefNet's weights are MIT, IS-Net's and U^2-Net's Apache-2.0 (stages.segment.rembg_backend)."""
    return "mit" if settings.rembg_model.startswith("birefnet") else "apache-2.0"


def _tiny(settings: SegmentSettings, device: str) -> Segmenter:
    from stages.segment.sam import SamSegmenter

    return SamSegmenter(settings, device, tiny=True)


BACKENDS: BackendTable[SegmentSettings, Segmenter] = BackendTable("segment", "PACKSHOT_SEGMENT__BACKEND")
SAM_MODULES = ("torch", "segment_anything")  # the "generative" extra
BACKENDS.register(BackendSpec(
    "sam", _sam, "Segment Anything with the checkpoint in PACKSHOT_SEGMENT__SAM_CHECKPOINT",
    unavailable=lambda s: None if s.sam_checkpoint else "no SAM checkpoint configured",
    licence="apache-2.0", extra="generative", modules=SAM_MODULES,
))
BACKENDS.register(BackendSpec(
    "rembg", _rembg, "learned matting (BiRefNet, ISNet, u2net) by rembg's ONNX sessions, model file in "
    "PACKSHOT_SEGMENT__REMBG_MODEL_DIR", unavailable=_rembg_unavailable,
    extra="rembg", modules=("rembg", "onnxruntime"), licence=_rembg_licence,
))
BACKENDS.register(BackendSpec("classic", _classic, "no weights, for studio shots on plain light backgrounds"))
BACKENDS.register(BackendSpec("tiny", _tiny, "a random-weight small SAM (tests)", auto=False, licence="test",
                              extra="generative", modules=SAM_MODULES))


def model_prompt(segmenter: Segmenter, image: np.ndarray, box: Box | None) -> object | None:
    """The CPU work ``segmenter`` does before its model call on ``image`` (SAM: the foreground estimate and
    the prompts), for a thread that does not hold the card; None for a backend without that split."""
    prompt = getattr(segmenter, "prompt", None)
    return prompt(image, box) if prompt is not None else None


def model_batch(segmenter: Segmenter, images: list[np.ndarray], boxes: list[Box | None],
                prompts: list | None = None) -> list[Draft | Cutout]:
    """The part of cutting out ``images`` (RGB ``HxWx3 uint8``) that needs ``segmenter``'s model, one
    result per image: a :class:`Draft` (finish it with ``Draft.finish``, CPU only) from a backend with
    ``draft_batch`` (``prompts`` from :func:`model_prompt`, None each where not made yet), else the
    finished :class:`Cutout`, one ``segment`` call per image (such a backend gets one image a call:
    :func:`model_batch_size`)."""
    draft_batch = getattr(segmenter, "draft_batch", None)
    if draft_batch is None:
        return [segmenter.segment(image, box) for image, box in zip(images, boxes, strict=True)]
    return draft_batch(images, boxes, prompts)


def model_batch_size(segmenter: Segmenter) -> int:
    """Photos per :func:`model_batch` call: the backend's own batch (SAM: ``PACKSHOT_SEGMENT__BATCH_SIZE``,
    images per encoder call) where it batches its model, else 1 (a batch would only be a loop)."""
    inner = segmenter.inner if type(segmenter) is _Noted else segmenter
    return max(1, int(getattr(inner, "embed_batch", 1))) if hasattr(inner, "draft_batch") else 1


def get_segmenter(settings: SegmentSettings, device: str = "cpu") -> Segmenter:
    """The backend ``settings.backend`` names; model weights load once per process (registry)."""
    segmenter, notes = BACKENDS.create(settings.backend, settings, device)
    return _Noted(segmenter, notes) if notes else segmenter
