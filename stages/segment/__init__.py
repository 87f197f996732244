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

A backend whose model runs on a GPU may also offer ``draft_batch`` (SAM does): the same cut without its
edge refinement, as :class:`~stages.segment.draft.Draft` objects finished later on the CPU, so the card
is not held while the CPU mattes edges. :func:`model_batch` calls it where it exists and falls back to
``segment_batch`` (classic, rembg); :func:`model_batch_size` says how many photos one call should get.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from packshot.backends import BackendSpec, BackendTable
from packshot.types import Cutout
from stages.segment.estimate import Box
from stages.segment.settings import SegmentSettings

if TYPE_CHECKING:  # pymatting (numba) loads with the backends that refine, not with this table
    from stages.segment.draft import Draft

__all__ = ["BACKENDS", "Box", "Segmenter", "get_segmenter", "model_batch", "model_batch_size"]


class Segmenter(Protocol):
    """A segment backend (:class:`packshot.backends.Backend` plus the two calls)."""

    name: str
    identity: str
    licence: str
    generated: bool

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout: ...

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]: ...


class _Noted:
    """Wraps a backend and adds notes to every cutout (how ``auto`` reports its choice)."""

    def __init__(self, inner: Segmenter, notes: list[str]):
        self.inner, self.notes = inner, notes
        self.name, self.identity, self.licence = inner.name, inner.identity, inner.licence
        self.generated = False
        if hasattr(inner, "draft_batch"):  # offered only where the backend offers it (model_batch)
            self.draft_batch = self._draft_batch

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout:
        cutout = self.inner.segment(image, box)
        cutout.notes.extend(self.notes)
        return cutout

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]:
        cutouts = self.inner.segment_batch(images, boxes)
        for cutout in cutouts:
            cutout.notes.extend(self.notes)
        return cutouts

    def _draft_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Draft]:
        drafts = self.inner.draft_batch(images, boxes)
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


def model_batch(segmenter: Segmenter, images: list[np.ndarray],
                boxes: list[Box | None]) -> list[Draft | Cutout]:
    """The part of cutting out ``images`` (RGB ``HxWx3 uint8``) that needs ``segmenter``'s model, one
    result per image: a :class:`Draft` (finish it with :meth:`Draft.finish`, CPU only) from a backend with
    ``draft_batch``, else the finished :class:`Cutout` (``segment_batch``)."""
    draft_batch = getattr(segmenter, "draft_batch", None)
    return draft_batch(images, boxes) if draft_batch is not None else segmenter.segment_batch(images, boxes)


def model_batch_size(segmenter: Segmenter) -> int:
    """Photos per :func:`model_batch` call: the backend's own batch (SAM: ``PACKSHOT_SEGMENT__BATCH_SIZE``,
    images per encoder call) where it batches its model, else 1 (a batch would only be a loop)."""
    inner = segmenter.inner if type(segmenter) is _Noted else segmenter
    return max(1, int(getattr(inner, "embed_batch", 1))) if hasattr(inner, "draft_batch") else 1


def get_segmenter(settings: SegmentSettings, device: str = "cpu") -> Segmenter:
    """The backend ``settings.backend`` names; model weights load once per process (registry)."""
    segmenter, notes = BACKENDS.create(settings.backend, settings, device)
    return _Noted(segmenter, notes) if notes else segmenter
