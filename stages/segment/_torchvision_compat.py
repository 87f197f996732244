"""Stand-ins for the four torchvision functions segment-anything imports, for CPU installs only.

segment-anything imports torchvision without declaring it, and PyPI has no CPU torchvision build
for torch 2.13.0 (the CUDA one fails on CPU torch with ``operator torchvision::nms does not
exist``). SAM uses exactly: ``transforms.functional.resize`` and ``to_pil_image`` (to resize the
input image in ``ResizeLongestSide.apply_image``) and ``ops.boxes.batched_nms`` and ``box_area``
(in the automatic mask generator, which packshot does not use, provided for completeness).

:func:`import_segment_anything` registers minimal equivalents in ``sys.modules``, only when
``import torchvision`` fails and only for the duration of the import; GPU installs
(``pip install packshot[gpu]``) get the real package and
this module does nothing there. The resize matches torchvision's PIL path: bilinear with PIL's
antialiasing, size given as (height, width).
"""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import torch
from PIL import Image


def to_pil_image(pic: np.ndarray | torch.Tensor) -> Image.Image:
    """HxWxC uint8 array (or CxHxW tensor) to a PIL image, as torchvision does for these inputs."""
    if isinstance(pic, torch.Tensor):
        pic = pic.detach().cpu().numpy().transpose(1, 2, 0)
    array = np.asarray(pic)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def resize(img: Image.Image, size: list[int] | tuple[int, int], *args, **kwargs) -> Image.Image:
    """Resize a PIL image to ``size`` = (height, width) with bilinear filtering."""
    height, width = size
    return img.resize((int(width), int(height)), Image.BILINEAR)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of ``Nx4`` boxes in (x0, y0, x1, y1) format."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    order = torch.argsort(scores, descending=True)
    areas = box_area(boxes)
    keep = []
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        top_left = torch.maximum(boxes[i, :2], boxes[:, :2])
        bottom_right = torch.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        iou = inter / (areas[i] + areas - inter).clamp(min=1e-9)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Greedy NMS within each category of ``idxs``; indices of kept boxes, by decreasing score."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    # offset each category's boxes so boxes of different categories never overlap (torchvision's trick)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return _nms(boxes + offsets[:, None], scores, iou_threshold)


def import_segment_anything() -> types.ModuleType:
    """Import ``segment_anything``, with stand-ins for torchvision only if the real one cannot load.

    The stand-ins live in ``sys.modules`` only during the import (segment-anything binds the
    functions at import time): left there, they would make other libraries (transformers, diffusers)
    believe torchvision is installed.
    """
    if "segment_anything" in sys.modules:
        return sys.modules["segment_anything"]
    try:
        importlib.import_module("torchvision")
    except Exception:  # missing, or a CUDA build whose operators fail to register on CPU torch
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
    else:
        return importlib.import_module("segment_anything")
    stand_ins = _stand_in_modules()
    sys.modules.update(stand_ins)
    try:
        return importlib.import_module("segment_anything")
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)


def uses_stand_ins() -> bool:
    """True when the loaded segment-anything resizes images with the stand-in (no real torchvision)."""
    transforms = sys.modules.get("segment_anything.utils.transforms")
    return transforms is not None and transforms.resize is resize


def _stand_in_modules() -> dict[str, types.ModuleType]:
    modules = {
        name: types.ModuleType(name)
        for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
                     "torchvision.ops", "torchvision.ops.boxes")
    }
    functional, boxes = modules["torchvision.transforms.functional"], modules["torchvision.ops.boxes"]
    functional.resize, functional.to_pil_image = resize, to_pil_image
    boxes.batched_nms, boxes.box_area = batched_nms, box_area
    modules["torchvision.ops"].boxes = boxes
    modules["torchvision.transforms"].functional = functional
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision"].ops = modules["torchvision.ops"]
    return modules
