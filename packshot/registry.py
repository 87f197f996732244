"""One registry of loaded models per worker process.

Every stage asks ``models.get(key, loader)`` instead of loading weights itself, so a model is
loaded once per process and reused for every product (no per-product reloads). When a new model
would not fit in the memory budget, the least recently used models are freed first (GPU memory is
released before the next one loads, as IOPaint's model switch does). In production the budget is
the card's memory (:meth:`ModelRegistry.budget_from_card`) and entries record the bytes they hold on
the card (``gpu_bytes``: parameters and buffers on a CUDA device, FP8 tensor subclasses counted by
their inner tensors) apart from host bytes. Whoever holds a model elsewhere (the run context) subscribes
with :meth:`ModelRegistry.on_free` and drops its reference, so a freed model really leaves the card.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Entry:
    model: Any
    nbytes: int  # on the card when it is on one, else in host memory
    identity: str
    gpu_bytes: int = 0


def _modules(model: Any) -> list:
    if hasattr(model, "components"):  # diffusers pipeline
        return [m for m in model.components.values() if hasattr(m, "parameters")]
    if hasattr(model, "parameters"):
        return [model]
    return []


def tensor_nbytes(t: Any) -> int:
    """Bytes of a tensor; tensor subclasses (torchao FP8) are counted by their inner tensors."""
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is not None and type(t).__name__ not in ("Tensor", "Parameter"):
        names, _ = flatten()
        return sum(tensor_nbytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def model_bytes(model: Any) -> tuple[int, int]:
    """(bytes on a CUDA device, bytes elsewhere) of a torch module or a diffusers pipeline's modules.

    Group-offloaded parts count where their weights are between calls (host memory)."""
    on_card = elsewhere = 0
    seen: set[int] = set()
    for m in _modules(model):
        for t in [*m.parameters(), *m.buffers()]:
            if id(t) in seen:
                continue
            seen.add(id(t))
            n = tensor_nbytes(t)
            if t.device.type == "cuda":
                on_card += n
            else:
                elsewhere += n
    return on_card, elsewhere


def model_nbytes(model: Any) -> int:
    """Bytes held by a torch module or a diffusers pipeline's modules (0 for anything else)."""
    return sum(model_bytes(model))


class ModelRegistry:
    def __init__(self, budget_bytes: int | None = None):
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self.budget_bytes = budget_bytes
        self.load_counts: dict[str, int] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._recorders: list[set[str]] = []

    def budget_from_card(self, device: str, reserve_bytes: int = 1024**3) -> int | None:
        """Set the budget to the card's total memory less ``reserve_bytes`` (CUDA context); None on CPU."""
        from packshot.memory import card_total_bytes

        total = card_total_bytes(device)
        self.budget_bytes = None if total is None else total - reserve_bytes
        return self.budget_bytes

    def on_free(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(key)`` whenever a model is freed, before the memory is released."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], None]) -> None:
        """Stop calling ``listener`` (a context that closed)."""
        with suppress(ValueError):
            self._listeners.remove(listener)

    @contextmanager
    def recording(self):
        """Collect the keys ``get`` is asked for inside the block (which models a context holds)."""
        keys: set[str] = set()
        self._recorders.append(keys)
        try:
            yield keys
        finally:
            self._recorders.remove(keys)

    def get(self, key: str, loader: Callable[[], T], *, size_hint: int = 0, identity: str | None = None) -> T:
        """Return the model stored under ``key``, calling ``loader()`` only the first time.

        ``size_hint`` (bytes) lets the registry free older models before loading a large one.
        ``identity`` (model id, revision, adapters) is what cache keys record for this model.
        """
        for keys in self._recorders:
            keys.add(key)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry.model
            self._make_room(size_hint)
            log.info("loading model %s", key)
            model = loader()
            self.load_counts[key] = self.load_counts.get(key, 0) + 1
            on_card, elsewhere = model_bytes(model)
            self._entries[key] = _Entry(model, on_card or elsewhere or size_hint, identity or key,
                                        gpu_bytes=on_card)
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

    def gpu_bytes(self) -> dict[str, int]:
        """Key -> bytes each loaded model holds on the card (0 for models in host memory)."""
        return {k: e.gpu_bytes for k, e in self._entries.items()}

    def free(self, key: str) -> None:
        with self._lock:
            if key in self._entries:
                self._drop(key, "freed model %s")
                _release_memory()

    def free_where(self, predicate: Callable[[str], bool]) -> list[str]:
        """Free every model whose key ``predicate`` accepts (an out-of-memory retry); returns the keys."""
        with self._lock:
            keys = [k for k in self._entries if predicate(k)]
            for key in keys:
                self._drop(key, "freed model %s")
            if keys:
                _release_memory()
            return keys

    def clear(self) -> None:
        with self._lock:
            for key in list(self._entries):
                self._drop(key, "freed model %s")
            _release_memory()

    def _drop(self, key: str, message: str) -> None:
        self._entries.pop(key)
        log.info(message, key)
        for listener in list(self._listeners):
            listener(key)

    def _make_room(self, size_hint: int) -> None:
        if not self.budget_bytes or not size_hint:
            return
        freed = False
        while self._entries and self.resident_bytes() + size_hint > self.budget_bytes:
            self._drop(next(iter(self._entries)), "freed model %s to make room")
            freed = True
        if freed:
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
