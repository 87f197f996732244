"""Confidence and review reasons of cutouts, and backdrop-colored interiors that must stay product."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from packshot.types import Cutout
from stages.segment import get_segmenter
from stages.segment.confidence import CLASSIC_CHECKS, Check, judge, sam_values
from stages.segment.settings import SegmentSettings

CLASSIC = SegmentSettings(backend="classic", refine_edges=False)


def _jpeg(image: np.ndarray, quality: int = 88) -> np.ndarray:
    bgr = np.ascontiguousarray(image[..., ::-1])
    data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]


def _wood_table(h: int, w: int, seed: int = 3) -> np.ndarray:
    """Streaky wood grain that reaches every edge of the frame (``HxWx3 float32``)."""
    rng = np.random.default_rng(seed)
    warp = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 12) * 40
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    grain = np.sin((yy + warp) * 0.3) + 0.4 * rng.normal(0, 1, (h, w))
    return np.array((150, 100, 60), np.float32) * (1 + 0.12 * grain)[..., None]


def _cushion(size: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A white cushion on a white backdrop: piped seam, padded shading, fabric weave; its middle is the
    backdrop's color. Returns (photo ``HxWx3 uint8``, truth ``HxW`` bool)."""
    rng = np.random.default_rng(seed)
    h = w = size
    truth = np.zeros((h, w), np.uint8)
    cv2.rectangle(truth, (40, 44), (152, 150), 1, -1)
    depth = cv2.distanceTransform(truth, cv2.DIST_L2, 5)
    shading = 10.0 * (1 - np.clip(depth / 20.0, 0, 1)) ** 2  # padding: darker only towards the seam
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    weave = 3.0 * np.sin(xx * 2 * np.pi / 4.0) * np.sin(yy * 2 * np.pi / 4.0) + rng.normal(0, 1.5, (h, w))
    photo = np.full((h, w, 3), 246.0, np.float32)
    cushion = (246.0 - shading + weave)[..., None] * np.ones(3, np.float32)
    seam = (truth > 0) & (depth <= 3)
    cushion[seam] = (175, 178, 190)
    photo[truth > 0] = cushion[truth > 0]
    photo += rng.normal(0, 1.0, photo.shape)
    return _jpeg(np.clip(photo + 0.5, 0, 255).astype(np.uint8), 92), truth > 0


def test_a_product_on_a_wood_table_is_sent_for_review():
    h, w = 240, 320
    image = _wood_table(h, w)
    image[70:170, 120:200] = (200, 30, 40)
    cutout = get_segmenter(CLASSIC).segment(_jpeg(np.clip(image, 0, 255).astype(np.uint8)))
    assert cutout.needs_review
    assert cutout.confidence is not None and cutout.confidence < 0.5
    assert any("does not look like a studio shot" in r or "textured" in r for r in cutout.review_reasons)
    assert "SAM_CHECKPOINT" in cutout.review_reasons[0]  # what to do, said once


def test_a_clean_studio_shot_is_trusted():
    from tests.studio import studio_shot

    image, _ = studio_shot(size=192, shape="mug", color=(30, 60, 150), bg=(244, 244, 244))
    cutout = get_segmenter(CLASSIC).segment(_jpeg(image, 92))
    assert cutout.review_reasons == []
    assert not cutout.needs_review
    assert cutout.confidence is not None and cutout.confidence >= 0.9


def test_a_white_cushion_keeps_its_backdrop_colored_middle():
    image, truth = _cushion()
    cutout = get_segmenter(CLASSIC).segment(image)
    pred = cutout.alpha >= 128
    middle = np.zeros_like(truth)
    middle[70:125, 70:125] = True  # within a few levels of the backdrop, enclosed by the seam
    assert pred[middle].mean() > 0.98
    assert (pred & truth).sum() / (pred | truth).sum() > 0.95


def test_a_faint_light_product_is_flagged_not_trusted():
    h = w = 192
    image = np.full((h, w, 3), 246.0, np.float32)
    cv2.circle(image, (96, 96), 50, (243.0, 243.0, 242.0), -1)  # 3 levels from the backdrop: barely there
    image += np.random.default_rng(4).normal(0, 1.0, image.shape)
    cutout = get_segmenter(CLASSIC).segment(_jpeg(np.clip(image, 0, 255).astype(np.uint8)))
    assert cutout.needs_review


def test_a_thumbnail_too_small_to_judge_says_so():
    image = np.full((8, 8, 3), 245, np.uint8)
    image[2:6, 2:6] = (200, 30, 40)
    cutout = get_segmenter(CLASSIC).segment(image)
    assert cutout.review_reasons == ["segment: the photo is only 8x8 px, too small to check its cutout"]


def test_judge_penalises_past_the_midpoint_and_reports_each_reason_once():
    checks = {"a": Check(0.0, 1.0, "a is {value:.1f}"), "b": Check(0.9, 0.7, "b is {value:.2f}")}
    assert judge({"a": 0.2, "b": 0.95}, checks) == (0.8, [])
    confidence, reasons = judge({"a": 0.6, "b": 0.6}, checks, "; do this")
    assert confidence == 0.0
    assert reasons == ["segment: a is 0.6; do this", "segment: b is 0.60"]
    assert judge({}, CLASSIC_CHECKS) == (1.0, [])
    assert Check(0.9, 0.7, "").review_at == pytest.approx(0.8)


def test_sam_stability_is_the_iou_of_two_thresholds():
    logits = np.full((8, 8), -5.0)
    logits[2:6, 2:6] = 5.0  # a crisp mask: the same at +1 and -1
    assert sam_values(0.93, logits) == {"predicted_iou": 0.93, "stability": 1.0}
    logits[1:7, 1:7] = np.where(logits[1:7, 1:7] > 0, 5.0, 0.0)  # a soft rim between the thresholds
    assert sam_values(0.93, logits)["stability"] == pytest.approx(16 / 36)
    assert sam_values(0.5, None) == {"predicted_iou": 0.5}


def test_needs_review_follows_the_reasons():
    rgba = np.zeros((4, 4, 4), np.uint8)
    assert not Cutout(rgba, backend="classic").needs_review
    assert Cutout(rgba, backend="classic", review_reasons=["segment: look"]).needs_review
