"""A row's bbox is a hint, not a crop (issue 20): parts past it are kept, a cut along it is flagged."""

from __future__ import annotations

import cv2
import numpy as np

from stages.segment import get_segmenter
from stages.segment.cleanup import keep_product_parts
from stages.segment.confidence import box_edge_contact, box_edge_reasons
from stages.segment.settings import SegmentSettings


def _bag(h: int = 320, w: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A dark bag body with two side straps sticking out 18 px on a light backdrop: (rgb, truth)."""
    truth = np.zeros((h, w), np.uint8)
    cv2.rectangle(truth, (130, 80), (270, 260), 255, -1)  # body
    cv2.rectangle(truth, (112, 120), (135, 240), 255, -1)  # left strap
    cv2.rectangle(truth, (265, 120), (288, 240), 255, -1)  # right strap
    rng = np.random.default_rng(0)
    rgb = np.full((h, w, 3), 240.0) + rng.normal(0, 1.2, (h, w, 3))
    rgb[truth > 0] = (70, 80, 45)
    rgb = cv2.GaussianBlur(np.clip(rgb, 0, 255).astype(np.uint8), (3, 3), 0)
    return rgb, truth > 0


def _segment(rgb, box):
    return get_segmenter(SegmentSettings(backend="classic", refine_edges=False)).segment(rgb, box)


def test_straps_past_a_tight_box_are_cut_out_and_the_box_is_noted():
    rgb, truth = _bag()
    box = (128, 70, 273, 270)  # the body only: the straps stick out left and right
    cutout = _segment(rgb, box)
    got = cutout.alpha >= 128
    assert (got & truth).sum() / (got | truth).sum() > 0.97
    assert got[180, 115] and got[180, 285]  # both straps, past the box
    assert not cutout.review_reasons  # the product ends inside the widened search: nothing to doubt
    assert any("left and right edge of the row's bbox" in n for n in cutout.notes)


def test_a_cut_along_the_box_edge_names_that_edge():
    rgb, _ = _bag()
    box = (180, 70, 220, 270)  # far too narrow: even widened, it cuts through the body left and right
    cutout = _segment(rgb, box)
    assert cutout.needs_review
    (reason,) = [r for r in cutout.review_reasons if "runs along" in r]
    assert "left and right edges" in reason and "widen the row's bbox" in reason


def test_box_edge_contact_ignores_a_side_on_the_photo_border():
    mask = np.zeros((100, 100), bool)
    mask[20:100, 30:70] = True  # stands on the photo's bottom edge, which is also the box's
    contact = box_edge_contact(mask, (30, 10, 70, 100))
    assert "bottom" not in contact
    assert contact["left"] > 0.5 and contact["right"] > 0.5 and contact["top"] == 0.0
    assert box_edge_reasons({"top": 0.0, "left": 0.01}) == []


def test_a_handle_apart_from_the_body_is_kept_but_a_far_fleck_is_not():
    mask = np.zeros((600, 500), bool)
    mask[150:550, 100:400] = True  # body: 120,000 px
    cv2.ellipse(mask.view(np.uint8), (250, 140), (60, 70), 0, 180, 360, 1, 6)  # handle 7 px above it
    handle = mask.copy()
    handle[150:] = False
    mask[10:30, 460:480] = True  # a 400 px fleck in a far corner
    kept = keep_product_parts(mask)
    assert 0.002 < handle.sum() / mask.sum() < 0.02  # smaller than the old 2% cut-off
    assert kept[handle].all()
    assert not kept[10:30, 460:480].any()
