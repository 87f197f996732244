"""Every demo cutout against the exact alpha its render left in catalogs/demo/truth/ (issue 20).

Each product is segmented the way a run segments it (backend ``auto``, which is ``classic`` without
model files; the catalog row's bbox; edge refinement on). A cutout must keep every part of the
product (no missing region over 0.2% of its area) and match the truth (IoU >= 0.98), or say that a
person should look (``needs_review`` with a reason): a damaged product is never a silent ``done``.
Cutouts are computed once per test session (about 3 s of CPU per photo).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from bench.demo_truth import MAX_MISSING, MIN_IOU, compare, demo_images, load_rgb, truth_of
from packshot.types import Cutout
from stages.segment import get_segmenter
from stages.segment.settings import SegmentSettings

RENDERED = [(sku, ref, bbox) for sku, ref, bbox in demo_images() if truth_of(ref) is not None]
IDS = [ref.split("/")[-1] for _, ref, _ in RENDERED]

# Damage this code still does and does not flag (measured with bench/demo_truth.py). Strict: the
# test fails the day one of them is fixed or flagged, so the list cannot go stale.
# Empty since issue 20's review-flag work: the steel bottle's lost rims are flagged (test below).
KNOWN_DAMAGE: dict[str, str] = {}
KNOWN_LOST_PART: set[str] = set()


@functools.cache
def _segmenter():
    return get_segmenter(SegmentSettings())


@functools.cache
def _cutout(ref: str, bbox: tuple[int, int, int, int] | None) -> Cutout:
    return _segmenter().segment(load_rgb(ref), bbox)


def test_every_rendered_demo_image_has_its_truth():
    assert len(RENDERED) == 10  # 11 photos, one of them real (no truth)
    for _, ref, _ in RENDERED:
        truth = truth_of(ref)
        assert truth.shape == load_rgb(ref).shape[:2]
        assert 0.05 < (truth >= 128).mean() < 0.6  # a product, not an empty or full frame


@pytest.mark.parametrize("sku,ref,bbox", RENDERED, ids=IDS)
def test_demo_cutout_keeps_every_part_or_is_flagged(sku, ref, bbox, request):
    if ref in KNOWN_LOST_PART:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_DAMAGE[ref], strict=True))
    cutout = _cutout(ref, bbox)
    _, missing = compare(cutout.alpha, truth_of(ref))
    assert missing <= MAX_MISSING or cutout.review_reasons, (
        f"{sku} ({ref}) lost a part of {missing:.2%} of the product and is marked done"
    )


@pytest.mark.parametrize("sku,ref,bbox", RENDERED, ids=IDS)
def test_demo_cutout_matches_its_truth_or_is_flagged(sku, ref, bbox, request):
    if ref in KNOWN_DAMAGE:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_DAMAGE[ref], strict=True))
    cutout = _cutout(ref, bbox)
    iou, _ = compare(cutout.alpha, truth_of(ref))
    assert iou >= MIN_IOU or cutout.review_reasons, f"{sku} ({ref}): IoU {iou:.4f} and marked done"


def test_steel_bottle_that_loses_its_mirror_rims_is_sent_for_review_saying_why():
    """The mirror steel's light rims (5-8 px each side) are lost: the cut follows the dark body's
    edge, and the rim's own outline is left a few pixels outside it. That second edge is the reason."""
    sku, ref, bbox = next(r for r in RENDERED if r[1] == "images/steel_bottle.jpg")
    cutout = _cutout(ref, bbox)
    iou, missing = compare(cutout.alpha, truth_of(ref))
    if missing <= MAX_MISSING and iou >= MIN_IOU:
        pytest.skip("the cutout keeps the rims now: nothing to flag")
    assert cutout.needs_review
    assert any("second edge" in r and "rim" in r for r in cutout.review_reasons), cutout.review_reasons


@pytest.mark.parametrize("image", ["sneaker.jpg", "cushion.jpg", "backpack.jpg", "candle_lit.jpg"])
def test_damaged_demo_cutouts_stay_flagged(image):
    sku, ref, bbox = next(r for r in RENDERED if r[1] == f"images/{image}")
    assert _cutout(ref, bbox).review_reasons


def test_backpack_straps_outside_a_box_drawn_around_the_body_are_cut_out_whole():
    """The box the demo row had until issue 20 cut through both side straps: the box is a hint."""
    ref = "images/backpack.jpg"
    bbox = (332, 244, 969, 1358)
    truth = truth_of(ref) >= 128
    x0, y0, x1, y1 = bbox
    outside = truth.copy()
    outside[y0:y1, x0:x1] = False
    assert outside.sum() > 5000  # the catalog's box really is too small (the straps stick out)
    alpha = _cutout(ref, bbox).alpha >= 128
    assert (alpha & outside).sum() >= 0.9 * outside.sum()
    assert (alpha & truth).sum() >= 0.99 * truth.sum()  # and the grab handle above the body is kept


def test_compare_counts_a_lost_part_but_not_a_one_pixel_edge():
    truth = np.zeros((200, 200), np.uint8)
    truth[50:150, 50:150] = 255
    shrunk = np.zeros_like(truth)
    shrunk[51:149, 51:149] = 255  # the outline placed one pixel inside: no part lost
    iou, missing = compare(shrunk, truth)
    assert iou > 0.95 and missing == 0.0
    bitten = truth.copy()
    bitten[50:70, 50:70] = 0  # a 20x20 corner lost: 4% of the product
    assert compare(bitten, truth)[1] == pytest.approx(0.04, abs=0.005)
