"""Classic backend, edge refinement and the folder job on synthetic studio shots with exact truth."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stages.segment import get_segmenter
from stages.segment.classic import classic_mask
from stages.segment.folder import segment_folder
from stages.segment.refine import refine_edges
from stages.segment.settings import SegmentSettings
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


def _gradient_backdrop(h: int, w: int, top: float, bottom: float) -> np.ndarray:
    ramp = np.linspace(top, bottom, h, dtype=np.float32)[:, None, None]
    return np.broadcast_to(ramp * np.array([1.0, 0.995, 0.985], np.float32), (h, w, 3)).copy()


def test_light_grey_product_on_a_grey_gradient_keeps_its_outline():
    import cv2

    h = w = 192
    alpha = np.zeros((h * 4, w * 4), np.float32)
    cv2.ellipse(alpha, (w * 2, h * 2), (w, int(h * 1.3)), 0, 0, 360, 1.0, -1)
    alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    backdrop = _gradient_backdrop(h, w, 214, 238)
    rng = np.random.default_rng(1)
    product = backdrop - np.array([20, 19, 16], np.float32) + rng.normal(0, 1.5, (h, w, 1))  # ~8 Lab units
    image = _composite(alpha * 255, product, backdrop)
    truth = alpha >= 0.5
    mask = classic_mask(image)
    assert _iou(mask, truth) > 0.95  # a Lab-distance threshold of 14 would keep almost nothing here


def test_contact_shadow_under_a_product_is_not_part_of_the_cutout():
    import cv2

    h = w = 192
    alpha = np.zeros((h, w), np.float32)
    cv2.rectangle(alpha, (60, 40), (132, 140), 1.0, -1)
    shadow = np.zeros((h, w), np.float32)
    cv2.ellipse(shadow, (96, 140), (44, 5), 0, 0, 360, 1.0, -1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 4.0) * 0.5  # soft, like a studio light's contact shadow
    backdrop = _gradient_backdrop(h, w, 215, 245) * (1 - shadow[..., None])
    product = np.full((h, w, 3), (40, 70, 150), np.float32) + np.random.default_rng(2).normal(0, 4, (h, w, 1))
    image = _composite(alpha * 255, product, backdrop)
    jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])[1]
    image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1]
    cutout = get_segmenter(SegmentSettings(backend="classic")).segment(image)
    below = (slice(143, 150), slice(56, 137))  # the shadow's darkest rows, just under the edge
    assert (cutout.alpha[below] < 128).mean() > 0.95
    assert _iou(cutout.alpha >= 128, alpha >= 0.5) > 0.97


def test_enclosed_refraction_is_filled_but_a_real_hole_stays_open():
    import cv2

    h = w = 192
    backdrop = np.full((h, w, 3), 238.0, np.float32)
    image = backdrop.copy()
    cv2.rectangle(image, (30, 40), (90, 160), (120, 130, 140), 6)  # a "glass": only its rim contrasts
    image[50:150, 40:80] = (228, 230, 233)  # refracted backdrop inside: near, but not equal to, the backdrop
    cv2.circle(image, (140, 100), 30, (150, 40, 40), 12)  # a ring: its hole shows the backdrop itself
    mask = classic_mask(np.clip(image + 0.5, 0, 255).astype(np.uint8))
    assert mask[60:140, 45:75].mean() > 0.95  # the glass's inside is product
    assert not mask[95:105, 135:145].any()  # the ring's hole stays transparent


def test_a_photo_that_is_not_a_studio_shot_needs_review():
    """A product on a wooden table (busy edges) gets a review reason telling the merchant what to do."""
    rng = np.random.default_rng(3)
    h, w = 240, 320
    grain = np.cumsum(rng.normal(0, 6, (h, w)), axis=1)  # streaky, wood-like texture to every edge
    table = np.clip(np.stack([120 + grain, 70 + grain * 0.6, 40 + grain * 0.3], axis=2), 0, 255)
    image = table.astype(np.uint8)
    image[80:160, 120:200] = (200, 30, 40)
    cutout = get_segmenter(SegmentSettings(backend="classic", refine_edges=False)).segment(image)
    assert cutout.needs_review
    assert any("does not look like a studio shot" in r for r in cutout.review_reasons)
    assert "SAM_CHECKPOINT" in cutout.review_reasons[0]

    studio = np.full((h, w, 3), 242, np.uint8)
    studio[80:160, 120:200] = (200, 30, 40)
    clean = get_segmenter(SegmentSettings(backend="classic", refine_edges=False)).segment(studio)
    assert clean.review_reasons == [] and clean.confidence == 1.0


def test_a_thin_wire_survives_edge_refinement():
    import cv2

    h, w = 160, 200
    alpha = np.zeros((h * 4, w * 4), np.float32)
    cv2.line(alpha, (60 * 4, 20 * 4), (140 * 4, 140 * 4), 1.0, 12)  # 3 px wide, like a lamp's stem
    cv2.circle(alpha, (60 * 4, 20 * 4), 40, 1.0, -1)
    alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    product = np.full((h, w, 3), (40, 40, 44), np.float32)
    image = _composite(alpha * 255, product, np.full((h, w, 3), 240.0))
    cutout = get_segmenter(SegmentSettings(backend="classic")).segment(image)
    wire = (alpha >= 0.5) & (np.arange(h)[:, None] > 40)
    assert (cutout.alpha[wire] >= 128).mean() > 0.9  # matting used to erase parts thinner than its band


def _sweep(h: int, w: int, wall: float, floor: float, bend: float) -> np.ndarray:
    """Seamless paper: the wall's tone bending into a brighter floor around ``bend`` of the height."""
    t = np.clip((np.arange(h, dtype=np.float32) / h - bend) / 0.25 + 0.5, 0, 1)[:, None]
    falloff = 1 - 0.04 * np.linspace(-1, 1, w, dtype=np.float32)[None, :] ** 2
    return np.repeat(((wall * (1 - t) + floor * t) * falloff)[..., None], 3, axis=2)


def _jpeg_rgb(image: np.ndarray, quality: int = 88) -> np.ndarray:
    import cv2

    bgr = np.ascontiguousarray(image[..., ::-1])
    encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]


def test_a_pale_garment_filling_the_frame_to_its_bottom_edge_is_cut_out():
    """Tight apparel framing on a seamless sweep: the hem runs past the frame, the shirt is a few
    levels darker than the paper; the backdrop must be read where the garment is not."""
    import cv2

    h, w = 320, 256
    big = np.zeros((h * 4, w * 4), np.uint8)
    cv2.fillPoly(big, [np.array([[60, 90], [384, 40], [640, 40], [964, 90], [964, 1400], [60, 1400]])], 255)
    alpha = cv2.resize(big.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_AREA)
    body = alpha > 0.5
    rng = np.random.default_rng(3)
    shirt = np.full((h, w, 3), (226, 224, 229), np.float32) + rng.normal(0, 2.0, (h, w, 1))
    inner = cv2.erode(body.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    shirt[body & ~inner] *= 0.9  # the stitched seam along the outline
    image = _composite(alpha * 255, shirt, _sweep(h, w, 238, 250, 0.55))
    noisy = image.astype(np.float32) + rng.normal(0, 1.0, image.shape)
    image = _jpeg_rgb(np.clip(noisy, 0, 255).astype(np.uint8))
    cutout = get_segmenter(SegmentSettings(backend="classic")).segment(image)
    assert _iou(cutout.alpha >= 128, body) > 0.97  # before: the seam alone, IoU under 0.1


def test_a_white_sneaker_lit_to_the_backdrops_level_is_not_taken_for_its_shadow():
    """A white upper is the backdrop's hue, darker below and as light on top: by color it is a
    shadow; its eyelets and the toe seam inside it say it is a product."""
    import cv2

    h, w = 240, 320
    big = np.zeros((h * 4, w * 4), np.uint8)
    upper = [[150, 640], [190, 540], [520, 470], [760, 330], [1100, 340], [1120, 640]]
    cv2.fillPoly(big, [np.array(upper)], 255)
    cv2.rectangle(big, (140, 640), (1130, 720), 255, -1)  # the sole
    alpha = cv2.resize(big.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_AREA)
    body = alpha > 0.5
    level = 247.0
    ys = np.arange(h, dtype=np.float32)[:, None]
    shoe = np.repeat((level - 12 * np.clip((ys - 82) / 78, 0, 1))[..., None], 3, axis=2) * np.ones((1, w, 1))
    shoe += np.random.default_rng(4).normal(0, 1.2, (h, w, 1))
    for i in range(5):  # eyelets along the throat, a stitched toe cap
        cv2.circle(shoe, (150 + 22 * i, 130 - 8 * i), 2, (level - 70,) * 3, -1)
    cv2.ellipse(shoe, (75, 160), (28, 22), 0, 180, 300, (level - 35,) * 3, 1)
    shoe[180:] = level - 10  # the sole
    shadow = np.zeros((h, w), np.float32)
    cv2.ellipse(shadow, (160, 180), (125, 4), 0, 0, 360, 1.0, -1)
    shadow = 0.35 * cv2.GaussianBlur(shadow, (0, 0), 3.0)[..., None]
    backdrop = np.full((h, w, 3), level, np.float32) * (1 - shadow)
    image = _jpeg_rgb(_composite(alpha * 255, shoe, backdrop), 90)
    cutout = get_segmenter(SegmentSettings(backend="classic")).segment(image)
    found = cutout.alpha >= 128
    assert (found & body).sum() > 0.75 * body.sum()  # before: 3% (taken for a shadow); its lit top is lost
    assert (found & ~body).sum() < 0.1 * body.sum()


def test_the_backdrop_between_chair_legs_on_a_sweep_stays_open():
    """The paper bends from wall to floor behind the legs: the backdrop they enclose is lighter at the
    bottom than at the top, which a quadratic backdrop fit reads as product."""
    import cv2

    h, w = 240, 320
    big = np.zeros((h * 4, w * 4), np.uint8)
    cv2.rectangle(big, (400, 300), (880, 360), 255, -1)  # the seat
    for x in (410, 560, 700, 850):  # four legs down to the floor
        cv2.rectangle(big, (x, 360), (x + 20, 900), 255, -1)
    cv2.rectangle(big, (410, 700), (870, 716), 255, -1)  # the rail
    cv2.rectangle(big, (400, 60), (880, 300), 255, 20)  # the back's frame
    alpha = cv2.resize(big.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_AREA)
    wood = np.full((h, w, 3), (150, 110, 70), np.float32) + np.random.default_rng(5).normal(0, 2.0, (h, w, 1))
    image = _jpeg_rgb(_composite(alpha * 255, wood, _sweep(h, w, 220, 232, 0.5)), 90)
    cutout = get_segmenter(SegmentSettings(backend="classic")).segment(image)
    gaps = (slice(95, 170), slice(112, 136))  # between the first two legs, above the rail
    assert (cutout.alpha[gaps] < 128).mean() > 0.98  # before: filled
    assert _iou(cutout.alpha >= 128, alpha >= 0.5) > 0.95  # before: 0.71
