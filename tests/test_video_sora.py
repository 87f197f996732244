"""Sora clips through the real ``openai`` SDK against a local fake of the Videos API."""

from __future__ import annotations

import pytest

from stages.video import ClipRequest, render_clips
from tests.fakes.clips import OPENAI_KEY, RUNWAY_KEY, MemoryStore, fast_settings, product_image
from tests.fakes.openai_videos import FakeOpenAIVideos
from tests.fakes.runway import FakeRunway


@pytest.fixture
def fake(monkeypatch):
    server = FakeOpenAIVideos(OPENAI_KEY).start()
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    yield server
    server.stop()


def settings_for(fake: FakeOpenAIVideos, **overrides):
    return fast_settings(provider="sora", openai_base_url=f"{fake.base_url}/v1", **overrides)


def test_the_reference_frame_matches_the_requested_size_and_the_clip_is_stored(fake, tmp_path):
    items = [
        ClipRequest("WIDE", product_image(1, 240, 160), "Ceramic mug"),
        ClipRequest("TALL", product_image(2, 160, 280), "Floor lamp", duration_s=10),
    ]
    store = MemoryStore()
    results = render_clips(items, settings_for(fake), tmp_path, store)
    assert [r.status for r in results] == ["succeeded", "succeeded"]  # the fake rejects mismatched sizes
    wide, tall = (fake.videos[r.job_id] for r in results)
    assert (wide["size"], wide["seconds"]) == ("1280x720", "4")
    assert (tall["size"], tall["seconds"]) == ("720x1280", "8")
    assert results[0].cost_usd == pytest.approx(0.4) and results[1].cost_usd == pytest.approx(0.8)
    assert store.files[results[1].output_uri.removeprefix("mem://")] == tall["content"]


def test_moderation_failures_are_recorded_and_never_retried(fake, tmp_path):
    fake.outcomes["FACE"] = "moderation"
    items = [ClipRequest("P1", product_image(1), "FACE model wearing the scarf")]
    result = render_clips(items, settings_for(fake), tmp_path, MemoryStore())[0]
    assert result.status == "rejected" and result.error_code == "moderation_blocked"
    assert render_clips(items, settings_for(fake), tmp_path, MemoryStore())[0].status == "rejected"
    assert fake.count("create") == 1


def test_withdrawn_api_fails_fast_suggests_another_provider_and_the_run_goes_on(fake, tmp_path, monkeypatch):
    fake.gone = True
    runway = FakeRunway(RUNWAY_KEY).start()
    monkeypatch.setenv("RUNWAYML_API_SECRET", RUNWAY_KEY)
    try:
        settings = settings_for(fake, runway_base_url=runway.base_url, concurrency={"sora": 1, "runway": 1})
        items = [ClipRequest(f"S{i}", product_image(i), "Vase") for i in range(3)]
        items.append(ClipRequest("R1", product_image(9), "Vase", provider="runway"))
        results = render_clips(items, settings, tmp_path, MemoryStore())
    finally:
        runway.stop()
    sora, other = results[:3], results[3]
    assert all(r.status == "failed" and r.error_code == "MODEL_GONE" for r in sora)
    assert all("PACKSHOT_VIDEO__PROVIDER=veo" in r.error and "runway" in r.error for r in sora)
    assert fake.count("create") == 1  # the first answer stopped the other Sora clips
    assert other.status == "succeeded"
