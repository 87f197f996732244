"""The CPU side of a run: a pool of worker processes, one per core, fed in priority order.

Work that feeds the GPU (preparing a product's generator inputs) is dispatched before work that only
finishes products (recolor, encode, validate, write), so the GPU holder finds its next request ready.
Only ``size`` tasks are handed to the processes at a time; the rest wait here, in the parent, in a
priority queue whose length the caller bounds (flat memory). Each worker builds its own
:class:`~orchestrator.work.WorkerState` (presets, storage, cache, classic backends) once, from the
pickled run options and settings: models and clients never cross a process boundary.
"""

from __future__ import annotations

import heapq
import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

URGENT, NORMAL = 0, 1  # lower runs first


def pool_size() -> int:
    """Cores this process may use (affinity and cgroup-pinned CPU sets respected), at least 1."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13+
        return max(1, os.process_cpu_count() or 1)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux (104 on macOS); the socket's name adds ~25


def short_socket_dir() -> None:
    """Make multiprocessing put its sockets (the forkserver's) in a short folder under /tmp when the
    temp folder's path is too long for one (a deep $TMPDIR, as macOS gives): otherwise every worker
    start fails with "AF_UNIX path too long". Python 3.13 falls back to /tmp by itself."""
    import shutil
    import tempfile
    from multiprocessing import process, util

    config = process.current_process()._config
    if config.get("tempdir") is not None or len(tempfile.gettempdir()) + 30 < SOCKET_PATH_MAX:
        return
    folder = tempfile.mkdtemp(prefix="pymp-", dir="/tmp")
    util.Finalize(None, shutil.rmtree, args=(folder, True), exitpriority=-100)  # as multiprocessing does
    config["tempdir"] = folder


def _start_worker(parent_pid: int, initializer: Callable, initargs: tuple) -> None:
    """In each worker: end with the run process, then run the pool's own initializer. A run killed
    outright (SIGKILL, the OOM killer) cannot stop its pool, and a worker of the forkserver would
    otherwise wait for work forever (it holds both ends of its queue), keeping the forkserver alive
    too: hundreds of MB each, left running."""
    threading.Thread(target=_exit_with, args=(parent_pid,), name="exit-with-run", daemon=True).start()
    initializer(*initargs)


def _exit_with(pid: int) -> None:
    """Block until process ``pid`` ends, then end this process at once."""
    import select

    try:
        fd = os.pidfd_open(pid)  # Linux 5.3+: readable when the process ends; immune to pid reuse
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    else:
        import time

        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass
            time.sleep(1.0)
    os._exit(1)


class CpuPool:
    """``submit(fn, *args, priority=...)`` -> Future; at most ``size`` tasks run at once."""

    def __init__(self, size: int, initializer: Callable, initargs: tuple):
        # forkserver: children start from a clean, single-threaded server process (never a fork of a
        # process that runs loader threads), and modules it preloaded are not imported again per worker.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["orchestrator.work"])
        short_socket_dir()
        self.size = size
        self._executor = ProcessPoolExecutor(size, mp_context=ctx, initializer=_start_worker,
                                             initargs=(os.getpid(), initializer, initargs))
        self._queue: list[tuple[int, int, Future, Callable, tuple]] = []
        self._order = itertools.count()
        self._running = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable, *args, priority: int = NORMAL) -> Future:
        outer: Future = Future()
        with self._lock:
            heapq.heappush(self._queue, (priority, next(self._order), outer, fn, args))
        self._dispatch()
        return outer

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                if self._running >= self.size or not self._queue:
                    return
                _, _, outer, fn, args = heapq.heappop(self._queue)
                self._running += 1
            try:
                inner = self._executor.submit(fn, *args)
            except Exception as exc:  # a broken pool: fail this task, keep the parent alive
                self._finished()
                outer.set_exception(exc)
                continue
            inner.add_done_callback(lambda f, outer=outer: self._relay(f, outer))

    def _finished(self) -> None:
        with self._lock:
            self._running -= 1

    def _relay(self, inner: Future, outer: Future) -> None:
        self._finished()
        if inner.cancelled():
            outer.cancel()
        elif not outer.cancelled():
            exc = inner.exception()
            if exc is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(inner.result())
        self._dispatch()

    @property
    def broken(self) -> bool:
        """A worker died (killed for memory): the executor accepts no more tasks."""
        return bool(getattr(self._executor, "_broken", False))

    def shutdown(self) -> None:
        with self._lock:
            pending, self._queue = self._queue, []
        for _, _, outer, _, _ in pending:
            outer.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)


class RunPool:
    """One run's view of a shared :class:`CpuPool`: its tasks run with the run's worker state
    (:func:`orchestrator.work.in_run`), built once per worker from ``init``."""

    def __init__(self, pool: CpuPool, key: str, init: tuple):
        self.pool, self.key, self.init = pool, key, init
        self.size = pool.size

    def submit(self, fn: Callable, *args, priority: int = NORMAL) -> Future:
        from orchestrator.work import in_run

        return self.pool.submit(in_run, self.key, self.init, fn, *args, priority=priority)
