"""rembg backend: rembg's real sessions and onnxruntime on tiny ONNX models shaped like the real files.

Choosing rembg without its extra installed: tests/test_lean_install.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from packshot.errors import ModelUnavailableError
from packshot.registry import models
from stages.segment import BACKENDS, get_segmenter
from stages.segment.settings import SegmentSettings
from tests.rembg_models import write_tiny_rembg_model
from tests.studio import studio_shot

pytest.importorskip("rembg")
pytest.importorskip("onnxruntime")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _settings(folder: Path, model: str = "u2net", **kw) -> SegmentSettings:
    return SegmentSettings(backend="rembg", rembg_model=model, rembg_model_dir=folder, **kw)


@pytest.mark.parametrize("model", ["u2net", "isnet-general-use", "birefnet-general"])
def test_rembg_session_cuts_out_a_studio_shot(tmp_path, model):
    """Each family's preprocessing (320 or 1024 px, sigmoid or not) runs for real and finds the product."""
    write_tiny_rembg_model(tmp_path, model)
    image, truth = studio_shot(size=180, shape="mug")
    cutout = get_segmenter(_settings(tmp_path, model)).segment(image)
    assert cutout.backend == "rembg"
    assert _iou(cutout.alpha >= 128, truth >= 128) >= 0.95
    assert not cutout.needs_review and cutout.confidence >= 0.5, cutout.review_reasons
    assert f"rembg: {model}" in cutout.notes


def test_product_pixels_are_the_photos_bytes_and_edges_are_soft(tmp_path):
    write_tiny_rembg_model(tmp_path, "u2net")
    image, _ = studio_shot(size=200, shape="ball", color=(200, 40, 40))
    cutout = get_segmenter(_settings(tmp_path)).segment(image)
    solid = cutout.alpha == 255
    assert solid.sum() > 0.1 * solid.size
    assert np.array_equal(cutout.rgb[solid], image[solid])  # byte for byte where the product is opaque
    partial = (cutout.alpha > 0) & (cutout.alpha < 255)
    assert partial.any()  # the model's soft edge is kept as the matte
    # edge colors are the product's, not the white backdrop's: no light fringe on a dark background
    assert cutout.rgb[partial].astype(int).sum(axis=1).mean() < image[partial].astype(int).sum(axis=1).mean()


def test_rembg_model_layout_is_found_and_loaded_once(tmp_path):
    write_tiny_rembg_model(tmp_path, "u2net", layout="nested")  # <folder>/models/u2net/u2net.onnx
    settings = _settings(tmp_path)
    first = get_segmenter(settings)
    second = get_segmenter(settings)
    assert first.session is second.session
    key = next(k for k in models.load_counts if k.startswith("segment:rembg:u2net:") and str(tmp_path) in k)
    assert models.load_counts[key] == 1


def test_licence_per_model_is_reported(tmp_path):
    write_tiny_rembg_model(tmp_path, "u2net")
    write_tiny_rembg_model(tmp_path, "birefnet-general")
    assert get_segmenter(_settings(tmp_path, "u2net")).licence.startswith("Apache-2.0")
    assert get_segmenter(_settings(tmp_path, "birefnet-general")).licence.startswith("MIT")


def test_missing_model_names_the_setting_and_downloads_nothing(tmp_path):
    with pytest.raises(ModelUnavailableError) as info:
        get_segmenter(_settings(tmp_path, "birefnet-general"))
    message = str(info.value)
    assert "PACKSHOT_SEGMENT__REMBG_MODEL_DIR" in message
    assert "BiRefNet-general-epoch_244.onnx" in message  # where to get it
    assert str(tmp_path / "birefnet-general.onnx") in message  # where to put it
    assert list(tmp_path.iterdir()) == []  # nothing was fetched


def test_corrupt_model_file_is_a_clear_error(tmp_path):
    (tmp_path / "u2net.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ModelUnavailableError, match="could not be loaded"):
        get_segmenter(_settings(tmp_path))


def test_auto_chooses_rembg_when_its_model_file_is_present(tmp_path):
    write_tiny_rembg_model(tmp_path, "u2net")
    image, _ = studio_shot(size=96, shape="ball")
    cutout = get_segmenter(_settings(tmp_path).model_copy(update={"backend": "auto"})).segment(image)
    assert cutout.backend == "rembg"
    assert any(n.startswith("segment: auto chose rembg (not sam:") for n in cutout.notes)


def test_auto_prefers_a_configured_sam_and_skips_rembg_without_its_file(tmp_path):
    write_tiny_rembg_model(tmp_path, "u2net")
    with_sam = _settings(tmp_path).model_copy(update={"sam_checkpoint": tmp_path / "sam.pth"})
    assert BACKENDS.choose("auto", with_sam)[0].name == "sam"
    spec, notes = BACKENDS.choose("auto", _settings(tmp_path, "birefnet-general"))
    assert spec.name == "classic"
    assert f"not rembg: no birefnet-general.onnx in {tmp_path}" in notes[0]


def test_box_edge_contact_is_flagged(tmp_path):
    """A catalog box that cuts through the product: the cutout runs along the grown box's edge."""
    write_tiny_rembg_model(tmp_path, "u2net")
    image, truth = studio_shot(size=200, shape="bottle")
    ys, xs = np.nonzero(truth >= 128)
    x0, y0, x1, y1 = int(xs.min()) - 10, int(ys.min()) - 10, int(xs.max()) + 10, int(ys.max()) + 10
    seg = get_segmenter(_settings(tmp_path))
    good = seg.segment(image, (x0, y0, x1, y1))
    assert not good.needs_review, good.review_reasons
    assert _iou(good.alpha >= 128, truth >= 128) >= 0.95
    middle = (y0 + y1) // 2
    cut = seg.segment(image, (x0, y0, x1, middle))
    assert cut.needs_review
    assert any("edge of the catalog's box" in r for r in cut.review_reasons)
    assert not cut.alpha[middle + 20 :].any()  # nothing is invented outside what the model saw


def test_a_photo_without_a_product_needs_review(tmp_path):
    write_tiny_rembg_model(tmp_path, "u2net")
    blank = np.full((120, 160, 3), 240, np.uint8)
    cutout = get_segmenter(_settings(tmp_path)).segment(blank)
    assert cutout.needs_review and cutout.confidence < 0.5

