"""The SAM code path end to end with the tiny random-weight model (shapes, batching, prompts, errors).

Random weights give meaningless masks: these tests check plumbing and choice logic, not quality.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from packshot.errors import ModelUnavailableError
from packshot.registry import models
from stages.segment import get_segmenter
from stages.segment import sam as sam_module
from stages.segment._torchvision_compat import batched_nms, uses_stand_ins
from stages.segment.settings import SegmentSettings
from tests.studio import studio_shot

TINY = SegmentSettings(backend="tiny", refine_edges=False)


@pytest.fixture(scope="module")
def tiny():
    return get_segmenter(TINY)


def test_tiny_sam_cuts_images_of_any_shape(tiny):
    wide, _ = studio_shot(size=128, shape="mug")
    tall = np.ascontiguousarray(np.rot90(studio_shot(size=96, shape="bottle")[0])[:80])
    for image in (wide, tall):
        cutout = tiny.segment(image)
        assert cutout.rgba.shape == (*image.shape[:2], 4)
        assert cutout.rgba.dtype == np.uint8
        assert cutout.backend == "tiny"
        assert np.array_equal(cutout.rgb[cutout.alpha == 255], image[cutout.alpha == 255])
        assert any("mask" in note and "predicted IoU" in note for note in cutout.notes)


def test_tiny_sam_reports_a_confidence_from_its_own_scores(tiny):
    image, _ = studio_shot(size=96, shape="ball")
    cutout = tiny.segment(image)
    assert cutout.confidence is not None and 0.0 <= cutout.confidence <= 1.0
    # random weights: SAM's own scores are poor, and the cutout says so in words
    assert cutout.needs_review == (cutout.confidence < 0.5)
    assert all(r.startswith("segment: SAM") for r in cutout.review_reasons)


def test_model_loaded_once_per_process(tiny):
    again = get_segmenter(TINY)
    assert again.model is tiny.model
    assert all(count == 1 for key, count in models.load_counts.items() if key.startswith("segment:sam:tiny"))


def test_batched_embedding_matches_one_at_a_time(tiny):
    images = [studio_shot(size=96, shape=s, seed=i)[0] for i, s in enumerate(["mug", "ball", "bottle"])]
    images[1] = images[1][:70]  # a different aspect ratio in the same batch
    single = [tiny.segment(im) for im in images]
    calls = []
    encoder = tiny.model.image_encoder
    original_forward = encoder.forward
    encoder.forward = lambda x: calls.append(x.shape[0]) or original_forward(x)
    try:
        tiny.embed_batch = 2
        batched = tiny.segment_batch(images, [None] * 3)
    finally:
        tiny.embed_batch = 1
        del encoder.forward
    assert calls == [2, 1]
    for a, b in zip(single, batched, strict=True):
        assert a.rgba.shape == b.rgba.shape
        assert (a.alpha != b.alpha).mean() < 0.01


def test_catalog_box_is_the_prompt(tiny, monkeypatch):
    image, _ = studio_shot(size=96, shape="mug")
    seen = []
    predict = tiny.predictor.predict
    monkeypatch.setattr(tiny.predictor, "predict", lambda **kw: seen.append(kw) or predict(**kw))
    tiny.segment(image, box=(10, 12, 70, 80))
    assert seen[-1]["box"].tolist() == [10, 12, 70, 80]
    assert seen[-1]["point_coords"] is None and seen[-1]["multimask_output"] is True
    tiny.segment(image)  # no box: derived from the foreground estimate, plus an interior point
    x0, y0, x1, y1 = seen[-1]["box"].tolist()
    assert x0 > 5 and x1 < 91 and y0 > 5 and y1 < 91
    assert 1 in seen[-1]["point_labels"].tolist()


def test_mug_handle_gets_a_negative_point():
    from stages.segment.estimate import estimate_foreground

    image, _ = studio_shot(size=160, shape="mug")
    box, points, labels = sam_module.derive_prompts(estimate_foreground(image), image.shape[:2])
    assert labels.tolist().count(1) == 1
    assert labels.tolist().count(0) == 1  # the hole inside the handle
    hx, hy = points[labels.tolist().index(0)]
    assert 96 <= hx <= 118 and 75 <= hy <= 100


def test_multimask_choice_mixes_quality_and_agreement():
    estimate = np.zeros((20, 20), bool)
    estimate[5:15, 5:15] = True
    agreeing, too_big, empty = estimate.copy(), np.ones((20, 20), bool), np.zeros((20, 20), bool)
    masks = np.stack([too_big, agreeing, empty])
    assert sam_module.choose_mask(masks, np.array([0.9, 0.8, 0.99]), estimate) == 1
    assert sam_module.choose_mask(masks, np.array([0.9, 0.8, 0.99]), None) == 0  # quality only, never empty
    assert sam_module.choose_mask(np.stack([empty, empty]), np.array([0.1, 0.5]), estimate) == 1


def test_empty_sam_masks_fall_back_to_the_estimate(tiny, monkeypatch):
    image, alpha = studio_shot(size=96, shape="ball")
    empty = np.zeros((3, 96, 96), bool)
    monkeypatch.setattr(tiny.predictor, "predict", lambda **kw: (empty, np.array([0.3, 0.2, 0.1]), None))
    cutout = tiny.segment(image)
    assert any("used the foreground estimate" in n for n in cutout.notes)
    truth = alpha >= 128
    assert ((cutout.alpha >= 128) & truth).sum() / ((cutout.alpha >= 128) | truth).sum() > 0.9


def test_sam_runs_on_torchvision_stand_ins_without_leaking_them():
    try:
        import torchvision  # noqa: F401
    except Exception:
        assert uses_stand_ins()
        assert "torchvision" not in sys.modules
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]]).float()
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    keep = batched_nms(boxes, scores, torch.tensor([0, 0, 1, 0]), 0.5)
    assert keep.tolist() == [0, 2, 3]


def test_missing_checkpoint_names_the_setting(tmp_path):
    settings = SegmentSettings(backend="sam", sam_checkpoint=tmp_path / "nope.pth", sam_model_type="vit_b")
    with pytest.raises(ModelUnavailableError) as err:
        get_segmenter(settings)
    message = str(err.value)
    assert "PACKSHOT_SEGMENT__SAM_CHECKPOINT" in message and "sam_vit_b_01ec64.pth" in message
    assert "sam_vit_h_4b8939.pth" in message and "nope.pth" in message
    with pytest.raises(ModelUnavailableError, match="PACKSHOT_SEGMENT__SAM_CHECKPOINT"):
        get_segmenter(SegmentSettings(backend="sam"))


def test_corrupt_or_mismatched_checkpoint_is_a_clear_error(tmp_path):
    corrupt = tmp_path / "sam_vit_h_4b8939.pth"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    with pytest.raises(ModelUnavailableError, match="corrupt") as err:
        sam_module.load_sam("vit_h", corrupt)
    assert "PACKSHOT_SEGMENT__SAM_CHECKPOINT" in str(err.value)
    # the tiny model's weights are a real checkpoint, but not a ViT-B one
    with pytest.raises(ModelUnavailableError, match="does not fit model type vit_b"):
        sam_module._load_state(torch.nn.Linear(2, 2), sam_module.tiny_checkpoint(), "vit_b")


def test_tiny_checkpoint_loads_through_the_real_loading_path():
    path = sam_module.tiny_checkpoint()
    a = sam_module.load_sam("tiny", path)
    b = sam_module.load_sam("tiny", path)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name


def test_auto_says_which_backend_it_used(tmp_path):
    image, _ = studio_shot(size=96, shape="ball")
    settings = SegmentSettings(backend="auto", refine_edges=False, rembg_model_dir=tmp_path)  # no rembg model
    cutout = get_segmenter(settings).segment(image)
    assert cutout.backend == "classic"
    note = next(n for n in cutout.notes if n.startswith("segment: auto chose classic ("))
    assert "not sam: no SAM checkpoint configured" in note and "not rembg: " in note
