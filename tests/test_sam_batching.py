"""SAM in the pipeline: up to ``PACKSHOT_SEGMENT__BATCH_SIZE`` products share one image-encoder call, and
the CPU work around the model (the prompts before, the mask cleanup and edge refinement after) runs
while the card lock is not held (tiny SAM on the CPU, counted).

The card lock is real here: the CPU device is given a card UUID, so ``gpu_lock`` takes its ``flock``
in the test's lock folder, and ``gpu``'s extra guard (entered right after the lock, left right before
it is released) marks the thread that holds it.
"""

from __future__ import annotations

import math
import pickle
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from packshot import gpu
from stages.segment import classic, get_segmenter, model_batch, model_batch_size, model_prompt, sam_draft
from stages.segment.settings import SegmentSettings
from tests.studio import studio_shot, write_catalog

HERE = Path(__file__).parent
SHAPES = ["mug", "ball", "bottle", "disc", "bottle", "mug", "ball"]


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "tiny")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_ORCHESTRATION__GPU_LOCK_DIR", str(tmp_path / "locks"))
    return tmp_path


@pytest.fixture
def encoder_calls(monkeypatch):
    """The batch size of every SAM image-encoder forward in this process (the GPU holder's)."""
    from stages.segment._torchvision_compat import import_segment_anything

    ImageEncoderViT = import_segment_anything().modeling.ImageEncoderViT  # noqa: N806 (a class)
    calls: list[int] = []
    forward = ImageEncoderViT.forward
    monkeypatch.setattr(ImageEncoderViT, "forward",
                        lambda self, x: calls.append(x.shape[0]) or forward(self, x))
    return calls


def _run(env: Path, n: int, out: str):
    import orchestrator
    from orchestrator.settings import get_settings
    from packshot.catalog import load_catalog

    catalog = write_catalog(env / "cat", [{"sku": f"SAM-{i}", "shape": SHAPES[i % len(SHAPES)]}
                                          for i in range(n)])
    orchestrator.clear_contexts()
    get_settings.cache_clear()  # the environment changed between runs
    options = orchestrator.RunOptions(catalog=str(catalog), out=str(env / out), presets=["test-shop"],
                                      stages=["segment"])
    try:
        results = orchestrator.process_batch(load_catalog(catalog).products, options)
    finally:
        orchestrator.clear_contexts()
    assert [r.status for r in results] != [], results
    for r in results:
        assert r.status in ("done", "needs_review"), r.error
    return {r.sku: _cutout_alpha(env / out, r) for r in results}


def _cutout_alpha(out: Path, result) -> np.ndarray:
    (record,) = [o for o in result.outputs if o.kind == "cutout"]
    return np.asarray(Image.open(out / record.key))[..., 3]


def test_products_share_image_encoder_calls_up_to_the_batch_size(env, monkeypatch, encoder_calls):
    n, batch = 5, 2
    monkeypatch.setenv("PACKSHOT_SEGMENT__BATCH_SIZE", str(batch))
    batched = _run(env, n, "batched")
    assert len(encoder_calls) == math.ceil(n / batch)
    assert sorted(encoder_calls) == [1, 2, 2]

    encoder_calls.clear()
    monkeypatch.setenv("PACKSHOT_SEGMENT__BATCH_SIZE", "1")
    single = _run(env, n, "single")
    assert encoder_calls == [1] * n
    assert batched.keys() == single.keys()
    for sku, alpha in batched.items():  # the same cutouts, up to float rounding in the encoder
        assert alpha.shape == single[sku].shape
        assert (alpha != single[sku]).mean() < 0.01, sku


def test_cpu_work_around_the_model_never_runs_while_the_card_is_held(env, monkeypatch, encoder_calls):
    monkeypatch.setenv("PACKSHOT_SEGMENT__BATCH_SIZE", "3")
    monkeypatch.setattr(gpu, "card_uuid", lambda device: "GPU-test-sam-batching")  # a real flock on the CPU
    holder, holds = threading.local(), [0]

    @contextmanager
    def guard(uuid):
        holds[0] += 1
        holder.card = True
        try:
            yield
        finally:
            holder.card = False

    monkeypatch.setattr(gpu, "_extra_guard", guard)
    seen: dict[str, list[bool]] = {}  # step -> for each call: did the calling thread hold the card?

    def watch(module, name):
        real = getattr(module, name)

        def watched(*args, **kwargs):
            seen.setdefault(name, []).append(getattr(holder, "card", False))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, watched)

    watch(classic, "refine_edges")  # the edge refinement (finish)
    watch(sam_draft, "open_background_holes")  # the mask cleanup (finish)
    watch(sam_draft, "estimate_foreground")  # the prompts (before the model)
    alphas = _run(env, 4, "out")
    assert len(encoder_calls) == 2 and holds[0] >= 2  # the model calls did take the card lock
    for step, held in seen.items():
        assert True not in held, f"{held.count(True)} calls of {step} ran while their thread held the card"
    assert len(seen.get("estimate_foreground", [])) == 4  # made in this process, by the loader threads
    for sku, alpha in alphas.items():  # and every cutout was refined all the same (in the pool)
        soft = ((alpha > 0) & (alpha < 255)).sum()
        assert soft > 0, f"{sku}: a binary alpha, its edges were never refined"


def test_a_photo_that_fails_the_model_fails_only_its_own_product(env, monkeypatch, encoder_calls):
    """A batch whose model call fails is retried photo by photo: the others still get their cutouts."""
    import orchestrator
    from orchestrator.settings import get_settings
    from packshot.catalog import load_catalog
    from stages.segment.sam import SamSegmenter

    monkeypatch.setenv("PACKSHOT_SEGMENT__BATCH_SIZE", "3")
    folder = env / "cat"
    (folder / "images").mkdir(parents=True)
    Image.fromarray(studio_shot(size=200, shape="ball")[0]).save(folder / "images" / "odd.png")
    rows = [{"sku": "OK-1"}, {"sku": "ODD", "image": "images/odd.png"}, {"sku": "OK-2"}]
    catalog = write_catalog(folder, rows)
    draft = SamSegmenter._draft

    def failing(self, prompt):
        if prompt.size == (200, 200):
            raise RuntimeError("the mask decoder cannot take this photo (injected)")
        return draft(self, prompt)

    monkeypatch.setattr(SamSegmenter, "_draft", failing)
    orchestrator.clear_contexts()
    get_settings.cache_clear()
    options = orchestrator.RunOptions(catalog=str(catalog), out=str(env / "out"), presets=["test-shop"],
                                      stages=["segment"])
    try:
        results = {r.sku: r for r in orchestrator.process_batch(load_catalog(catalog).products, options)}
    finally:
        orchestrator.clear_contexts()
    assert results["ODD"].status == "failed" and "injected" in results["ODD"].error
    for sku in ("OK-1", "OK-2"):
        assert results[sku].status in ("done", "needs_review"), results[sku].error
        assert any(o.kind == "cutout" for o in results[sku].outputs)
    assert encoder_calls == [3, 1, 1, 1]  # the batch, then each photo alone


def test_a_draft_finished_later_is_the_cutout_segment_batch_makes():
    settings = SegmentSettings(backend="tiny", batch_size=2)  # edges refined
    segmenter = get_segmenter(settings)
    images = [studio_shot(size=160, shape=s, seed=i)[0] for i, s in enumerate(["mug", "ball", "bottle"])]
    boxes = [None, (20, 20, 140, 146), None]
    assert model_batch_size(segmenter) == 2
    prompts = [model_prompt(segmenter, im, box) for im, box in zip(images, boxes, strict=True)]
    drafts = model_batch(segmenter, images, boxes, prompts)
    drafts = pickle.loads(pickle.dumps(drafts))  # what crosses to a pool worker
    for draft, image in zip(drafts, images, strict=True):
        assert draft.masks.shape == (3, *image.shape[:2]) and draft.masks.dtype == bool
    later = [d.finish(im) for d, im in zip(drafts, images, strict=True)]
    now = segmenter.segment_batch(images, boxes)
    for a, b in zip(later, now, strict=True):
        assert np.array_equal(a.rgba, b.rgba)
        assert (a.notes, a.confidence, a.review_reasons) == (b.notes, b.confidence, b.review_reasons)
    assert any(((c.alpha > 0) & (c.alpha < 255)).any() for c in later)  # refined: not binary masks
    with pytest.raises(ValueError, match="does not fit the photo"):
        drafts[0].finish(images[0][:50])


def test_a_pool_worker_finishes_a_draft_without_importing_torch(tmp_path):
    """Finishing is numpy and OpenCV only: one worker per core must not each load torch for it."""
    import subprocess
    import sys

    segmenter = get_segmenter(SegmentSettings(backend="tiny"))
    image = studio_shot(size=160, shape="mug")[0]
    (draft,) = model_batch(segmenter, [image], [None])
    (tmp_path / "draft.pkl").write_bytes(pickle.dumps((draft, image)))
    script = ("import pickle, sys; draft, image = pickle.load(open(sys.argv[1], 'rb')); "
              "cutout = draft.finish(image); print(cutout.rgba.shape, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "draft.pkl")], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(160,", "160,", "4)", "False"]


def test_backends_without_drafts_are_cut_whole_one_photo_per_call():
    segmenter = get_segmenter(SegmentSettings(backend="classic", refine_edges=False, batch_size=4))
    image, _ = studio_shot(size=96, shape="ball")
    assert model_batch_size(segmenter) == 1  # a batch would only be a loop
    assert model_prompt(segmenter, image, None) is None
    (cutout,) = model_batch(segmenter, [image], [None])
    assert np.array_equal(cutout.rgba, segmenter.segment(image).rgba)
