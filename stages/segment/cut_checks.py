"""Checks on a finished cutout against its photo: was part of the product left outside the cut?

These look at the final mask (after edge refinement and shadow removal), so they judge what a
merchant gets, whichever backend made it. Each measures something a damaged cut leaves in the photo
outside it, where a good studio cut leaves plain backdrop (smooth, at most a soft shadow):

- ``outer_edge``: a second step edge 3-6 px outside the cut, parallel to it. A cut that follows an
  inner edge (a mirror rim's dark body, a shoe's piping) leaves the product's real outline beyond
  it; a good cut has backdrop there, and a shadow fades far too softly to make a step.
- ``stray_edges``: step edges farther out (over 10 px, past JPEG ringing) than the cut, per pixel
  of its outline. Outside a good cut the backdrop has no edges at all; the laces and upper of a
  shoe whose sole alone was kept, or the seams of a garment whose print alone was kept, have many.
- ``surrounded``: the photo both just outside the cut and 20-30 px further out is far from the
  backdrop. A drop or contact shadow fades within that distance; the rest of a product the cut left
  out does not.
- ``border_texture``: fine detail along the photo's border (wood grain, tiles, carpet). Unlike the
  distance to a smooth fit, it ignores smooth unevenness that is normal in a studio (the bend of
  a seamless sweep, a light falloff): a sweep is smooth at any scale, a table top is not.

The product's base (its lowest 15% of height, at least 5% of the photo: a contact shadow's edge
lies there) and the frame's edge (frame contact is its own check) are left out of the first three.
"""

from __future__ import annotations

import cv2
import numpy as np

from stages.segment.confidence import border_ring
from stages.segment.estimate import fit_backdrop, working_copy

CHECK_SIDE = 1600  # px: the long side measured at (a mirror rim 5 px wide at this size is seen)
STEP = 5.0  # Lab units per px: a step edge (a shadow's fade is under 1, a product's outline several)
STRAY_STEP = 4.0  # Lab units per px: an edge in the backdrop (sensor noise after a 0.7 px blur: under 1)


def cut_values(image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """``outer_edge``, ``stray_edges``, ``surrounded`` and ``border_texture`` of a cutout.

    ``image``: the photo, RGB ``HxWx3 uint8``; ``mask``: the final cutout, ``HxW`` bool (alpha >= 128).
    An empty or full mask gives only ``border_texture``.
    """
    values = {"border_texture": border_texture(image)}
    image, scale = working_copy(image, CHECK_SIDE)
    if scale != 1.0:
        h, w = image.shape[:2]
        mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    if not mask.any() or mask.all():
        return values
    lab, distance = _lab_and_distance(image)
    gradient = _gradient(lab)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    sides = _sides_and_top(mask)
    near = (outside >= 3) & (outside <= 6) & sides
    if near.any():
        values["outer_edge"] = float((gradient[near] > STEP).mean())
    outline = mask & ~(cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    stray = (outside > 10) & sides & (gradient > STRAY_STEP)
    values["stray_edges"] = float(stray.sum() / max(int(outline.sum()), 1))
    close, further = (outside >= 2) & (outside <= 5) & sides, (outside >= 20) & (outside <= 30) & sides
    if close.any() and further.any():
        values["surrounded"] = float(min(np.median(distance[close]), np.median(distance[further])))
    return values


def border_texture(image: np.ndarray, frac: float = 0.04) -> float:
    """Fine detail along the frame: the 75th percentile, over the outer ``frac`` of the photo (at a
    640 px working size), of the Lab difference between 1 px and 3 px Gaussian blurs of it.

    The 1 px blur removes sensor noise (it is uncorrelated from pixel to pixel: 2.5 levels of it
    leave about 0.6); grain, tiles and weave are a few pixels wide and stay. Studio backdrops
    (plain, graded, a sweep's bend) measure under about 0.4, wood and tiles 1-6.
    """
    small, _ = working_copy(image, 640)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    detail = np.linalg.norm(cv2.GaussianBlur(lab, (0, 0), 1.0) - cv2.GaussianBlur(lab, (0, 0), 3.0), axis=2)
    return float(np.percentile(detail[border_ring(detail.shape, frac)], 75))


def _lab_and_distance(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lab of ``image`` (``HxWx3 float32``) and its distance to a smooth backdrop fitted to the border."""
    small, _ = working_copy(image, 256)
    h, w = image.shape[:2]
    backdrop = cv2.resize(fit_backdrop(small), (w, h), interpolation=cv2.INTER_LINEAR)
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lab_backdrop = cv2.cvtColor(backdrop / 255.0, cv2.COLOR_RGB2LAB)
    return lab, np.linalg.norm(lab - lab_backdrop, axis=2)


def _gradient(lab: np.ndarray) -> np.ndarray:
    """Lab gradient magnitude per px (``HxW float32``), after a 0.7 px blur against sensor noise."""
    total = np.zeros(lab.shape[:2], np.float32)
    for c in range(3):
        channel = cv2.GaussianBlur(np.ascontiguousarray(lab[..., c]), (0, 0), 0.7)
        gx, gy = cv2.Sobel(channel, cv2.CV_32F, 1, 0) / 8, cv2.Sobel(channel, cv2.CV_32F, 0, 1) / 8
        total += gx**2 + gy**2
    return np.sqrt(total)


def _sides_and_top(mask: np.ndarray) -> np.ndarray:
    """``HxW`` bool: off the frame's edge and above the product's base (its lowest 15% of height, at
    least 5% of the photo), where a contact shadow lies next to the cut."""
    keep = ~border_ring(mask.shape, 0.01)  # the frame's edge
    ys = np.nonzero(mask)[0]
    top, bottom = int(ys.min()), int(ys.max())
    keep[int(bottom - max(0.15 * (bottom - top), 0.05 * mask.shape[0])) :] = False
    return keep
