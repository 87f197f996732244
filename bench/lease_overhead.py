"""What one-writer-per-output costs (issue 21): a review decision saved under the review lease (read
the file again, merge, write) against a plain save from memory, and a job-ledger change under the
ledger's file lock (read again, merge, write) against a plain write. Side by side, one run.

    python bench/lease_overhead.py --decisions 2000 --repeat 50
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _median_ms(fn, repeat: int) -> float:
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=2000, help="decisions already in review.json")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()

    from orchestrator.review.decisions import Decision, ReviewFile, ReviewStore, save_review
    from packshot.lease import acquire_lease
    from packshot.storage import LocalStorage
    from stages.video.ledger import JobLedger

    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalStorage(Path(tmp) / "run")
        review = ReviewFile()
        for i in range(args.decisions):
            review.outputs[f"SKU-{i}/cutout.png"] = Decision(sku=f"SKU-{i}", key=f"SKU-{i}/cutout.png",
                                                             status="approved")
        save_review(storage, review)
        store = ReviewStore(storage)

        def plain(i: int) -> None:  # the old way: change the copy in memory, write it
            review.outputs["NEW/cutout.png"] = Decision(sku="NEW", key="NEW/cutout.png", status="approved",
                                                        reason=str(i))
            save_review(storage, review)

        def leased(i: int) -> None:
            store.decide(Decision(sku="NEW", key="NEW/cutout.png", status="approved", reason=str(i)))

        lease_ms = _median_ms(lambda i: acquire_lease(storage, "bench", "bench").release(), args.repeat)
        plain_ms = _median_ms(plain, args.repeat)
        leased_ms = _median_ms(leased, args.repeat)

        ledger = JobLedger(Path(tmp) / "state")
        for i in range(args.decisions):
            ledger._entries[f"k{i}"] = {"status": "succeeded", "committed_usd": 0.25, "job_id": f"j{i}"}
        ledger._write()

        def ledger_plain(i: int) -> None:
            ledger._entries["k0"]["note"] = str(i)
            ledger._write()

        def ledger_locked(i: int) -> None:
            ledger.update("k0", note=str(i))

        ledger_plain_ms = _median_ms(ledger_plain, args.repeat)
        ledger_locked_ms = _median_ms(ledger_locked, args.repeat)

    print(f"local lease acquire+release: {lease_ms:.2f} ms")
    print(f"review decision, {args.decisions} in the file: plain save {plain_ms:.1f} ms, under the lease "
          f"{leased_ms:.1f} ms, ratio {leased_ms / plain_ms:.2f}")
    print(f"job ledger change, {args.decisions} entries: plain write {ledger_plain_ms:.1f} ms, under the "
          f"file lock {ledger_locked_ms:.1f} ms, ratio {ledger_locked_ms / ledger_plain_ms:.2f}")


if __name__ == "__main__":
    main()
