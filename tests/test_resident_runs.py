"""The resident GPU worker serves run after run in one process: it keeps one context per card and frees
what a finished run held, so ten runs in a row leave its child processes and memory flat (issue 23).

Runs go through :func:`orchestrator.run.process_part`, what the served ``process-batch`` task calls,
each with its own output folder and run id as separate flow runs have, on the tiny backends."""

from __future__ import annotations

import contextlib

import psutil
import pytest

from tests.studio import write_catalog

RUNS = 10
STAGES = ["segment", "export"]  # the context and its pool are what leaked; no model call needed


@pytest.fixture
def env(monkeypatch, tmp_path):
    from pathlib import Path

    monkeypatch.setenv("PACKSHOT_EXPORT__PRESETS_FILE", str(Path(__file__).parent / "small_presets.yaml"))
    monkeypatch.setenv("PACKSHOT_SEGMENT__BACKEND", "classic")
    monkeypatch.setenv("PACKSHOT_GENERATIVE__BACKEND", "tiny")
    return tmp_path


def _tree() -> tuple[int, int]:
    """(child processes, RSS of this process and all its children in bytes)."""
    me = psutil.Process()
    children = me.children(recursive=True)
    rss = me.memory_info().rss
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker that just ended
            rss += child.memory_info().rss
    return len(children), rss


def test_ten_runs_leave_processes_and_memory_flat(env):
    import orchestrator
    from orchestrator.context import _contexts
    from orchestrator.run import process_part
    from packshot.catalog import load_catalog

    catalog = write_catalog(env / "cat", [{"sku": "FLAT-1"}])
    products = load_catalog(catalog).products
    orchestrator.clear_contexts()
    seen = []
    try:
        for run in range(RUNS):
            options = orchestrator.RunOptions(catalog=str(catalog), out=str(env / f"out{run}"),
                                              presets=["test-shop"], stages=STAGES)
            key = process_part(products, options, f"run-{run}", 0)
            assert (env / f"out{run}" / key).is_file()
            seen.append(_tree())
    finally:
        orchestrator.clear_contexts()
    processes = [count for count, _ in seen]
    assert processes[1:] == [processes[1]] * (RUNS - 1), processes  # one pool, not one per run
    assert len(_contexts) == 0
    growth = seen[-1][1] - seen[1][1]
    assert growth < 300 * 2**20, [rss // 2**20 for _, rss in seen]  # MB; a leaked pool costs more per run
