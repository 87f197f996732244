"""A run's catalog from its source (CSV, feed, store), and the snapshot of exactly what was read.

``start_run`` reads the source once and writes ``catalog.snapshot.json`` beside the manifest; the
shards of a fan-out run read that snapshot instead of the store, so every shard sees the same
catalog and a 10,000-product store is paged through once per run, not once per shard.
"""

from __future__ import annotations

import json

from orchestrator.settings import Settings
from packshot.sources import SNAPSHOT_NAME, load_snapshot, open_source, snapshot_json
from packshot.storage import Storage
from packshot.types import Catalog


def read_catalog(uri: str, settings: Settings, *, versions: bool = True) -> Catalog:
    """The catalog ``uri`` names, read through :func:`packshot.sources.open_source`. ``versions=False``
    (validation) sends no HEAD request for feed images' change markers: nothing but the feed is fetched."""
    sources = settings.sources
    if not versions:
        sources = sources.model_copy(update={"check_feed_images": False})
    return open_source(uri, sources, settings.load).read()


def write_run_snapshot(storage: Storage, catalog: Catalog, uri: str, run_id: str) -> None:
    """``catalog.snapshot.json`` at the run's root: the parsed catalog, the source and the run id."""
    source = open_source(uri).uri if "://" in uri else uri  # normalised store URI, no secrets
    payload = json.loads(snapshot_json(catalog, source))
    payload["run_id"] = run_id
    data = json.dumps(payload, indent=1, ensure_ascii=False).encode()
    storage.write_bytes(SNAPSHOT_NAME, data, "application/json")


def catalog_of_run(uri: str, settings: Settings, storage: Storage, run_id: str) -> Catalog:
    """The catalog this run read (its snapshot), or the source read again when there is none."""
    if storage.exists(SNAPSHOT_NAME):
        data = storage.read_bytes(SNAPSHOT_NAME)
        if json.loads(data).get("run_id") == run_id:
            return load_snapshot(data)
    return read_catalog(uri, settings)
