"""The resident GPU process: one Prefect task worker per card, holding that card's models across flow runs.

``python -m flows.gpu_worker --gpu GPU-5f1c...`` (or ``--gpu 1``) pins the process to one card
(``CUDA_VISIBLE_DEVICES``, set before torch loads) and serves the GPU tasks of :mod:`flows.tasks`
(``prefect.task_worker.serve``) one at a time (``limit=1``). A catalog run with
``PACKSHOT_ORCHESTRATION__GPU_WORKERS=served`` hands its batches to the worker with ``.delay()``
and waits for their results; the worker's model registry keeps SAM and FLUX loaded between runs, so
the nightly run, each intake CSV and each on-demand run no longer reload 31 GiB each.

One worker per card; several workers (one per card) share the queue and Prefect gives each task run
to one of them. Within a card, the card lock (:func:`packshot.gpu.gpu_lock`, ``<uuid>.lock``) still
serialises this worker against any other process on the same card (a CLI run, a second container).

Needs a Prefect server (``PREFECT_API_URL``; task workers cannot use the ephemeral API) and result
storage shared with the flows: ``PREFECT_LOCAL_STORAGE_PATH`` on one host, or a storage block
(``PREFECT_TASKS_SCHEDULING_DEFAULT_STORAGE_BLOCK`` and ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK``) across
hosts. Prefect's own ``CUDA_VISIBLE_DEVICES=<uuid> prefect task serve flows/tasks.py:load_models_task
flows/tasks.py:process_batch_task flows/tasks.py:make_clips_task --limit 1`` serves the same tasks (this
module is what the image and the tests run).
"""

from __future__ import annotations

import argparse
import logging
import os

log = logging.getLogger("flows.gpu_worker")


def pin_card(gpu: str | None) -> None:
    """Make ``gpu`` (an index or a UUID as ``nvidia-smi -L`` prints it) the only card this process sees.

    Must run before torch initialises CUDA. Without ``gpu`` the process keeps what it was given."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # indexes as nvidia-smi numbers them


def serve(limit: int = 1) -> None:
    """Serve the GPU tasks until stopped (SIGTERM / Ctrl-C)."""
    from prefect.task_worker import serve as serve_tasks

    from flows.tasks import GPU_TASKS

    serve_tasks(*GPU_TASKS, limit=limit)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.gpu_worker", description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", help="card index or UUID (default: CUDA_VISIBLE_DEVICES as given)")
    parser.add_argument("--limit", type=int, default=1,
                        help="task runs at once (keep 1: one card, one holder)")
    args = parser.parse_args(argv)
    pin_card(args.gpu)
    logging.basicConfig(level=logging.INFO)
    log.info("GPU task worker for card %s", os.environ.get("CUDA_VISIBLE_DEVICES", "(all visible)"))
    serve(args.limit)


if __name__ == "__main__":
    main()
