"""Out of GPU memory in a product: the cache is emptied and the product retried once with the next
lighter memory plan (later products keep it); when that fails too, the run stops with the setting to
change, and the products finished before stay done for the resume. The error is a real
``torch.OutOfMemoryError`` raised from the real (tiny) FLUX Fill call."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from packshot.registry import models
from stages.background.generators import FluxFillGenerator
from tests.studio import write_catalog

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny FLUX of these tests' own: the models they free and reload are not other tests' models."""
    return tmp_path_factory.mktemp("oom-tiny-flux") / "model"


@pytest.fixture
def env(monkeypatch, tmp_path, tiny_dir):
    monkeypatch.setenv("PACKSHOT_GENERATIVE__TINY_MODEL_DIR", str(tiny_dir))
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "tiny")
    return tmp_path


@pytest.fixture
def out_of_memory(monkeypatch):
    """Make the listed FLUX calls (1-based, counted across generators) raise torch.OutOfMemoryError."""
    failing: set[int] = set()
    calls = [0]
    real_fill = FluxFillGenerator.fill_batch

    def fill_batch(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] in failing:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return real_fill(self, *args, **kwargs)

    monkeypatch.setattr(FluxFillGenerator, "fill_batch", fill_batch)
    return failing


def _run(env: Path, skus: list[str]):
    import orchestrator as pipeline
    from packshot.catalog import load_catalog

    catalog = write_catalog(env / "cat", [{"sku": s} for s in skus])
    options = pipeline.RunOptions(catalog=str(catalog), out=str(env / "out"), presets=["test-shop"],
                                  stages=["segment", "background", "export"])
    return pipeline, options, load_catalog(catalog).products


def test_out_of_memory_retries_the_product_once_with_the_next_lighter_plan(env, out_of_memory):
    pipeline, options, products = _run(env, ["A"])
    out_of_memory.add(1)  # product A's background
    results = pipeline.process_batch(products, options)
    assert [r.status for r in results] == ["done"], [r.error for r in results]
    ctx = pipeline.get_context(options)
    assert ctx.image_plan == "text-offload"  # CPU: "full" first, then the next lighter plan, kept for B
    model = ctx.generator.key.rsplit(":", 1)[0]  # flux-fill:<source>@main:cpu
    plans = [key.rsplit(":", 1)[1] for key in models.loaded() if key.startswith(model + ":")]
    assert plans == ["text-offload"], "the full-plan pipeline should have been freed before the reload"
    assert "memory plan text-offload" in " ".join(ctx.generator.notes)


def test_out_of_memory_twice_stops_the_run_with_advice_and_keeps_finished_products(env, out_of_memory):
    from orchestrator.oom import RunStopped

    pipeline, options, products = _run(env, ["A", "B"])
    out_of_memory.update({2, 3})  # the second product's fill fails, and its retry with the lighter plan too
    with pytest.raises(RunStopped) as stopped:
        pipeline.process_batch(products, options)
    message = str(stopped.value)
    assert "PACKSHOT_GENERATIVE__MEMORY_PLAN=fp8" in message and "text-offload" in message
    assert "resume" in message
    out = env / "out"
    # Pool workers prepare products in any order: the one whose fill ran first is finished, the other not.
    finished = {sku for sku in "AB" if (out / sku / ".done.json").is_file()}
    assert len(finished) == 1, finished

    out_of_memory.clear()  # the resume: the finished product is reused, the other one is made
    pipeline.clear_contexts()
    results = pipeline.process_batch(products, options)
    assert {r.sku: r.status for r in results} == {s: "skipped" if s in finished else "done" for s in "AB"}


def test_out_of_memory_with_no_lighter_plan_stops_at_once(env, out_of_memory, monkeypatch):
    from orchestrator.oom import RunStopped

    monkeypatch.setenv("PACKSHOT_GENERATIVE__MEMORY_PLAN", "group-offload")
    pipeline, options, products = _run(env, ["A"])
    out_of_memory.add(1)
    with pytest.raises(RunStopped, match="no lighter plan applies.*group-offload was the lightest tried"):
        pipeline.process_batch(products, options)
