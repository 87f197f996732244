"""Memory plans are chosen once per process and card and kept (issue 23): a later run whose free
memory looks lower (this process's own caches) keeps the plan its models were loaded with; a run that
asks for another plan says so; the local video provider reuses the copy it holds."""

from __future__ import annotations

import pytest

from orchestrator.context import _check_fits
from orchestrator.plans import KeptPlans, plan_run
from orchestrator.settings import Settings
from packshot.memory import GIB

STAGES = ["segment", "background"]


def _settings(plan: str = "auto") -> Settings:
    return Settings(segment={"backend": "sam", "sam_checkpoint": "/models/sam.pth", "batch_size": 4},
                    generative={"backend": "flux", "flux_model": "/models/flux-fill", "memory_plan": plan})


def test_a_later_run_keeps_the_plan_of_the_first():
    kept, settings = KeptPlans(), _settings()
    first = plan_run(settings, STAGES, "cuda:0", free_bytes=int(23.4 * GIB))  # a 24 GB card, empty
    assert kept.apply(first, settings, STAGES, "cuda:0") == [] and first.image.plan == "fp8"
    # The next run on the same card: the free memory misses what this process caches (blocks, the
    # hot-swap slot, prompts), so planning again would fall to group offload and load FLUX again.
    later = plan_run(settings, STAGES, "cuda:0", free_bytes=int(12 * GIB))
    assert later.image.plan == "group-offload"
    notes = kept.apply(later, settings, STAGES, "cuda:0")
    assert later.image.plan == "fp8" and kept.chosen == 1
    assert any("kept" in n and "group-offload" in n for n in notes)
    _check_fits(later, settings)  # the kept plan is not refused for the low free figure
    other = plan_run(settings, STAGES, "cuda:1", free_bytes=int(79 * GIB))  # another card: its own choice
    kept.apply(other, settings, STAGES, "cuda:1")
    assert other.image.plan == "full" and kept.chosen == 2


def test_a_run_that_needs_another_plan_says_so():
    kept = KeptPlans()
    first = plan_run(_settings(), STAGES, "cuda:0", free_bytes=int(23.4 * GIB))
    kept.apply(first, _settings(), STAGES, "cuda:0")
    asks = _settings("group-offload")
    run = plan_run(asks, STAGES, "cuda:0", free_bytes=int(12 * GIB))
    (note,) = kept.apply(run, asks, STAGES, "cuda:0")
    assert "group-offload" in note and "fp8" in note and "PACKSHOT_GENERATIVE__MEMORY_PLAN" in note
    assert run.image.plan == "group-offload"
    kept.demote("cuda:0", "group-offload")  # an out-of-memory retry moved it: that is kept from now on
    again = plan_run(_settings(), STAGES, "cuda:0", free_bytes=int(23.4 * GIB))
    kept.apply(again, _settings(), STAGES, "cuda:0")
    assert again.image.plan == "group-offload"


def test_cpu_runs_plan_nothing():
    kept, settings = KeptPlans(), _settings()
    run = plan_run(settings, STAGES, "cpu")
    assert kept.apply(run, settings, STAGES, "cpu") == [] and kept.chosen == 0


@pytest.mark.filterwarnings("ignore")
def test_the_local_video_provider_reuses_the_copy_it_holds(tmp_path):
    """The context loaded the video model with the plan of the run's start; a clip must not plan again
    from the free memory (which does not count that copy) and load a second copy."""
    from packshot.registry import models
    from stages.video import ClipRequest, render_clips
    from stages.video.providers.local import LocalProvider
    from tests.fakes.clips import MemoryStore, fast_settings, product_image

    settings = fast_settings(provider="local", local_model="tiny", local_steps=2, local_fps=8,
                             local_long_side=64, duration_s=1)
    provider = LocalProvider(settings)
    models.free_where(lambda key: key.startswith("video:"))
    provider.load("tiny", plan="fp8")  # what the start of a run chose on a busy card
    loads = {k: v for k, v in models.load_counts.items() if k.startswith("video:")}
    assert provider.held_plan("tiny") == "fp8"
    items = [ClipRequest("LAMP", product_image(3, 240, 160), "Brass desk lamp")]
    (result,) = render_clips(items, settings, tmp_path, MemoryStore())
    assert result.status == "succeeded", result.error
    held = [k for k in models.loaded() if k.startswith("video:")]
    assert held == [f"video:{settings.local_pipeline}:tiny:fp8"]
    assert {k: v for k, v in models.load_counts.items() if k.startswith("video:")} == loads
    models.free_where(lambda key: key.startswith("video:"))
