"""Review flags measured on the final cut (issue 20): what a damaged cutout leaves outside itself.

Synthetic photos with a known cut: the same photo judged with its true outline and with a damaged
one, so each check is seen to measure the damage and not the photo. Then whole classic cutouts of
evaluation-set photos (bench/segment_hard_set.py) whose flags were wrong before these checks.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.segment_hard_set import make_hard_sample
from stages.segment import get_segmenter
from stages.segment.confidence import CLASSIC_CHECKS
from stages.segment.cut_checks import border_texture, cut_values
from stages.segment.settings import SegmentSettings


def _studio(h: int = 480, w: int = 400, level: float = 240.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.full((h, w, 3), level, np.float32) + rng.normal(0, 1.0, (h, w, 3)).astype(np.float32)


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _flags(values: dict[str, float], name: str) -> bool:
    check = CLASSIC_CHECKS[name]
    return check.penalty(values[name]) >= 0.5


def test_a_rim_left_outside_the_cut_is_a_second_edge_and_the_true_cut_has_none():
    photo = _studio()
    body = np.zeros(photo.shape[:2], np.uint8)
    cv2.rectangle(body, (140, 80), (260, 420), 1, -1)
    rimmed = cv2.dilate(body, np.ones((11, 11), np.uint8))  # a light rim 5 px wide around a dark body
    photo[rimmed > 0] = (195, 197, 200)
    photo[body > 0] = (70, 72, 76)
    photo = _u8(cv2.GaussianBlur(photo, (0, 0), 0.6))
    damaged = cut_values(photo, body > 0)  # the cut along the dark body: the rim is lost
    whole = cut_values(photo, rimmed > 0)
    assert _flags(damaged, "outer_edge") and not _flags(whole, "outer_edge")


def test_a_soft_shadow_around_a_product_is_not_a_part_left_out_but_the_rest_of_a_garment_is():
    h, w = 480, 400
    photo = _studio(h, w)
    garment = np.zeros((h, w), np.uint8)
    cv2.rectangle(garment, (60, 60), (340, 440), 1, -1)
    shadow = cv2.GaussianBlur(cv2.dilate(garment, np.ones((9, 9), np.uint8)).astype(np.float32), (0, 0), 8)
    photo *= (1 - 0.12 * shadow)[..., None]  # a drop shadow hugging the garment on every side
    photo[garment > 0] = (205, 208, 214)  # a light grey shirt
    print_ = np.zeros((h, w), bool)
    print_[200:260, 150:250] = True
    photo[print_] = (40, 160, 60)  # a green print on its chest
    photo = _u8(cv2.GaussianBlur(photo, (0, 0), 0.6))
    whole, print_only = cut_values(photo, garment > 0), cut_values(photo, print_)
    assert not any(_flags(whole, n) for n in ("surrounded", "stray_edges", "outer_edge"))
    assert _flags(print_only, "surrounded")


def test_edges_left_outside_the_cut_are_stray_edges():
    photo = _studio()
    sole = np.zeros(photo.shape[:2], bool)
    sole[330:370, 80:330] = True
    upper = np.zeros_like(sole)
    upper[220:330, 100:300] = True
    photo[upper] = (246, 246, 246)  # a white upper a little lighter than the backdrop ...
    for y in range(235, 320, 14):
        photo[y : y + 3, 150:260] = (120, 120, 125)  # ... with laces across it
    photo[sole] = (30, 30, 32)
    photo = _u8(cv2.GaussianBlur(photo, (0, 0), 0.6))
    assert _flags(cut_values(photo, sole), "stray_edges")  # only the sole was kept
    assert not _flags(cut_values(photo, sole | upper), "stray_edges")


def test_border_texture_tells_a_wood_table_from_a_seamless_sweep():
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sweep = 250 - 30 / (1 + np.exp(-(yy - 300) / 25))  # the wall-to-floor bend: smooth, not quadratic
    sweep = _u8(np.dstack([sweep] * 3) + np.random.default_rng(1).normal(0, 2.0, (h, w, 3)))  # sensor noise
    rng = np.random.default_rng(2)
    grain = np.sin(yy * 0.35 + 6 * cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 6))
    wood = _u8(np.array((160, 110, 70), np.float32) * (1 + 0.1 * grain)[..., None])
    check = CLASSIC_CHECKS["border_texture"]
    assert border_texture(sweep) < check.review_at < border_texture(wood)


def _iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    a, t = alpha >= 128, truth >= 128
    return float((a & t).sum() / max((a | t).sum(), 1))


@pytest.mark.parametrize("category,seed", [("light_grey", 4), ("light_on_white", 4), ("furniture", 3)])
def test_good_studio_cutouts_of_light_products_and_furniture_on_a_sweep_are_not_flagged(category, seed):
    """A lit light ball and a white box (their outline faint where it is right) and a stool on a
    seamless sweep: cut out well (IoU >= 0.97) and, before issue 20's recalibration, flagged."""
    _, photo, alpha, _ = make_hard_sample(category, seed)
    cutout = get_segmenter(SegmentSettings(backend="classic")).segment(photo)
    assert _iou(cutout.alpha, alpha) >= 0.97
    assert cutout.review_reasons == []


@pytest.mark.parametrize("category,seed", [("apparel", 3), ("light_footwear", 4)])
def test_a_light_garment_filling_the_frame_or_a_white_upper_that_is_lost_is_flagged(category, seed):
    """A light t-shirt of which only the print was cut out, a white sneaker of which only the dark
    sole was: silent `done` before issue 20's checks."""
    _, photo, alpha, _ = make_hard_sample(category, seed)
    cutout = get_segmenter(SegmentSettings(backend="classic")).segment(photo)
    assert _iou(cutout.alpha, alpha) >= 0.97 or cutout.needs_review


def test_a_product_running_off_one_edge_is_framing_but_reaching_two_sides_is_contact():
    """A garment's hem across the bottom edge leaves the other three sides clear; a cutout that took
    in a table top reaches the bottom and both sides."""
    from stages.segment.confidence import frame_contact

    hem = np.zeros((400, 300), bool)
    hem[80:, 40:260] = True  # runs off the bottom edge only
    table = hem.copy()
    table[300:, :] = True  # the table top: bottom, left and right
    check = CLASSIC_CHECKS["frame_contact"]
    assert frame_contact(hem) == 0.0
    assert check.penalty(frame_contact(table)) >= 0.5


@pytest.mark.parametrize("seed", [0, 1, 2, 4])
def test_good_cutouts_of_garments_framed_tight_to_one_edge_are_not_flagged(seed):
    """Apparel on white framed at 60-70% of the photo with the hem past the bottom edge is normal studio
    practice: a good cutout of it is `done` (before this calibration every one of them was flagged for
    frame contact, coverage or a backdrop that "does not look like a studio shot")."""
    _, photo, alpha, _ = make_hard_sample("apparel", seed)
    cutout = get_segmenter(SegmentSettings(backend="classic")).segment(photo)
    assert _iou(cutout.alpha, alpha) >= 0.97
    assert cutout.review_reasons == []
