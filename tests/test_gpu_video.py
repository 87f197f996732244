"""The local video model at the start of a run and after a failed load: a configured model that cannot
load stops the run before any batch; a tiny one is loaded at the start (it fits beside the image
models); a failed load is remembered, so later clips do not load tens of GB again."""

from __future__ import annotations

from pathlib import Path

import pytest

from packshot.errors import PackshotError
from packshot.registry import models
from stages.video import ClipRequest, render_clips
from stages.video.providers import local
from tests.fakes.clips import MemoryStore, fast_settings, product_image
from tests.studio import write_catalog

HERE = Path(__file__).parent


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_VIDEO__PROVIDER", "local")
    monkeypatch.setattr(local, "_failed_loads", {})
    return tmp_path


def _options(env: Path):
    from orchestrator.options import RunOptions

    catalog = write_catalog(env / "cat", [{"sku": "A"}])
    return RunOptions(catalog=str(catalog), out=str(env / "out"), presets=["test-shop"],
                      stages=["segment", "export", "video"])


def test_a_missing_video_model_stops_the_run_at_the_start(env, monkeypatch):
    from orchestrator import get_context

    monkeypatch.setenv("PACKSHOT_VIDEO__LOCAL_MODEL", str(env / "no-such-model"))
    with pytest.raises(PackshotError, match="PACKSHOT_VIDEO__LOCAL_MODEL"):
        get_context(_options(env))
    monkeypatch.delenv("PACKSHOT_VIDEO__LOCAL_MODEL")
    from orchestrator.settings import get_settings

    get_settings.cache_clear()
    with pytest.raises(PackshotError, match="no local video model: set PACKSHOT_VIDEO__LOCAL_MODEL"):
        get_context(_options(env))


def test_the_tiny_video_model_loads_at_the_start_under_its_plan(env, monkeypatch):
    from orchestrator import get_context

    monkeypatch.setenv("PACKSHOT_VIDEO__LOCAL_MODEL", "tiny")
    get_context(_options(env))
    assert models.load_counts.get("video:LTXImageToVideoPipeline:tiny:full", 0) >= 1
    assert "video:LTXImageToVideoPipeline:tiny:full" in models.loaded()


def test_a_failed_video_model_load_is_remembered_not_retried_per_clip(env, monkeypatch):
    from stages.video.providers import local

    calls = []
    real = local.load_pipeline_for_plan

    def counting(cls, source, *args, **kwargs):  # the one loader the local provider reads models with
        calls.append(source)
        return real(cls, source, *args, **kwargs)

    monkeypatch.setattr(local, "load_pipeline_for_plan", counting)
    settings = fast_settings(provider="local", local_model=str(env / "missing"), local_steps=2, local_fps=8,
                             local_long_side=96, duration_s=1)
    items = [ClipRequest(sku, product_image(i)) for i, sku in enumerate(["A", "B", "C"])]
    first = render_clips(items, settings, env / "state1", MemoryStore())
    again = render_clips(items[:1], settings, env / "state2", MemoryStore())
    assert {r.status for r in first + again} == {"failed"}
    assert all("PACKSHOT_VIDEO__LOCAL_MODEL" in r.error for r in first + again)
    assert len(calls) == 1, f"the missing model was loaded {len(calls)} times"


def test_loading_a_larger_model_frees_the_image_models_and_the_context_reloads_them(env, monkeypatch):
    import torch

    from orchestrator import get_context
    from orchestrator.context import DescribedBackend

    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "tiny")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__TINY_MODEL_DIR", str(env / "tiny-flux"))  # ours to free
    monkeypatch.delenv("PACKSHOT_VIDEO__PROVIDER")
    options = _options(env).model_copy(update={"stages": ["segment", "background", "export"]})
    ctx = get_context(options)
    flux_key = ctx.generator.key
    loads = models.load_counts[flux_key]
    # The card's budget has room for the next model only: FLUX must go first (the IOPaint switch)
    monkeypatch.setattr(models, "budget_bytes", 4096 + 1024)
    models.get("video:big-test-model", lambda: torch.nn.Linear(4, 4), size_hint=4096)
    assert flux_key not in models.loaded()
    assert isinstance(ctx.generator, DescribedBackend) and ctx.stale  # the context let go of the pipe
    assert ctx.generator.name == "tiny"  # still described for the manifest
    models.free("video:big-test-model")
    again = get_context(options)
    assert again is not ctx and again.generator.key == flux_key
    assert models.load_counts[flux_key] == loads + 1
