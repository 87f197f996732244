"""Google Veo clips through the real ``google-genai`` SDK against a local fake of the Gemini API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stages.video import ClipRequest, render_clips
from stages.video.ledger import LEDGER_NAME
from tests.fakes.clips import MemoryStore, fast_settings, product_image
from tests.fakes.veo import FakeVeo

REPO = Path(__file__).resolve().parents[1]
GEMINI_KEY = "AIzaSy-test-0123456789abcdef"


@pytest.fixture
def fake(monkeypatch):
    server = FakeVeo(GEMINI_KEY).start()
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    yield server
    server.stop()


def settings_for(fake: FakeVeo, **overrides):
    return fast_settings(provider="veo", gemini_base_url=fake.base_url, **overrides)


def requests(n: int, prompt: str = "Leather tote bag") -> list[ClipRequest]:
    return [ClipRequest(f"SKU-{i}", product_image(i), prompt) for i in range(n)]


def ledger(state_dir: Path) -> dict:
    return json.loads((state_dir / LEDGER_NAME).read_text())["clips"]


def test_clips_are_submitted_polled_downloaded_and_priced_per_second(fake, tmp_path):
    store = MemoryStore()
    results = render_clips(requests(2), settings_for(fake), tmp_path, store)
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    for result in results:
        operation = fake.operations[result.job_id]
        assert operation["model"] == "veo-3.1-fast-generate-preview"
        assert operation["ratio"] == "16:9" and operation["image_size"] == (1280, 720)  # 3:2 photo padded
        assert operation["duration"] == 4 and "Leather tote bag" in operation["prompt"]  # 5 s: the cheaper 4
        assert store.files[result.output_uri.removeprefix("mem://")] == fake.files[operation["file"]]
        assert result.cost_usd == pytest.approx(0.40)  # 4 s at $0.10/s: Veo reports no cost
    assert {e["status"] for e in ledger(tmp_path).values()} == {"succeeded"}
    assert fake.count("create") == 2


def test_safety_refusals_are_recorded_and_never_retried(fake, tmp_path):
    fake.outcomes["FLAGGED"] = "safety"
    items = [ClipRequest("OK", product_image(1), "Mug"), ClipRequest("BAD", product_image(2), "FLAGGED mug")]
    results = render_clips(items, settings_for(fake), tmp_path, MemoryStore())
    assert [r.status for r in results] == ["succeeded", "rejected"]
    assert results[1].error_code == "SAFETY.FILTERED" and "violates policy" in results[1].error
    again = render_clips(items, settings_for(fake), tmp_path, MemoryStore())
    assert [r.status for r in again] == ["succeeded", "rejected"]
    assert fake.count("create") == 2


def test_throttling_is_retried_and_a_bad_key_or_unknown_model_stops_the_provider(fake, tmp_path, monkeypatch):
    fake.fail_next("create", 429, 503)
    first = render_clips(requests(1), settings_for(fake), tmp_path / "a", MemoryStore())[0]
    assert first.status == "succeeded"
    assert fake.count("create") == 3
    gone = render_clips(requests(2), settings_for(fake, model="veo-2.0-generate-001",
                                                  prices_usd_per_s={"veo/*": 0.1}),
                        tmp_path / "b", MemoryStore())
    assert [r.error_code for r in gone] == ["MODEL_GONE"] * 2 and "veo-3.1" in gone[0].error
    monkeypatch.setenv("GEMINI_API_KEY", "wrong-key")
    bad = render_clips(requests(1, "Oak chair"), settings_for(fake), tmp_path / "c", MemoryStore())[0]
    assert bad.status == "failed" and "GEMINI_API_KEY" in bad.error and "wrong-key" not in bad.error


def test_budget_cap_counts_per_second_prices(fake, tmp_path):
    results = render_clips(requests(3), settings_for(fake, max_spend_usd=1.0, concurrency={"veo": 1}),
                           tmp_path, MemoryStore())
    assert [r.status for r in results] == ["succeeded", "succeeded", "skipped-budget"]
    assert fake.count("create") == 2


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from stages.video import render_clips
    from tests.fakes.clips import MemoryStore, fast_settings
    from tests.test_video_veo import requests
    settings = fast_settings(provider="veo", gemini_base_url=sys.argv[1], poll_timeout_s=600,
                             concurrency={"veo": 3})
    render_clips(requests(3), settings, Path(sys.argv[2]), MemoryStore())
    """
)


def test_a_killed_run_resumes_its_operations_and_never_pays_twice(fake, tmp_path):
    fake.paused = True  # operations stay running until the worker has been killed
    env = {**os.environ, "PYTHONPATH": str(REPO), "GEMINI_API_KEY": GEMINI_KEY}
    child = subprocess.Popen([sys.executable, "-c", CHILD, fake.base_url, str(tmp_path)], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            path = tmp_path / LEDGER_NAME
            if path.exists() and fake.count("retrieve") >= 3:
                entries = ledger(tmp_path)
                if len(entries) == 3 and all(e["status"] == "submitted" for e in entries.values()):
                    break
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            time.sleep(0.1)
        else:
            pytest.fail("the worker never got its 3 operations submitted and polled")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    paid = {e["job_id"] for e in ledger(tmp_path).values()}
    fake.paused = False
    results = render_clips(requests(3), settings_for(fake), tmp_path, MemoryStore())
    assert [r.status for r in results] == ["succeeded"] * 3
    assert {r.job_id for r in results} == paid and fake.count("create") == 3  # nothing submitted twice


def test_estimate_prices_a_catalog_for_veo_without_submitting(monkeypatch):
    from typer.testing import CliRunner

    from cli.main import app

    monkeypatch.setenv("PACKSHOT_VIDEO__GEMINI_BASE_URL", "http://127.0.0.1:9")  # any request would fail
    result = CliRunner().invoke(app, ["estimate", str(REPO / "catalogs/demo/catalog.csv"), "--limit", "3",
                                      "--provider", "veo", "--duration", "8"])
    assert result.exit_code == 0, result.output
    assert result.output.count("veo/veo-3.1-fast-generate-preview") == 3
    assert "$2.40 for 3 clips" in result.output  # 3 clips x 8 s x $0.10/s


def test_sora_is_retired_and_names_the_providers_to_use_instead():
    from stages.video.providers.sora import GONE_ADVICE

    assert "2026-09-24" in GONE_ADVICE and "veo" in GONE_ADVICE and "runway" in GONE_ADVICE
