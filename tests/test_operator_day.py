"""An operator's day: `packshot check` agrees with the run and fails a photo on a table; hostile
feeds, read-only outputs and deep temp folders give one line (or just work), never a traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _white_product_cutout(size: int = 600) -> np.ndarray:
    """``HxWx4``: a near-white product (a white sneaker's sole, a porcelain cup: 15 levels below white,
    so an estimate from the pixels alone takes it for background) with a small dark logo."""
    rgba = np.zeros((size, size, 4), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    body = (xx - size / 2) ** 2 / (size * 0.45) ** 2 + (yy - size / 2) ** 2 / (size * 0.3) ** 2 <= 1
    rgba[body] = (240, 240, 240, 255)
    logo = (abs(xx - size / 2) < size * 0.05) & (abs(yy - size / 2) < size * 0.05)
    rgba[logo] = (30, 30, 30, 255)
    return rgba


def test_check_agrees_with_the_run_on_the_runs_own_packshots(tmp_path):
    from cli.main import app
    from orchestrator.manifest import ManifestWriter
    from packshot.schemas.presets import get_preset
    from packshot.schemas.results import OutputRecord, ProductResult, RunManifest
    from packshot.storage import LocalStorage
    from packshot.types import Cutout
    from stages.export.render import compose_packshot, encode_checked

    preset = get_preset("amazon-main")
    rgba = _white_product_cutout()
    data, violations = encode_checked(compose_packshot(Cutout(rgba, backend="classic"), preset), preset)
    assert [v for v in violations if not v.warning] == []  # the run passes it
    out = tmp_path / "run"
    storage = LocalStorage(out)
    buf = Path(tmp_path / "cutout.png")
    Image.fromarray(rgba, "RGBA").save(buf)
    storage.write_bytes("SHOE-1/cutout.png", buf.read_bytes())
    storage.write_bytes("SHOE-1/packshot-amazon-main.jpg", data)
    common = {"sku": "SHOE-1", "format": "JPEG", "bytes": len(data), "sha256": "0" * 64,
              "source_file": "c.csv", "source_line": 2}
    outputs = [OutputRecord(kind="cutout", key="SHOE-1/cutout.png", uri="u", width=600, height=600,
                            **{**common, "format": "PNG"}),
               OutputRecord(kind="packshot", key="SHOE-1/packshot-amazon-main.jpg", uri="u",
                            preset="amazon-main", width=preset.width, height=preset.height, **common)]
    header = RunManifest(catalog="c.csv", catalog_format="packshot", output=str(out), stages=[],
                         presets=["amazon-main"], started="2026-01-01T00:00:00Z", products=[])
    with ManifestWriter(storage) as manifest:
        manifest.add(ProductResult(sku="SHOE-1", status="done", outputs=outputs, source_file="c.csv",
                                   source_line=2))
        manifest.publish(header)

    result = runner.invoke(app, ["check", str(out / "SHOE-1" / "packshot-amazon-main.jpg"),
                                 "--preset", "amazon-main"])
    assert result.exit_code == 0, result.output  # the same verdict as the run: checked with its matte
    # The same file outside its run folder has no matte: the product region is estimated from the
    # pixels, and the near-white product reads as off-white background.
    (tmp_path / "loose.jpg").write_bytes(data)
    result = runner.invoke(app, ["check", str(tmp_path / "loose.jpg"), "--preset", "amazon-main"])
    assert result.exit_code == 1 and "white-background" in result.output


def test_check_fails_a_photo_on_a_wooden_table_on_the_white_background_rule(tmp_path):
    from cli.main import app
    from packshot.schemas.presets import get_preset
    from stages.export.validate import check

    rng = np.random.default_rng(3)
    h, w = 1200, 1600
    grain = (np.sin(np.arange(w) / 9.0)[None, :] * 18 + rng.normal(0, 6, (h, w))).astype(np.int16)
    photo = np.empty((h, w, 3), np.int16)
    photo[..., 0], photo[..., 1], photo[..., 2] = 150 + grain, 100 + grain, 60 + grain  # wood
    yy, xx = np.mgrid[:h, :w]
    photo[(xx - w / 2) ** 2 + (yy - h / 2) ** 2 < 300**2] = (235, 235, 230)  # a white cup on it
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(tmp_path / "table.jpg", quality=92)
    result = runner.invoke(app, ["check", str(tmp_path / "table.jpg"), "--preset", "amazon-main"])
    assert result.exit_code == 1
    assert "white-background" in result.output and "edge is not white" in result.output

    # A real packshot whose product touches the top and bottom of the frame still passes the rule.
    tall = np.full((1200, 1200, 3), 255, np.uint8)
    tall[:, 450:750] = (40, 60, 90)
    Image.fromarray(tall).save(tmp_path / "tall.png")
    violations = check((tmp_path / "tall.png").read_bytes(), get_preset("amazon-main").model_copy(
        update={"format": "PNG"}))
    assert not [v for v in violations if v.rule == "white-background"], violations


def test_a_feed_nested_1200_deep_is_one_line_under_validate(tmp_path):
    from cli.main import app

    depth = 1200
    feed = ('<?xml version="1.0"?><rss xmlns:g="http://base.google.com/ns/1.0"><channel>'
            + "<a>" * depth + "x" + "</a>" * depth + "</channel></rss>")
    (tmp_path / "feed.xml").write_text(feed)
    assert len(feed) < 9000
    result = runner.invoke(app, ["validate", str(tmp_path / "feed.xml")])
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1 and "nested more than" in result.output
    assert "Traceback" not in result.output and "RecursionError" not in result.output


def test_a_read_only_output_is_one_line_before_any_work(tmp_path, monkeypatch):
    from cli.main import app
    from tests.studio import write_catalog

    catalog = write_catalog(tmp_path / "cat", [{"sku": "A"}])
    out = tmp_path / "out"
    out.mkdir()
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # a read-only mount (root ignores chmod, so patch)
        if str(path).startswith(str(out)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    result = runner.invoke(app, ["run", str(catalog), "--out", str(out), "--stages", "segment,export"])
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1 and "Read-only file system" in result.output, result.output
    assert "Traceback" not in result.output
    assert list(out.iterdir()) == []


def test_the_worker_pool_starts_under_a_temp_folder_too_deep_for_a_socket(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    code = ("import os\nfrom orchestrator.pool import CpuPool\n"
            "if __name__ == '__main__':\n"
            "    pool = CpuPool(1, os.getpid, ())\n"
            "    print('worker', pool.submit(os.getpid).result(timeout=120))\n"
            "    pool.shutdown()\n")
    (tmp_path / "start_pool.py").write_text(code)
    env = {**os.environ, "TMPDIR": str(deep), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(tmp_path / "start_pool.py")], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0 and "worker" in done.stdout, done.stderr[-2000:]


def test_cli_messages_are_never_cut_at_the_terminal_width(tmp_path):
    """A narrow terminal (or CI's 80 columns) and a long path must not split a message into lines: a
    script, a log search or a test reads the same line at any width."""
    folder = tmp_path / ("long-folder-name-" * 4)
    folder.mkdir()
    os.mkfifo(folder / "pipe.jpg")
    env = {**os.environ, "COLUMNS": "40", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", "from cli.main import app; app()", "check",
                           str(folder / "pipe.jpg"), "--preset", "shopify"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(f"{folder / 'pipe.jpg'} is not a regular file (a pipe, socket or device); reference the image "
               "file itself" in line for line in lines), lines


def test_the_worker_pool_ends_with_a_run_that_was_killed_outright(tmp_path):
    """SIGKILL (the OOM killer) gives a run no chance to stop its pool: the workers and their
    forkserver must end by themselves rather than wait for work forever."""
    import signal
    import time

    import psutil

    code = ("import os, signal, psutil\nfrom orchestrator.pool import CpuPool\n"
            "if __name__ == '__main__':\n"
            "    pool = CpuPool(2, os.getpid, ())\n"
            "    [f.result(timeout=120) for f in [pool.submit(os.getpid) for _ in range(4)]]\n"
            "    print(' '.join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    (tmp_path / "killed_run.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "pids.txt", "w") as pids:  # a file, not a pipe: a leftover would hold a pipe open
        done = subprocess.run([sys.executable, str(tmp_path / "killed_run.py")], env=env, stdout=pids,
                              stderr=subprocess.DEVNULL, timeout=180)
    assert done.returncode == -signal.SIGKILL
    printed = (tmp_path / "pids.txt").read_text().split()
    assert printed, "the pool started no process"
    started = [psutil.Process(int(pid)) for pid in printed if psutil.pid_exists(int(pid))]
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            alive = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            if not alive:
                break
            time.sleep(0.2)
        assert not alive, [" ".join(p.cmdline())[:100] for p in alive]
    finally:
        for p in started:
            if p.is_running():
                p.kill()
