"""Classic backend, edge refinement and the folder job on synthetic studio shots with exact truth."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from packshot.config import SegmentSettings
from stages.segment import get_segmenter
from stages.segment.classic import classic_mask
from stages.segment.folder import segment_folder
from stages.segment.refine import refine_edges
from tests.studio import studio_shot


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def _halo(rgba: np.ndarray, alpha_true: np.ndarray, fg_true: np.ndarray, bg=(10, 10, 14)) -> float:
    """Mean |RGB error| within 4 px of the true outline when composited on a dark color."""
    import cv2

    truth = (alpha_true >= 128).astype(np.uint8)
    k = np.ones((9, 9), np.uint8)
    band = (cv2.dilate(truth, k) > 0) & ~(cv2.erode(truth, k) > 0)
    a = rgba[..., 3:] / 255.0
    t = alpha_true[..., None] / 255.0
    out = a * rgba[..., :3] + (1 - a) * np.array(bg)
    ref = t * fg_true + (1 - t) * np.array(bg)
    return float(np.abs(out - ref)[band].mean())


def _composite(alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    a = alpha[..., None] / 255.0
    return np.clip(a * fg + (1 - a) * bg + 0.5, 0, 255).astype(np.uint8)


def test_edge_refinement_reduces_halo_on_a_soft_edged_composite():
    h = w = 128
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(xx - 64, yy - 64) - 36
    alpha = np.clip(0.5 - dist / 3.0, 0, 1) * 255  # a 3 px soft edge, like a real lens
    fg = np.zeros((h, w, 3))
    fg[...] = (200, 30, 40)
    image = _composite(alpha, fg, np.full((h, w, 3), 245.0))
    hard = (alpha >= 128).astype(np.uint8)
    plain = np.dstack([image, hard * 255])
    refined = refine_edges(image, hard, band_px=3)
    assert refined.shape == (h, w, 4)
    assert np.array_equal(refined[64, 64, :3], image[64, 64])  # untouched inside the band
    assert refined[0, 0, 3] == 0 and refined[64, 64, 3] == 255
    before, after = _halo(plain, alpha, fg), _halo(refined, alpha, fg)
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("shape,color,bg", [("bottle", (40, 90, 170), (246, 246, 246)),
                                            ("mug", (200, 40, 40), (225, 225, 228))])
def test_classic_cutout_matches_truth(shape, color, bg):
    image, alpha = studio_shot(size=160, shape=shape, color=color, bg=bg)
    truth = alpha >= 128
    assert _iou(classic_mask(image), truth) > 0.95
    cutout = get_segmenter(SegmentSettings(backend="classic")).segment(image)
    assert cutout.backend == "classic"
    assert _iou(cutout.alpha >= 128, truth) > 0.95
    if shape == "mug":  # the handle's hole shows the backdrop: it stays transparent
        ys, xs = np.nonzero((alpha == 0)[60:100, 96:118])
        assert (cutout.alpha[60:100, 96:118][ys, xs] < 40).mean() > 0.9


def test_classic_respects_the_catalog_box():
    image, alpha = studio_shot(size=160, shape="bottle")
    image[10:30, 5:25] = (20, 20, 20)  # a stray dark object outside the product's box
    mask = classic_mask(image, box=(50, 10, 110, 150))
    assert not mask[10:30, 5:25].any()
    assert _iou(mask, alpha >= 128) > 0.95


def test_segment_folder_writes_one_png_per_input_and_reports_bad_files(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i, shape in enumerate(["bottle", "ball"]):
        Image.fromarray(studio_shot(size=96, shape=shape, seed=i)[0]).save(src / f"p{i}.jpg", quality=92)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (src / "notes.txt").write_text("not an image")
    results = dict(segment_folder(src, out, SegmentSettings(backend="classic", refine_edges=False)))
    assert set(results) == {"p0.jpg", "p1.jpg", "broken.png"}
    assert results["p0.jpg"] is None and results["p1.jpg"] is None
    assert "broken.png" in results["broken.png"]
    assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p1.png"]  # no temp files left
    with Image.open(out / "p0.png") as im:
        assert im.mode == "RGBA" and im.size == (96, 96)
