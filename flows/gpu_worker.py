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


class NoCardError(RuntimeError):
    """The GPU worker would run its models on the CPU: it does not start."""


def check_card(device_setting: str | None = None) -> str:
    """The device this worker serves on; raises :class:`NoCardError` (one line, what to do) when CUDA
    is expected but absent. ``auto`` (the default) expects a card here: a CUDA build that does not match
    the driver, a CPU-only torch, or a container started without ``--gpus`` would otherwise put FLUX
    on the CPU without a word. ``PACKSHOT_DEVICE=cpu`` serves on the CPU on purpose (tests, tiny models)."""
    from packshot.config import resolve_device

    if device_setting is None:
        from orchestrator.settings import get_settings

        device_setting = get_settings().device
    device = resolve_device(device_setting)
    if device_setting.startswith("cpu"):
        return device
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return device
    if torch.version.cuda is None:
        why = f"torch {torch.__version__} is a CPU-only build"
    else:
        try:
            torch.cuda.init()
            why = "torch sees no CUDA device"
        except Exception as exc:  # the driver is missing or older than the CUDA build: torch says which
            why = str(exc).strip().splitlines()[0]
    card = os.environ.get("CUDA_VISIBLE_DEVICES", "(all visible)")
    raise NoCardError(
        f"GPU worker not started: PACKSHOT_DEVICE={device_setting} expects CUDA on card {card}, but {why} "
        f"(torch built for CUDA {torch.version.cuda}); run the container with --gpus, install the CUDA "
        "build that matches the driver (scripts/setup.sh), or set PACKSHOT_DEVICE=cpu to serve on the CPU")


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
    try:
        device = check_card()
    except NoCardError as exc:
        raise SystemExit(f"packshot: {exc}") from None  # one line on stderr, exit status 1
    logging.basicConfig(level=logging.INFO)
    log.info("GPU task worker for card %s on %s", os.environ.get("CUDA_VISIBLE_DEVICES", "(all visible)"),
             device)
    serve(args.limit)


if __name__ == "__main__":
    main()
