"""Content-addressed cache of stage results, so a change redoes only the stages that depend on it.

Keys are sha256 digests of everything a result depends on (see :func:`content_key`):

- cutout: the source image's sha256, the product box, the segment settings and the segmenter's identity;
- background / scenes: the cutout's sha256, the catalog fields the prompt uses, the brand style (with
  its LoRA), the preset, the generative settings and the generator's model identity (id@revision).

A new brand style therefore regenerates backgrounds and scenes (and the recolors made from them) but
reuses the cutout; a new photo redoes everything for that product. Entries live in the run's own
storage under ``.cache/<stage>/`` (local folder or S3, shared by every worker that writes to it) as
``.npz`` files: arrays plus a JSON header, no pickle.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from packshot.imaging import Placement
from packshot.storage import Storage
from packshot.types import Cutout, Rendered

log = logging.getLogger(__name__)

CACHE_VERSION = "1"  # bump when a cached stage's output format or meaning changes


def content_key(stage: str, **parts: Any) -> str:
    """sha256 over the stage name and ``parts`` (JSON, sorted keys; pydantic models via ``default=str``)."""
    payload = json.dumps({"stage": stage, "v": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def array_sha(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes."""
    h = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


class StageCache:
    """Get and put cutouts and rendered images by content key in a :class:`Storage`."""

    def __init__(self, storage: Storage, prefix: str = ".cache"):
        self.storage, self.prefix = storage, prefix
        self.stats: dict[str, CacheStats] = {}

    def _path(self, stage: str, key: str) -> str:
        return f"{self.prefix}/{stage}/{key[:2]}/{key}.npz"

    def _count(self, stage: str, hit: bool) -> None:
        stats = self.stats.setdefault(stage, CacheStats())
        if hit:
            stats.hits += 1
        else:
            stats.misses += 1

    def _load(self, stage: str, key: str) -> dict[str, np.ndarray] | None:
        path = self._path(stage, key)
        if not self.storage.exists(path):
            self._count(stage, False)
            return None
        try:
            with np.load(io.BytesIO(self.storage.read_bytes(path)), allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:  # a torn or foreign file: recompute and overwrite it
            log.warning("stage cache entry %s unreadable (%s); recomputing", path, exc)
            self._count(stage, False)
            return None
        self._count(stage, True)
        return arrays

    def _save(self, stage: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        self.storage.write_bytes(self._path(stage, key), buf.getvalue(), "application/octet-stream")

    def get_cutout(self, key: str) -> Cutout | None:
        arrays = self._load("cutout", key)
        if arrays is None:
            return None
        meta = _meta(arrays)
        return Cutout(arrays["rgba"], backend=meta["backend"], notes=meta["notes"],
                      confidence=meta.get("confidence"), review_reasons=meta.get("review_reasons", []))

    def put_cutout(self, key: str, cutout: Cutout) -> None:
        meta = {"backend": cutout.backend, "notes": cutout.notes, "confidence": cutout.confidence,
                "review_reasons": cutout.review_reasons}  # a cached cutout stays as doubtful as it was
        self._save("cutout", key, {"rgba": cutout.rgba, "meta": _meta_array(meta)})

    def get_rendered(self, stage: str, key: str) -> list[Rendered] | None:
        arrays = self._load(stage, key)
        if arrays is None:
            return None
        out = []
        for i, meta in enumerate(_meta(arrays)["items"]):
            placement = None
            if meta.pop("placement", None) is not None:
                p = meta.pop("placement_fields")
                placement = Placement(arrays[f"placement{i}"], p["x"], p["y"], tuple(p["canvas_size"]),
                                      tuple(p["src_box"]))
            meta.pop("placement_fields", None)
            out.append(Rendered(arrays[f"rgb{i}"], arrays[f"alpha{i}"], placement=placement, **meta))
        return out

    def put_rendered(self, stage: str, key: str, items: list[Rendered]) -> None:
        arrays: dict[str, np.ndarray] = {}
        metas = []
        for i, item in enumerate(items):
            arrays[f"rgb{i}"], arrays[f"alpha{i}"] = item.rgb, item.product_alpha
            meta = {"kind": item.kind, "preset": item.preset, "generated": item.generated,
                    "variant": item.variant, "scene": item.scene, "notes": list(item.notes),
                    "placement": None}
            if isinstance(item.placement, Placement):
                p = item.placement
                arrays[f"placement{i}"] = p.rgba
                meta["placement"] = True
                meta["placement_fields"] = {"x": p.x, "y": p.y, "canvas_size": list(p.canvas_size),
                                            "src_box": list(p.src_box)}
            metas.append(meta)
        arrays["meta"] = _meta_array({"items": metas})
        self._save(stage, key, arrays)


def _meta_array(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def _meta(arrays: dict[str, np.ndarray]) -> dict:
    return json.loads(arrays["meta"].tobytes().decode())
