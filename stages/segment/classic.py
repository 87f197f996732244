"""Weight-free cutout for studio shots on plain light backgrounds.

Estimate the background color from the image border, threshold the color distance to seed a
trimap, refine with GrabCut, then keep the connected product parts.
"""

from __future__ import annotations

import cv2
import numpy as np

from packshot.config import SegmentSettings
from packshot.types import Cutout


class ClassicSegmenter:
    name = "classic"

    def __init__(self, settings: SegmentSettings):
        self.settings = settings

    def segment(self, image: np.ndarray, box=None) -> Cutout:
        alpha = classic_alpha(image, box)
        return Cutout(np.dstack([image, alpha]), backend=self.name)

    def segment_batch(self, images, boxes):
        return [self.segment(im, b) for im, b in zip(images, boxes, strict=True)]


def classic_alpha(image: np.ndarray, box=None) -> np.ndarray:
    h, w = image.shape[:2]
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[:4].reshape(-1, 3), lab[-4:].reshape(-1, 3),
                             lab[:, :4].reshape(-1, 3), lab[:, -4:].reshape(-1, 3)])
    bg = np.median(border, axis=0)
    dist = np.linalg.norm(lab - bg, axis=2)
    mask = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    mask[dist > 18] = cv2.GC_PR_FGD
    mask[dist > 40] = cv2.GC_FGD
    mask[dist < 6] = cv2.GC_BGD
    if box is not None:
        x0, y0, x1, y1 = box
        outside = np.ones((h, w), bool)
        outside[y0:y1, x0:x1] = False
        mask[outside] = cv2.GC_BGD
    if (mask == cv2.GC_FGD).sum() and (mask == cv2.GC_BGD).sum():
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(image[..., ::-1].copy(), mask, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8) * 255
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.GaussianBlur(fg, (3, 3), 0)
