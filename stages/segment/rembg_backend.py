"""rembg backend: learned matting (BiRefNet, ISNet, u2net ONNX sessions) run by onnxruntime.

The session is rembg's own (``rembg.sessions``: its preprocessing, ``predict`` and resizing), loaded
once per process through ``packshot.registry.models`` from the user's model folder
(``PACKSHOT_SEGMENT__REMBG_MODEL_DIR``, else rembg's folder). A missing file is an error that says
where to get it; rembg downloads it only when ``PACKSHOT_SEGMENT__REMBG_ALLOW_DOWNLOAD`` is on.

The model's soft alpha is the matte. The product's pixels stay the photo's bytes wherever alpha is
255; only partly transparent edge pixels get estimated foreground colors (pymatting), so the cutout
composites without a fringe. A catalog box is a hint: the model sees the box grown by a margin
(more pixels on the product), and a cutout that runs along the grown box's edge is flagged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pymatting import estimate_foreground_ml

from packshot.errors import ModelUnavailableError
from packshot.extras import require
from packshot.registry import models
from packshot.types import Cutout
from stages.segment.cleanup import keep_product_parts
from stages.segment.confidence import CLASSIC_CHECKS, Check, frame_contact, judge
from stages.segment.estimate import Box
from stages.segment.refine import MARGIN_PX, TILE_PX
from stages.segment.settings import SegmentSettings

log = logging.getLogger(__name__)

MODEL_DIR_SETTING = "PACKSHOT_SEGMENT__REMBG_MODEL_DIR"
BOX_MARGIN = 0.10  # the catalog box grows by this share of its size on each side before the model sees it
HAZE, SOLID = 6, 249  # alpha at or below HAZE is background haze, at or above SOLID is solid product
SUPPORT_PX = 6  # soft alpha farther than this from a kept product part is dropped (specks, haze)
MIN_JUDGED_SIDE = 32  # px, as for classic: smaller photos get one review reason instead of the checks

RELEASES = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/"


@dataclass(frozen=True)
class RembgModel:
    """One rembg session we offer: its licence (shown in the run report) and its published file."""

    licence: str
    file: str  # the file name in rembg's release; saved locally as <session name>.onnx
    input_px: int  # the square size rembg resizes every photo to


_BIREFNET = "MIT (BiRefNet, github.com/ZhengPeng7/BiRefNet)"
REMBG_MODELS = {
    "birefnet-general": RembgModel(_BIREFNET, "BiRefNet-general-epoch_244.onnx", 1024),
    "birefnet-general-lite": RembgModel(_BIREFNET, "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx", 1024),
    "birefnet-massive": RembgModel(_BIREFNET, "BiRefNet-massive-TR_DIS5K_TR_TEs-epoch_420.onnx", 1024),
    "isnet-general-use": RembgModel("Apache-2.0 (IS-Net/DIS, github.com/xuebinqin/DIS)",
                                    "isnet-general-use.onnx", 1024),
    "u2net": RembgModel("Apache-2.0 (U^2-Net, github.com/xuebinqin/U-2-Net)", "u2net.onnx", 320),
    "u2netp": RembgModel("Apache-2.0 (U^2-Net small, github.com/xuebinqin/U-2-Net)", "u2netp.onnx", 320),
}

REMBG_CHECKS = {
    "stability": Check(0.92, 0.75, "the model is unsure where the product ends (only {value:.0%} of what it "
                       "half-believes is product is solid): check the edges"),
    "frame_contact": CLASSIC_CHECKS["frame_contact"],
    "box_contact": Check(0.02, 0.10, "the cutout runs along the edge of the catalog's box on {value:.0%} of "
                         "it: the product may continue outside the box (widen or drop the row's bbox)"),
    "coverage": CLASSIC_CHECKS["coverage"],
    "kept_share": CLASSIC_CHECKS["kept_share"],
}


def model_folders(settings: SegmentSettings) -> list[Path]:
    """Where the model file is looked for: the setting, else rembg's current and legacy folders.

    rembg's own order (rembg.sessions.base): ``U2NET_HOME`` wins, then ``REMBG_HOME``, then
    ``$XDG_DATA_HOME/rembg`` or ``~/.rembg``; older rembg versions kept files in ``~/.u2net``.
    """
    if settings.rembg_model_dir is not None:
        return [Path(settings.rembg_model_dir).expanduser()]
    xdg = os.getenv("XDG_DATA_HOME")
    legacy = os.getenv("U2NET_HOME") or os.path.join(xdg or "~", ".u2net")
    home = os.getenv("U2NET_HOME") or os.getenv("REMBG_HOME") or (
        os.path.join(xdg, "rembg") if xdg else os.path.join("~", ".rembg"))
    folders = [Path(home).expanduser(), Path(legacy).expanduser()]
    return list(dict.fromkeys(folders))


def model_file(settings: SegmentSettings) -> Path | None:
    """The configured model's ``.onnx`` file in the first folder that has it (rembg's two layouts)."""
    name = settings.rembg_model
    for folder in model_folders(settings):
        for path in (folder / "models" / name / f"{name}.onnx", folder / f"{name}.onnx"):
            if path.is_file():
                return path
    return None


def unavailable(settings: SegmentSettings) -> str | None:
    """Why ``auto`` cannot use rembg's model (its file is missing), or None. The table checks the extra."""
    if model_file(settings) is None:
        where = " or ".join(str(f) for f in model_folders(settings))
        return f"no {settings.rembg_model}.onnx in {where}"
    return None


def _model_help(settings: SegmentSettings) -> str:
    name = settings.rembg_model
    folder = model_folders(settings)[0]
    return (f"Download {RELEASES}{REMBG_MODELS[name].file} and save it as {folder / (name + '.onnx')} "
            f"(or set {MODEL_DIR_SETTING} to the folder that has it; PACKSHOT_SEGMENT__REMBG_MODEL picks "
            f"another model; PACKSHOT_SEGMENT__REMBG_ALLOW_DOWNLOAD=true lets rembg fetch it). Or set "
            f"PACKSHOT_SEGMENT__BACKEND=classic to cut out studio shots without weights.")


def onnx_providers(device: str) -> tuple[list, str | None]:
    """onnxruntime providers for ``device`` ("cpu", "cuda", "cuda:1") and a note when CUDA is missing.

    rembg's users most often hit a GPU that silently falls back to the CPU: say so in every cutout.
    """
    import onnxruntime as ort

    if not str(device).startswith("cuda"):
        return ["CPUExecutionProvider"], None
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return ["CPUExecutionProvider"], ("rembg: this onnxruntime has no CUDA provider (install "
                                          "onnxruntime-gpu instead of onnxruntime): the model ran on the CPU")
    index = int(device.split(":")[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"], None


def load_session(settings: SegmentSettings, device: str):
    """rembg's session for ``settings.rembg_model``, reading the file from the model folder.

    The session class is rembg's own with its two folder look-ups pointed at our folder, so its
    preprocessing and ``predict`` run unchanged; rembg downloads only when the settings allow it.
    """
    sessions = require("rembg.sessions", "rembg", "PACKSHOT_SEGMENT__BACKEND=rembg")
    require("onnxruntime", "rembg", "PACKSHOT_SEGMENT__BACKEND=rembg")
    import onnxruntime as ort

    name = settings.rembg_model
    path = model_file(settings)
    if path is None and not settings.rembg_allow_download:
        raise ModelUnavailableError(f"rembg model file {name}.onnx is missing. {_model_help(settings)}")
    if path is None:
        folder = model_folders(settings)[0]  # rembg downloads into <folder>/models/<name>/
    elif path.parent.name == name and path.parent.parent.name == "models":
        folder = path.parents[2]  # rembg's layout: <folder>/models/<name>/<name>.onnx
    else:
        folder = path.parent  # flat: <folder>/<name>.onnx (rembg's legacy layout)
    base = next(c for c in sessions.sessions_class if c.name() == name)

    class FolderSession(base):  # rembg's session, reading from (or downloading into) our folder
        @classmethod
        def rembg_home(cls, *args, **kwargs):
            return str(folder)

        @classmethod
        def legacy_home(cls, *args, **kwargs):
            return str(folder)

    providers, _ = onnx_providers(device)
    try:
        return FolderSession(name, ort.SessionOptions(), providers=providers)
    except Exception as exc:  # onnxruntime raises its own types for truncated or foreign files
        raise ModelUnavailableError(
            f"rembg model {path or name} could not be loaded ({type(exc).__name__}: {str(exc)[:160]}). "
            f"{_model_help(settings)}"
        ) from None


class RembgSegmenter:
    """Cutouts by a rembg ONNX session; a soft alpha matte with the photo's own pixels."""

    generated = False
    name = "rembg"

    def __init__(self, settings: SegmentSettings, device: str = "cpu"):
        self.settings, self.device = settings, device
        model = settings.rembg_model
        self.licence = f"{REMBG_MODELS[model].licence}; run by rembg (MIT) and onnxruntime (MIT)"
        _, self.provider_note = onnx_providers(device)
        path = model_file(settings)
        size = path.stat().st_size if path is not None else 0
        self.identity = f"rembg {model} {size} bytes"
        key = f"segment:rembg:{model}:{path}:{device}"
        self.session = models.get(key, lambda: load_session(settings, device), size_hint=size,
                                  identity=self.identity)
        if path is None and (fetched := model_file(settings)) is not None:  # rembg downloaded it just now
            self.identity = f"rembg {model} {fetched.stat().st_size} bytes"
        actual = self.session.inner_session.get_providers()
        fell_back = str(device).startswith("cuda") and "CUDAExecutionProvider" not in actual
        if fell_back and not self.provider_note:
            self.provider_note = ("rembg: onnxruntime could not start CUDA (see its log above: CUDA or cuDNN "
                                  "libraries missing?): the model ran on the CPU")
        if self.provider_note:
            log.warning(self.provider_note)

    def segment(self, image: np.ndarray, box: Box | None = None) -> Cutout:
        """``image``: RGB ``HxWx3 uint8``; ``box``: the catalog's (x0, y0, x1, y1) or None."""
        h, w = image.shape[:2]
        notes = [f"rembg: {self.settings.rembg_model}"]
        if self.provider_note:
            notes.append(self.provider_note)
        x0, y0, x1, y1 = _grown_box(box, (h, w))
        if (x0, y0, x1, y1) != (0, 0, w, h):
            notes.append(f"rembg: the model saw the catalog box grown by {BOX_MARGIN:.0%} per side")
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        with np.errstate(invalid="ignore", divide="ignore"):  # rembg divides by max - min: 0 on a blank photo
            predicted = np.asarray(self.session.predict(Image.fromarray(crop))[0].convert("L"), np.uint8)
        alpha = np.zeros((h, w), np.uint8)
        alpha[y0:y1, x0:x1] = clean_alpha(predicted)
        rgba = np.dstack([image, alpha])
        if self.settings.refine_edges:
            decontaminate(rgba)
        if min(h, w) < MIN_JUDGED_SIDE:
            confidence = 0.0
            reasons = [f"segment: the photo is only {w}x{h} px, too small to check its cutout"]
        else:
            confidence, reasons = judge(rembg_values(alpha, (x0, y0, x1, y1)), REMBG_CHECKS)
        return Cutout(rgba, backend=self.name, notes=notes, confidence=confidence, review_reasons=reasons)

    def segment_batch(self, images: list[np.ndarray], boxes: list[Box | None]) -> list[Cutout]:
        return [self.segment(im, b) for im, b in zip(images, boxes, strict=True)]


def _grown_box(box: Box | None, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The catalog box grown by :data:`BOX_MARGIN` per side, clamped to the photo (whole photo if None)."""
    h, w = shape
    if box is None:
        return 0, 0, w, h
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * BOX_MARGIN, (y1 - y0) * BOX_MARGIN
    return (max(0, int(x0 - mx)), max(0, int(y0 - my)), min(w, int(np.ceil(x1 + mx))),
            min(h, int(np.ceil(y1 + my))))


def clean_alpha(alpha: np.ndarray) -> np.ndarray:
    """The model's ``HxW uint8`` alpha with haze and specks dropped and near-solid snapped to solid.

    Parts smaller than a speck (or than 2% of the largest part) and soft alpha farther than
    :data:`SUPPORT_PX` from a kept part become transparent.
    """
    out = alpha.copy()
    out[out <= HAZE] = 0
    out[out >= SOLID] = 255
    parts = keep_product_parts(out >= 128)
    if not parts.any():
        return out
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * SUPPORT_PX + 1, 2 * SUPPORT_PX + 1))
    support = cv2.dilate(parts.astype(np.uint8), kernel) > 0
    out[~support | ((out >= 128) & ~parts)] = 0
    return out


def decontaminate(rgba: np.ndarray) -> None:
    """Replace the photo's colors by estimated foreground colors where alpha is partial (in place).

    ``rgba``: ``HxWx4 uint8``. Pixels with alpha 0 or 255 keep the photo's bytes. Works on tiles
    around the partial pixels, so the cost follows the outline's length.
    """
    alpha = rgba[..., 3]
    partial = (alpha > 0) & (alpha < 255)
    h, w = alpha.shape
    for ty in range(0, h, TILE_PX):
        for tx in range(0, w, TILE_PX):
            core = partial[ty : ty + TILE_PX, tx : tx + TILE_PX]
            if not core.any():
                continue
            y0, y1 = max(ty - MARGIN_PX, 0), min(ty + TILE_PX + MARGIN_PX, h)
            x0, x1 = max(tx - MARGIN_PX, 0), min(tx + TILE_PX + MARGIN_PX, w)
            crop = rgba[y0:y1, x0:x1, :3].astype(np.float64) / 255.0
            fg = estimate_foreground_ml(crop, alpha[y0:y1, x0:x1] / 255.0, n_small_iterations=4,
                                        n_big_iterations=1)
            inner = (slice(ty - y0, ty - y0 + core.shape[0]), slice(tx - x0, tx - x0 + core.shape[1]))
            target = rgba[ty : ty + core.shape[0], tx : tx + core.shape[1], :3]
            target[core] = np.clip(fg[inner][core] * 255.0 + 0.5, 0, 255).astype(np.uint8)


def rembg_values(alpha: np.ndarray, crop: tuple[int, int, int, int]) -> dict[str, float]:
    """Measured values for :data:`REMBG_CHECKS` from the final ``HxW uint8`` alpha.

    ``crop``: the part of the photo the model saw (x0, y0, x1, y1). Stability is the share of the
    pixels the model half-believes are product (alpha >= 64) that it is sure of (alpha >= 192), as
    SAM's stability score does with its logits.
    """
    solid, loose = alpha >= 192, alpha >= 64
    product = alpha >= 128
    values = {"coverage": float(product.mean()), "kept_share": float(product.mean())}
    values["stability"] = float(solid.sum() / loose.sum()) if loose.any() else 0.0
    values["frame_contact"] = frame_contact(product)
    x0, y0, x1, y1 = crop
    h, w = alpha.shape
    inner_edges = []  # the grown box's sides that lie inside the photo (a side on the frame is frame contact)
    if x0 > 0:
        inner_edges.append(product[y0:y1, x0])
    if x1 < w:
        inner_edges.append(product[y0:y1, x1 - 1])
    if y0 > 0:
        inner_edges.append(product[y0, x0:x1])
    if y1 < h:
        inner_edges.append(product[y1 - 1, x0:x1])
    if inner_edges:
        values["box_contact"] = float(np.concatenate(inner_edges).mean())
    return values
