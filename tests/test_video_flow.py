"""The video stage inside the catalog flow: one clip per product, stored with the run, never paid twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stages.video.encode import frames_to_mp4
from tests.fakes.clips import RUNWAY_KEY
from tests.fakes.runway import FakeRunway
from tests.studio import write_catalog

HERE = Path(__file__).parent


@pytest.fixture
def runway(monkeypatch):
    server = FakeRunway(RUNWAY_KEY).start()
    server.video_bytes = frames_to_mp4(np.full((5, 64, 96, 3), 128, np.uint8), fps=8)
    env = {
        "RUNWAYML_API_SECRET": RUNWAY_KEY, "PACKSHOT_VIDEO__PROVIDER": "runway",
        "PACKSHOT_VIDEO__RUNWAY_BASE_URL": server.base_url, "PACKSHOT_VIDEO__POLL_INTERVAL_S": "0.02",
        "PACKSHOT_VIDEO__POLL_MAX_INTERVAL_S": "0.05", "PACKSHOT_VIDEO__RETRY_WAIT_S": "0.01",
        "PACKSHOT_EXPORT__PRESETS_FILE": str(HERE / "small_presets.yaml"),
        "PACKSHOT_SEGMENT__BACKEND": "classic",
        # the fake serves result files over plain http on 127.0.0.1
        "PACKSHOT_VIDEO__DOWNLOAD__ALLOW_HTTP": "true",
        "PACKSHOT_VIDEO__DOWNLOAD__ALLOW_PRIVATE_ADDRESSES": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield server
    server.stop()


def test_flow_makes_one_clip_per_product_and_a_rerun_pays_nothing(prefect_api, runway, tmp_path):
    from flows.catalog_run import catalog_run
    from orchestrator.options import RunOptions

    catalog = write_catalog(tmp_path / "cat", [{"sku": "A", "shape": "bottle"}, {"sku": "B", "shape": "mug"}])
    out = tmp_path / "out"
    options = RunOptions(catalog=str(catalog), out=str(out), presets=["test-shop"],
                         stages=["segment", "export", "video"])
    catalog_run(options)

    manifest = json.loads((out / "manifest.json").read_text())
    for product in manifest["products"]:
        clips = [o for o in product["outputs"] if o["kind"] == "clip"]
        assert len(clips) == 1, product
        clip = clips[0]
        assert (out / clip["key"]).read_bytes() == runway.video_bytes
        assert (clip["width"], clip["height"], clip["checks"], clip["generated"]) == (96, 64, [], True)
        assert any("cost $0.25" in n for n in product["notes"])
    assert runway.count("create") == 2
    assert RUNWAY_KEY not in (out / "manifest.json").read_text() + (out / "report.html").read_text()

    catalog_run(options)  # a rerun resumes from the job ledger: no new submissions
    assert runway.count("create") == 2
    again = json.loads((out / "manifest.json").read_text())
    assert all(any(o["kind"] == "clip" for o in p["outputs"]) for p in again["products"])
