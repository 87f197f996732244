"""One registry of loaded models per worker process.

Every stage asks ``models.get(key, loader)`` instead of loading weights itself, so a model is
loaded once per process and reused for every product (no per-product reloads). When a new model
would not fit in the memory budget, the least recently used models are freed first (GPU memory is
released before the next one loads, as IOPaint does).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Entry:
    model: Any
    nbytes: int
    identity: str


def model_nbytes(model: Any) -> int:
    """Bytes held by a torch module or a diffusers pipeline's modules (0 for anything else)."""
    modules = []
    if hasattr(model, "components"):  # diffusers pipeline
        modules = [m for m in model.components.values() if hasattr(m, "parameters")]
    elif hasattr(model, "parameters"):
        modules = [model]
    total = 0
    for m in modules:
        total += sum(p.numel() * p.element_size() for p in m.parameters())
        total += sum(b.numel() * b.element_size() for b in m.buffers())
    return total


class ModelRegistry:
    def __init__(self, budget_bytes: int | None = None):
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self.budget_bytes = budget_bytes
        self.load_counts: dict[str, int] = {}

    def get(self, key: str, loader: Callable[[], T], *, size_hint: int = 0, identity: str | None = None) -> T:
        """Return the model stored under ``key``, calling ``loader()`` only the first time.

        ``size_hint`` (bytes) lets the registry free older models before loading a large one.
        ``identity`` (model id, revision, adapters) is what cache keys record for this model.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry.model
            self._make_room(size_hint)
            log.info("loading model %s", key)
            model = loader()
            self.load_counts[key] = self.load_counts.get(key, 0) + 1
            self._entries[key] = _Entry(model, model_nbytes(model) or size_hint, identity or key)
            return model

    def identity(self, key: str) -> str | None:
        entry = self._entries.get(key)
        return entry.identity if entry else None

    def set_identity(self, key: str, identity: str) -> None:
        """Record a change of what a loaded model is (for example a LoRA was swapped in)."""
        with self._lock:
            if key in self._entries:
                self._entries[key].identity = identity

    def loaded(self) -> list[str]:
        return list(self._entries)

    def resident_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def free(self, key: str) -> None:
        with self._lock:
            if self._entries.pop(key, None) is not None:
                log.info("freed model %s", key)
                _release_memory()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            _release_memory()

    def _make_room(self, size_hint: int) -> None:
        if not self.budget_bytes or not size_hint:
            return
        while self._entries and self.resident_bytes() + size_hint > self.budget_bytes:
            key, _ = self._entries.popitem(last=False)
            log.info("freed model %s to make room", key)
            _release_memory()


def _release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


models = ModelRegistry()
"""The process-wide registry every stage uses."""
