"""A clean stop for a long command (``packshot run``): Ctrl-C (SIGINT) and SIGTERM (``docker stop``,
``systemctl stop``, a CI timeout) end the command and every process it started (the ephemeral
Prefect API server, the CPU worker pool and its forkserver), so nothing is left running.

What is finished stays finished: products are written atomically and a rerun resumes (the run's
lease is an OS lock the kernel releases with the process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_GRACE_S = 10.0  # how long started processes get to end after SIGTERM before they are killed


class Stopped(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum, _frame) -> None:
    raise Stopped(signum)


def stop_descendants(grace_s: float = STOP_GRACE_S) -> int:
    """SIGTERM every process this one started (children, grandchildren ...), SIGKILL those still
    alive after ``grace_s``; returns how many there were."""
    import psutil

    me = psutil.Process()
    stopped: dict[int, psutil.Process] = {}
    for _round in range(3):  # a process may start one more child while we look
        found = [p for p in me.children(recursive=True) if p.pid not in stopped]
        if not found:
            break
        for proc in found:
            stopped[proc.pid] = proc
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
    _gone, alive = psutil.wait_procs(list(stopped.values()), timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return len(stopped)


def _stop_signal(exc: BaseException) -> int | None:
    """The signal ``exc`` stands for: Ctrl-C, our SIGTERM, or Prefect's own SIGTERM handler inside a
    flow run (``TerminationSignal``, which it re-raises after its own cleanup); None for other errors."""
    if isinstance(exc, Stopped):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    if type(exc).__name__ == "TerminationSignal":
        return int(getattr(exc, "signal", signal.SIGTERM))
    return None


@contextmanager
def stop_cleanly(say: Callable[[str], None]) -> Iterator[None]:
    """Run the block; on Ctrl-C or SIGTERM, tell the user (``say``), stop every process started
    since, and exit at once with 128 + the signal's number (130, 143) even if a worker thread is
    still busy. A second Ctrl-C during the stop is ignored."""
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        yield
    except BaseException as exc:
        signum = _stop_signal(exc)
        if signum is None:
            raise
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        name = signal.Signals(signum).name
        say(f"stopped by {name}: stopping the processes this run started; finished products are kept "
            "and a rerun resumes")
        stop_descendants()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)  # worker threads may still be inside a batch: do not wait for them
    finally:
        signal.signal(signal.SIGTERM, previous)
