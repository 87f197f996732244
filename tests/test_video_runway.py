"""Runway clips through the real ``runwayml`` SDK against a local fake of its HTTP API."""

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
from tests.fakes.clips import RUNWAY_KEY, MemoryStore, fast_settings, product_image
from tests.fakes.runway import FakeRunway

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake(monkeypatch):
    server = FakeRunway(RUNWAY_KEY).start()
    monkeypatch.setenv("RUNWAYML_API_SECRET", RUNWAY_KEY)
    yield server
    server.stop()


def settings_for(fake: FakeRunway, **overrides):
    return fast_settings(provider="runway", runway_base_url=fake.base_url, **overrides)


def requests(n: int, prompt: str = "Leather tote bag") -> list[ClipRequest]:
    return [ClipRequest(f"SKU-{i}", product_image(i), prompt) for i in range(n)]


def ledger(state_dir: Path) -> dict:
    return json.loads((state_dir / LEDGER_NAME).read_text())["clips"]


def test_clips_are_submitted_polled_downloaded_and_recorded(fake, tmp_path):
    store = MemoryStore()
    results = render_clips(requests(2), settings_for(fake), tmp_path, store)

    assert [r.status for r in results] == ["succeeded", "succeeded"]
    for result in results:
        task = fake.tasks[result.job_id]
        assert store.files[result.output_uri.removeprefix("mem://")] == task["video"]
        assert task["image_size"] == (1104, 832)  # the 3:2 photo padded to the closest Runway ratio
        assert task["ratio"] == "1104:832" and task["duration"] == 5 and "Leather tote bag" in task["prompt"]
        assert result.cost_usd == 0.25  # 25 credits reported by the task
    entries = ledger(tmp_path)
    assert {e["status"] for e in entries.values()} == {"succeeded"}
    assert {e["job_id"] for e in entries.values()} == {r.job_id for r in results}
    assert fake.count("create") == 2


def test_throttling_and_server_errors_are_retried_a_bounded_number_of_times(fake, tmp_path):
    fake.fail_next("create", 429, 503)
    fake.fail_next("retrieve", 502)
    result = render_clips(requests(1), settings_for(fake), tmp_path / "a", MemoryStore())[0]
    assert result.status == "succeeded"
    assert fake.count("create") == 3  # two refusals, one accepted: the SDK's own retries are off

    fake.fail_next("create", 429, 429, 429, 429)
    failed = render_clips(
        requests(1, "Oak chair"), settings_for(fake, max_retries=2), tmp_path / "b", MemoryStore()
    )
    assert failed[0].status == "failed" and failed[0].error_code == "RETRIES_EXHAUSTED"
    assert fake.count("create") == 3 + 3  # 1 try + 2 retries, then the clip gives up
    assert ledger(tmp_path / "b")[next(iter(ledger(tmp_path / "b")))]["committed_usd"] == 0.0


def test_a_poll_that_times_out_is_retried(fake, tmp_path):
    fake.fail_next("retrieve", ("delay", 1.0))
    result = render_clips(requests(1), settings_for(fake, request_timeout_s=0.3), tmp_path, MemoryStore())[0]
    assert result.status == "succeeded"
    assert fake.count("retrieve") >= 3 and fake.count("create") == 1


def test_safety_failures_are_recorded_and_never_retried(fake, tmp_path):
    fake.outcomes["FLAGGED"] = "safety"
    items = [ClipRequest("OK", product_image(1), "Mug"), ClipRequest("BAD", product_image(2), "FLAGGED mug")]
    results = render_clips(items, settings_for(fake), tmp_path, MemoryStore())
    assert [r.status for r in results] == ["succeeded", "rejected"]
    assert results[1].error_code == "SAFETY.INPUT.IMAGE" and "moderation" in results[1].error
    assert fake.count("create") == 2

    again = render_clips(items, settings_for(fake), tmp_path, MemoryStore())
    assert [r.status for r in again] == ["succeeded", "rejected"]
    assert fake.count("create") == 2  # neither resubmitted: one is done, the other was refused for good


def test_an_expired_output_url_is_refreshed_from_the_task(fake, tmp_path):
    fake.outcomes["EXPIRE"] = "expire-url"
    store = MemoryStore()
    result = render_clips(requests(1, "EXPIRE tote"), settings_for(fake), tmp_path, store)[0]
    assert result.status == "succeeded"
    assert fake.count("download") == 2  # v1 answered 403 "Request has expired", v2 worked
    assert list(store.files.values()) == [fake.tasks[result.job_id]["video"]]


def test_budget_cap_skips_clips_and_a_rerun_counts_what_was_already_spent(fake, tmp_path):
    items = requests(3)
    first = render_clips(
        items, settings_for(fake, max_spend_usd=0.5, concurrency={"runway": 1}), tmp_path, MemoryStore()
    )
    assert [r.status for r in first] == ["succeeded", "succeeded", "skipped-budget"]
    assert "PACKSHOT_VIDEO__MAX_SPEND_USD" in first[2].error
    assert fake.count("create") == 2

    same_cap = render_clips(items, settings_for(fake, max_spend_usd=0.5), tmp_path, MemoryStore())
    assert [r.status for r in same_cap] == ["succeeded", "succeeded", "skipped-budget"]
    raised = render_clips(items, settings_for(fake, max_spend_usd=0.75), tmp_path, MemoryStore())
    assert [r.status for r in raised] == ["succeeded"] * 3
    assert fake.count("create") == 3  # only the skipped clip was submitted on the rerun


def test_concurrency_per_provider_stays_within_the_limit(fake, tmp_path):
    fake.polls_to_finish = 8  # long enough that both slots fill even on a loaded machine
    results = render_clips(
        requests(5), settings_for(fake, concurrency={"runway": 2}), tmp_path, MemoryStore()
    )
    assert all(r.status == "succeeded" for r in results)
    assert fake.max_active == 2


def test_a_retired_model_fails_fast_with_advice_and_the_run_goes_on(fake, tmp_path):
    settings = settings_for(
        fake, model="gen3a_turbo", concurrency={"runway": 1}, prices_usd_per_s={"runway/gen3a_turbo": 0.05}
    )
    results = render_clips(requests(3), settings, tmp_path, MemoryStore())
    assert [r.status for r in results] == ["failed"] * 3
    assert all(r.error_code == "MODEL_GONE" and "gen4_turbo" in r.error for r in results)
    assert fake.count("create") == 1  # the other clips did not knock on a closed door


def test_a_job_still_running_at_the_poll_timeout_is_resumed_by_the_next_run(fake, tmp_path):
    fake.paused = True
    first = render_clips(requests(1), settings_for(fake, poll_timeout_s=0.3), tmp_path, MemoryStore())[0]
    assert first.status == "pending" and "next run resumes" in first.error
    assert ledger(tmp_path)[next(iter(ledger(tmp_path)))]["status"] == "submitted"
    fake.paused = False
    second = render_clips(requests(1), settings_for(fake), tmp_path, MemoryStore())[0]
    assert second.status == "succeeded" and second.job_id == first.job_id
    assert fake.count("create") == 1


def test_a_run_killed_mid_submission_is_not_resubmitted_blindly(fake, tmp_path):
    from stages.video.ledger import JobLedger
    from stages.video.plan import resolve_clip

    settings = settings_for(fake)
    spec, _ = resolve_clip(requests(1)[0], settings, {})
    JobLedger(tmp_path).reserve(spec, settings.max_spend_usd)  # what a crash right after reserving leaves
    result = render_clips(requests(1), settings, tmp_path, MemoryStore())[0]
    assert result.status == "failed" and result.error_code == "INTERRUPTED_SUBMISSION"
    assert "may have been charged" in result.error and result.cost_usd == 0.25
    assert fake.count("create") == 0


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from stages.video import render_clips
    from tests.fakes.clips import MemoryStore, fast_settings
    from tests.test_video_runway import requests
    settings = fast_settings(provider="runway", runway_base_url=sys.argv[1], poll_timeout_s=600,
                             concurrency={"runway": 3})
    render_clips(requests(3), settings, Path(sys.argv[2]), MemoryStore())
    """
)


def test_a_killed_run_resumes_its_paid_jobs_and_never_submits_them_again(fake, tmp_path):
    fake.paused = True  # jobs stay RUNNING until the worker has been killed
    env = {**os.environ, "PYTHONPATH": str(REPO), "RUNWAYML_API_SECRET": RUNWAY_KEY}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, fake.base_url, str(tmp_path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            path = tmp_path / LEDGER_NAME
            if path.exists() and fake.count("retrieve") >= 3:
                entries = ledger(tmp_path)
                if len(entries) == 3 and all(e["status"] == "submitted" for e in entries.values()):
                    break
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            time.sleep(0.1)
        else:
            pytest.fail("the worker never got its 3 jobs submitted and polled")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert fake.count("create") == 3
    paid_jobs = {e["job_id"] for e in ledger(tmp_path).values()}

    fake.paused = False
    store = MemoryStore()
    results = render_clips(requests(3), settings_for(fake), tmp_path, store)
    assert [r.status for r in results] == ["succeeded"] * 3
    assert {r.job_id for r in results} == paid_jobs
    assert fake.count("create") == 3  # resumed polling; nothing was submitted twice
    assert len(store.files) == 3
