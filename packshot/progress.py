"""In-process progress hooks: the pipeline reports each finished product here, and whoever is
watching (the CLI's progress bar, the flow's Prefect progress artifact) subscribes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

_listeners: list[Callable[[Any], None]] = []
_lock = threading.Lock()


def emit(result: Any) -> None:
    with _lock:
        listeners = list(_listeners)
    for fn in listeners:
        fn(result)


@contextmanager
def listening(fn: Callable[[Any], None]):
    with _lock:
        _listeners.append(fn)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(fn)
