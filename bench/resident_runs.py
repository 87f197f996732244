"""Child processes and memory of one process serving run after run, as the resident GPU worker does.

    PYTHONPATH=. .venv/bin/python bench/resident_runs.py --runs 10

Calls :func:`orchestrator.run.process_part` (what the served ``process-batch`` task calls) ``--runs`` times
in this process, each run with its own output folder and run id as separate flow runs have, on a
one-product catalog with the classic segmenter; after each run prints the number of child processes and
the RSS of this process plus its children. Point ``PYTHONPATH`` at another checkout to measure it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def tree() -> tuple[int, int]:
    me = psutil.Process()
    children = me.children(recursive=True)
    rss = me.memory_info().rss
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            rss += child.memory_info().rss
    return len(children), rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    os.environ.update(PACKSHOT_SEGMENT__BACKEND="classic", PACKSHOT_GENERATIVE__BACKEND="classic",
                      PACKSHOT_DEVICE="cpu")
    import orchestrator
    from orchestrator.run import process_part
    from packshot.catalog import load_catalog

    catalog = REPO / "catalogs" / "demo" / "catalog.csv"
    products = load_catalog(catalog).products[:1]
    work = Path(tempfile.mkdtemp(prefix="packshot-resident-"))
    counts = []
    try:
        for run in range(args.runs):
            options = orchestrator.RunOptions(catalog=str(catalog), out=str(work / f"out{run}"),
                                              presets=["shopify"], stages=["segment", "export"])
            process_part(products, options, f"run-{run}", 0)
            children, rss = tree()
            counts.append(children)
            print(f"run {run + 1}: child processes {children}, RSS with children {rss / 2**20:.0f} MB",
                  flush=True)
    finally:
        orchestrator.clear_contexts()
    print(f"child processes after each run: {counts}")


if __name__ == "__main__":
    main()
