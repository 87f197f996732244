"""Two runs into one output: the run lease refuses the second one, the job ledger (under its file lock)
lets two processes share one spending cap and never pay twice, and a clip whose ledger entry was lost
is found in the output by its content key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from stages.video.encode import frames_to_mp4
from tests.fakes.clips import RUNWAY_KEY
from tests.fakes.runway import FakeRunway
from tests.studio import write_catalog

HERE = Path(__file__).parent
REPO = HERE.parent


@pytest.fixture
def runway(monkeypatch):
    server = FakeRunway(RUNWAY_KEY).start()
    server.video_bytes = frames_to_mp4(np.full((5, 64, 96, 3), 128, np.uint8), fps=8)
    env = {
        "RUNWAYML_API_SECRET": RUNWAY_KEY, "PACKSHOT_VIDEO__PROVIDER": "runway",
        "PACKSHOT_VIDEO__RUNWAY_BASE_URL": server.base_url, "PACKSHOT_VIDEO__POLL_INTERVAL_S": "0.02",
        "PACKSHOT_VIDEO__POLL_MAX_INTERVAL_S": "0.05", "PACKSHOT_VIDEO__RETRY_WAIT_S": "0.01",
        "PACKSHOT_VIDEO__MAX_SPEND_USD": "0.5",
        "PACKSHOT_EXPORT__PRESETS_FILE": str(HERE / "small_presets.yaml"),
        "PACKSHOT_SEGMENT__BACKEND": "classic",
        "PACKSHOT_VIDEO__DOWNLOAD__ALLOW_HTTP": "true",
        "PACKSHOT_VIDEO__DOWNLOAD__ALLOW_PRIVATE_ADDRESSES": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield server
    server.stop()


def _wait_for(condition, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_two_runs_at_once_into_one_output_pay_once_per_clip(prefect_api, runway, tmp_path):
    from flows.catalog_run import catalog_run
    from orchestrator.options import RunOptions

    catalog = write_catalog(tmp_path / "cat", [{"sku": "A", "shape": "bottle"}, {"sku": "B", "shape": "mug"}])
    options = RunOptions(catalog=str(catalog), out=str(tmp_path / "out"), presets=["test-shop"],
                         stages=["segment", "export", "video"])
    runway.paused = True  # the first run's clips stay RUNNING: it is mid-run when the second starts
    first: dict = {}
    thread = threading.Thread(target=lambda: first.update(state=catalog_run(options, return_state=True)))
    thread.start()
    try:
        _wait_for(lambda: runway.count("create") == 2, "the first run to submit its clips")
        second = catalog_run(options, return_state=True)
    finally:
        runway.paused = False
        thread.join(timeout=300)
    assert second.is_failed()
    message = second.message
    assert "packshot run" in message and f"pid {os.getpid()}" in message and "wait" in message, message
    assert "\n" not in message
    assert first["state"].is_completed()
    assert runway.count("create") == 2  # one paid submission per clip, $0.50 against the $0.50 cap
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert all(sum(o["kind"] == "clip" for o in p["outputs"]) == 1 for p in manifest["products"])


CHILD = textwrap.dedent("""
    import json, sys
    from stages.video import ClipRequest, render_clips
    from tests.fakes.clips import MemoryStore, fast_settings, product_image
    base_url, state_dir = sys.argv[1], sys.argv[2]
    items = [ClipRequest(f"SKU-{i}", product_image(i), "Leather tote bag") for i in range(3)]
    settings = fast_settings(provider="runway", runway_base_url=base_url, max_spend_usd=0.5,
                             concurrency={"runway": 3}, poll_timeout_s=60.0)
    print("ready", flush=True)
    sys.stdin.readline()
    results = render_clips(items, settings, state_dir, MemoryStore())
    print(json.dumps([r.status for r in results]), flush=True)
""")


def test_two_processes_sharing_one_job_ledger_pay_once_and_share_the_cap(runway, tmp_path):
    from stages.video.ledger import LEDGER_NAME

    env = {**os.environ, "PYTHONPATH": str(REPO), "RUNWAYML_API_SECRET": RUNWAY_KEY}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, runway.base_url, str(tmp_path)], cwd=REPO,
                                 env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(2)]
    runway.paused = True  # jobs stay RUNNING, so both processes are at work on the same clips at once
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        for child in children:  # both start together
            child.stdin.write("go\n")
            child.stdin.flush()
        _wait_for(lambda: runway.count("create") >= 2, "the clips to be submitted")
        time.sleep(0.5)  # room for a second (wrong) round of submissions to show up
        runway.paused = False
        statuses = [json.loads(child.communicate(timeout=120)[0].strip().splitlines()[-1])
                    for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait(timeout=10)
    assert runway.count("create") == 2  # 3 clips of $0.25 under a $0.50 cap: two paid, once each
    # Which clip misses the cap depends on how the two processes' claims interleave; it is the same one
    # for both, and the other two are paid (once) and shared.
    skipped = [[i for i, status in enumerate(per_process) if status == "skipped-budget"]
               for per_process in statuses]
    assert len(skipped[0]) == 1 and skipped[0] == skipped[1], statuses
    for per_process in statuses:
        others = {status for i, status in enumerate(per_process) if i != skipped[0][0]}
        assert others <= {"succeeded", "pending"}, statuses
    entries = json.loads((tmp_path / LEDGER_NAME).read_text())["clips"]
    assert round(sum(e["committed_usd"] for e in entries.values()), 2) <= 0.5
    assert sorted(e["status"] for e in entries.values()) == ["skipped-budget", "succeeded", "succeeded"]


def test_a_clip_whose_ledger_entry_was_lost_is_found_in_the_output_and_not_paid_again(runway, tmp_path):
    from stages.video import ClipRequest, render_clips
    from stages.video.ledger import LEDGER_NAME
    from tests.fakes.clips import fast_settings, product_image

    out = tmp_path / "out"

    def write(relpath: str, data: bytes) -> str:
        (out / relpath).parent.mkdir(parents=True, exist_ok=True)
        (out / relpath).write_bytes(data)
        return str(out / relpath)

    def find(relpath: str) -> str | None:
        return str(out / relpath) if (out / relpath).is_file() else None

    items = [ClipRequest("SKU-1", product_image(1), "Leather tote bag")]
    settings = fast_settings(provider="runway", runway_base_url=runway.base_url)
    (first,) = render_clips(items, settings, tmp_path / "state", write, find)
    assert first.status == "succeeded" and runway.count("create") == 1
    (tmp_path / "state" / LEDGER_NAME).unlink()  # the ledger is lost (a wiped state folder, a new machine)
    (again,) = render_clips(items, settings, tmp_path / "state", write, find)
    assert again.status == "succeeded" and again.output_uri == first.output_uri
    assert runway.count("create") == 1
    # A different image is different content: it is a new clip and is paid for.
    other = [ClipRequest("SKU-1", product_image(2), "Leather tote bag")]
    (third,) = render_clips(other, settings, tmp_path / "state", write, find)
    assert third.status == "succeeded" and third.output_uri != first.output_uri
    assert runway.count("create") == 2


def test_an_immediate_rerun_removes_the_temp_files_of_a_killed_run(prefect_api, monkeypatch, tmp_path):
    from flows.catalog_run import catalog_run
    from orchestrator.options import RunOptions

    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(HERE / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    catalog = write_catalog(tmp_path / "cat", [{"sku": "A"}])
    out = tmp_path / "out"
    out.mkdir()
    # What a run killed a moment ago (mid-publish of its manifest) leaves behind.
    (out / ".manifest.csv.k1llme.tmp").write_text("sku,status\nA,do")
    (out / "A").mkdir()
    (out / "A" / ".packshot-test-shop.jpg.x9.tmp").write_bytes(b"\xff\xd8")
    state = catalog_run(RunOptions(catalog=str(catalog), out=str(out), presets=["test-shop"],
                                   stages=["segment", "export"]), return_state=True)
    assert state.is_completed()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
