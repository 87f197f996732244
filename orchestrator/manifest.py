"""The run manifest: every output with its stage, preset, size, checksum and source row.

Written as ``manifest.json`` (machines) and ``manifest.csv`` (spreadsheets) at the run root. A flow
does not keep its products' results in memory: batches append them to a :class:`ResultSpool` (JSON
Lines in the run's storage), the flow keeps a :class:`RunTally`, and :class:`ManifestWriter` streams
the spool into the two files, so memory stays flat however large the catalog.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from packshot.csvsafe import SafeDictWriter
from packshot.schemas.results import ProductResult, RunManifest
from packshot.storage import Storage, disk_error, output_mode, stale_temp_files

COUNT_KEYS = ("done", "needs_review", "skipped", "failed", "invalid", "outputs", "failed_checks")
MAX_RUN_NOTES = 50  # distinct product notes repeated at the top of the manifest and report
NOTE_SKUS = 5  # SKUs named beside each of those notes (then "and N more")
TABLE_ROWS = 200  # rows of the Prefect table artifact: the first products, then failures up to as many again


class RunTally:
    """What a run keeps about its products instead of their results: counters, a bounded set of
    distinct notes, and the first rows and failures for the Prefect artifacts."""

    def __init__(self) -> None:
        self.count = dict.fromkeys(COUNT_KEYS, 0)
        self.notes: dict[str, list[str]] = {}  # note -> the first NOTE_SKUS SKUs it is about
        self.note_counts: dict[str, int] = {}  # note -> how many products it is about
        self.more_notes = 0
        self.rows: list[dict] = []  # first TABLE_ROWS products, then failures and products to review
        self.failures: list[ProductResult] = []  # the first TABLE_ROWS failed or invalid products
        self.problems = 0
        self.to_review: list[ProductResult] = []  # the first TABLE_ROWS products that need review
        self.clips = 0  # ad clips made (the video stage)
        self.clip_misses = 0  # products whose clip failed, was skipped (budget) or could not be requested
        self.generator_calls = 0  # images the background generator made in this run
        self.fills_shared = 0  # images fitted from another preset's generated image instead

    def add(self, result: ProductResult) -> None:
        self.count[result.status] += 1
        self.count["outputs"] += len(result.outputs)
        failed_checks = sum(1 for o in result.outputs if o.checks)
        self.clips += sum(1 for o in result.outputs if o.kind == "clip")
        self.clip_misses += any(n.startswith("video: ") and " clip cost " not in n for n in result.notes)
        self.count["failed_checks"] += failed_checks
        self.generator_calls += result.generator_calls
        self.fills_shared += result.fills_shared
        for note in dict.fromkeys(result.notes):
            if note.startswith("unchanged"):
                continue
            if note in self.notes:
                self.note_counts[note] += 1
                if len(self.notes[note]) < NOTE_SKUS:
                    self.notes[note].append(result.sku or f"{result.source_file}:{result.source_line}")
            elif len(self.notes) < MAX_RUN_NOTES:
                self.notes[note] = [result.sku or f"{result.source_file}:{result.source_line}"]
                self.note_counts[note] = 1
            else:
                self.more_notes += 1
        problem = result.status in ("failed", "invalid")
        self.problems += problem
        listed_failure = problem and len(self.failures) < TABLE_ROWS
        if listed_failure:
            self.failures.append(result)
        listed_review = result.status == "needs_review" and len(self.to_review) < TABLE_ROWS
        if listed_review:
            self.to_review.append(result)
        if len(self.rows) < TABLE_ROWS or listed_failure or listed_review:
            self.rows.append({"sku": result.sku, "status": result.status, "outputs": len(result.outputs),
                              "failed_checks": failed_checks, "error": result.error or "",
                              "review": "; ".join(result.review_reasons)})

    def counts(self) -> dict[str, int]:
        return dict(self.count)

    def note_list(self) -> list[str]:
        """The run's distinct notes, each led by the SKUs it is about: ``SKU A, B and 3 more: note``."""
        notes = []
        for note in sorted(self.notes):
            skus, more = self.notes[note], self.note_counts[note] - len(self.notes[note])
            who = ", ".join(skus) + (f" and {more} more" if more else "")
            notes.append(f"SKU {who}: {note}")
        if self.more_notes:
            notes.append(f"and {self.more_notes} more product notes: see each product's notes")
        if self.generator_calls or self.fills_shared:
            notes.append(f"background generator: {self.generator_calls} images generated; "
                         f"{self.fills_shared} more fitted from a shared image of the same size, prompt "
                         "and seed")
        return notes


class ResultSpool:
    """Product results of one run as JSON Lines parts in the run's storage, ``.runs/<run id>/<part>.jsonl``.

    Each batch writes its part in one atomic write, so a part is whole or absent; the flow holds only
    the part keys and reads the parts back one at a time when it writes the manifest and report.
    """

    def __init__(self, storage: Storage, run_id: str):
        self.storage, self.prefix = storage, f".runs/{run_id}"

    def write(self, part: str | int, results: Iterable[ProductResult]) -> str:
        name = f"{part:05d}" if isinstance(part, int) else part
        key = f"{self.prefix}/{name}.jsonl"
        data = "".join(r.model_dump_json() + "\n" for r in results).encode()
        self.storage.write_bytes(key, data, "application/jsonl")
        return key

    def read(self, key: str) -> list[ProductResult]:
        lines = self.storage.read_bytes(key).decode().splitlines()
        return [ProductResult.model_validate_json(line) for line in lines if line]

    def stream(self, keys: Iterable[str]) -> Iterator[ProductResult]:
        for key in keys:
            yield from self.read(key)

    def remove(self) -> None:
        """Delete the spool of a local run; an S3 spool stays (a lifecycle rule on ``.runs/`` expires it)."""
        folder = self.storage.local_path(self.prefix)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):  # other runs may still be spooling next to it
                folder.parent.rmdir()


class StagedFile:
    """A text file written piece by piece, then published under ``key`` in one step: renamed into
    place in a local run folder, uploaded for S3. A crash leaves no partial file under ``key``; a
    failure (a full disk) removes the temp file before the error is raised."""

    def __init__(self, storage: Storage, key: str, content_type: str):
        self.storage, self.key, self.content_type = storage, key, content_type
        target = storage.local_path(key)
        folder = None
        try:
            if target is not None:  # same folder, so the final rename is atomic
                folder = target.parent
                folder.mkdir(parents=True, exist_ok=True)
            fd, path = tempfile.mkstemp(dir=folder, prefix=f".{PurePosixPath(key).name}.", suffix=".tmp")
        except OSError as exc:
            raise disk_error(exc, target or key) from exc
        self.path = Path(path)
        self.fh = os.fdopen(fd, "w", encoding="utf-8", newline="")

    def write(self, text: str) -> None:
        with self._disk_errors():
            self.fh.write(text)

    def copy_from(self, chunk) -> None:
        """Append a temporary chunk file (opened ``w+``) written earlier."""
        chunk.seek(0)
        with self._disk_errors():
            shutil.copyfileobj(chunk, self.fh, 1 << 20)

    def finish(self) -> None:
        """Everything on disk, with the umask's mode; :meth:`install` then publishes it."""
        with self._disk_errors():
            self.fh.flush()
            os.fchmod(self.fh.fileno(), output_mode())
            os.fsync(self.fh.fileno())
            self.fh.close()

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def install(self) -> str:
        try:
            with self._disk_errors():
                target = self.storage.local_path(self.key)
                if target is not None:
                    os.replace(self.path, target)
                    return str(target)
                upload = getattr(self.storage, "upload_file", None)
                if upload is not None:
                    return upload(self.key, self.path, self.content_type)
                return self.storage.write_bytes(self.key, self.path.read_bytes(), self.content_type)
        finally:
            self.discard()

    def publish(self) -> str:
        try:
            self.finish()
        except BaseException:
            self.discard()
            raise
        return self.install()

    def discard(self) -> None:
        """Remove the temp file first (so nothing is left even when closing fails), then close."""
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        if not self.fh.closed:
            with contextlib.suppress(OSError, ValueError):
                self.fh.close()

    @contextlib.contextmanager
    def _disk_errors(self):
        try:
            yield
        except OSError as exc:
            raise disk_error(exc, self.storage.local_path(self.key) or self.key) from exc


def chunk_file():
    """A temporary text file for one section of a streamed document (deleted when closed)."""
    return tempfile.TemporaryFile("w+", encoding="utf-8", newline="")


CSV_COLUMNS = [
    "sku",
    "status",
    "kind",
    "preset",
    "variant",
    "scene",
    "position",
    "photo",
    "shows_variant",
    "key",
    "format",
    "width",
    "height",
    "bytes",
    "sha256",
    "generated",
    "checks",
    "error",
    "review_reasons",
    "source_file",
    "source_line",
]


def _csv_rows(p: ProductResult) -> Iterator[dict]:
    """The manifest.csv rows of one product: one per output, or one row when it has none."""
    base = {
        "sku": p.sku or "",
        "status": p.status,
        "error": p.error or "",
        "review_reasons": "; ".join(p.review_reasons),
        "source_file": p.source_file,
        "source_line": p.source_line,
    }
    if not p.outputs:
        yield base
    for o in p.outputs:
        row = o.model_dump(include=set(CSV_COLUMNS))
        row["checks"] = "; ".join(o.checks)
        yield {**row, **base}


class ManifestWriter:
    """Streams products into ``manifest.json`` and ``manifest.csv``; the header (with the run's notes,
    known only at the end) is written last. Use as a context manager; :meth:`publish` finishes."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self._products = chunk_file()
        self._csv = StagedFile(storage, "manifest.csv", "text/csv")
        self._rows = SafeDictWriter(self._csv.fh, CSV_COLUMNS, lineterminator="\r\n")
        self._rows.writeheader()
        self._count = 0

    def add(self, product: ProductResult) -> None:
        body = product.model_dump_json(indent=2).replace("\n", "\n    ")  # nested two levels deep
        try:
            self._products.write((",\n    " if self._count else "\n    ") + body)
        except OSError as exc:  # the chunk lives in the temp folder, which may be full too
            raise disk_error(exc, "a temporary file of the manifest") from exc
        self._count += 1
        try:
            self._rows.writerows(_csv_rows(product))
        except OSError as exc:
            raise disk_error(exc, "manifest.csv") from exc

    def publish(self, header: RunManifest) -> tuple[str, str]:
        """Write ``manifest.json`` (``header`` with the streamed products) and ``manifest.csv``;
        returns their URIs. ``header.products`` must be empty. Both files are complete on disk before
        either is published, and the JSON names the CSV's checksum, so a run killed between the two
        renames is found (and repaired) by :func:`repair_manifest_pair` on the next start."""
        header.finished = header.finished or datetime.now(UTC)
        staged = StagedFile(self.storage, "manifest.json", "application/json")
        try:
            self._csv.finish()
            header.manifest_csv_sha256 = self._csv.sha256()
            head = header.model_copy(update={"products": []}).model_dump_json(indent=2)
            empty = '"products": []\n}'
            assert head.endswith(empty)
            if self._count:
                staged.write(head[: -len(empty)] + '"products": [')
                staged.copy_from(self._products)
                staged.write("\n  ]\n}")
            else:
                staged.write(head)
            staged.finish()
        except BaseException:
            staged.discard()
            raise
        json_uri = staged.install()  # the JSON first: a torn pair is repaired from it
        return json_uri, self._csv.install()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._products.close()
        self._csv.discard()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def manifest_csv(manifest: RunManifest) -> str:
    buf = io.StringIO()
    writer = SafeDictWriter(buf, CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for p in manifest.products:
        writer.writerows(_csv_rows(p))
    return buf.getvalue()


TEMP_GRACE_S = 600  # other writers' (review, publish) temp files this much older than a run are dead
# Files the review server and publish write into a run folder under their own leases: their temp
# files may belong to a live writer, so only these keep the grace period.
OTHER_WRITERS = ("review.json", "review.damaged-", "approved.json", "approved.csv", "publish_ledger.json")


def clean_leftovers(storage: Storage, run_id: str, started: float) -> list[str]:
    """What killed runs left in the output, cleaned at the start of a run (``started``: unix time):
    temp files and unfinished multipart uploads, result spools of dead runs, and a torn
    manifest.json/manifest.csv pair. Returns one note per thing done.

    The caller holds the output's run lease (:func:`packshot.lease.acquire_lease`), so no other run
    is writing: the run's own temp files and spools are removed at once, whatever their age."""
    notes: list[str] = []
    steps = ((remove_dead_temp_files, (storage,)),
             (storage.clean_leftovers, (started - TEMP_GRACE_S,)),
             (remove_dead_spools, (storage, run_id, started)),
             (repair_manifest_pair, (storage,)))
    for step, args in steps:
        try:
            notes += step(*args)
        except Exception as exc:  # tidying up must never stop a run (a bucket policy without List ...)
            notes.append(f"could not clean up after earlier runs ({type(exc).__name__}: {exc}); carrying on")
    return notes


def remove_dead_temp_files(storage: Storage) -> list[str]:
    """Temp files of runs (``.manifest.csv.<random>.tmp`` ...) under a local output, removed at once:
    with the run lease held they belong to no live writer. Those of the review server and publish
    wait for the grace period (:data:`TEMP_GRACE_S`)."""
    probe = storage.local_path("manifest.json")
    if probe is None:
        return []
    removed = 0
    root = probe.parent
    for path in stale_temp_files(root, float("inf")):  # any age: the lease says no run is writing
        if not path.name[1:].startswith(OTHER_WRITERS):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return [f"removed {removed} temp file(s) left by an interrupted run"] if removed else []


def remove_dead_spools(storage: Storage, run_id: str, older_than: float) -> list[str]:
    """Delete local ``.runs/<id>/`` spools other than ``run_id``'s whose newest file is older than
    ``older_than`` (S3 spools expire by a lifecycle rule on ``.runs/``)."""
    root = storage.local_path(".runs/x")
    if root is None or not root.parent.is_dir():
        return []
    removed = []
    for folder in root.parent.iterdir():
        if folder.name == run_id or not folder.is_dir():
            continue
        try:
            times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()] or [folder.stat().st_mtime]
        except OSError:  # removed meanwhile (another run tidying up)
            continue
        if max(times) < older_than:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return [f"removed the result spools of {len(removed)} interrupted run(s) from .runs/"] if removed else []


def repair_manifest_pair(storage: Storage) -> list[str]:
    """When ``manifest.csv`` is not the file published with ``manifest.json`` (a run was killed between
    the two renames), rewrite the CSV from the JSON so the pair agrees again."""
    if not storage.exists("manifest.json"):
        return []
    match = re.search(r'"manifest_csv_sha256":\s*"([0-9a-f]{64})"', _head(storage, "manifest.json"))
    if match is None:
        return []  # written before the checksum existed: nothing to compare
    current = hashlib.sha256(storage.read_bytes("manifest.csv")).hexdigest() \
        if storage.exists("manifest.csv") else None
    if current == match.group(1):
        return []
    try:
        manifest = RunManifest.model_validate_json(storage.read_bytes("manifest.json"))
    except ValueError:
        return ["manifest.json is damaged (a run was interrupted); this run writes both manifest files anew"]
    storage.write_bytes("manifest.csv", manifest_csv(manifest).encode(), "text/csv")
    return ["manifest.csv did not belong to manifest.json (a run was interrupted between publishing them); "
            "rewrote manifest.csv from manifest.json"]


def _head(storage: Storage, key: str, size: int = 1 << 16) -> str:
    """The first ``size`` bytes of ``key`` as text (the manifest's header, without its products)."""
    path = storage.local_path(key)
    if path is not None:
        with open(path, "rb") as fh:
            return fh.read(size).decode("utf-8", "replace")
    client = getattr(storage, "client", None)
    if client is not None and hasattr(storage, "bucket"):
        body = client.get_object(Bucket=storage.bucket, Key=storage._key(key), Range=f"bytes=0-{size - 1}")
        return body["Body"].read().decode("utf-8", "replace")
    return storage.read_bytes(key)[:size].decode("utf-8", "replace")
