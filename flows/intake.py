"""Merchant uploads: pick up new catalog CSVs from an inbox and run each one exactly once.

The inbox is a local folder or an S3 prefix (``PACKSHOT_ORCHESTRATION__INBOX``). For each new
``*.csv`` directly in it, the ``packshot-intake`` flow

1. claims the file with a marker ``.claims/<name>.<content hash>`` created only if absent (``O_EXCL``
   locally, a conditional ``If-None-Match: *`` put on S3), so two intake runs never both take it and a
   re-upload of the same bytes is recognised;
2. validates it; an unreadable file or one without a single valid product goes to ``failed/``;
3. starts one catalog run (a subflow) writing to ``<inbox_out>/<csv stem>``;
4. moves the CSV to ``processed/`` (or ``failed/`` when the run itself crashed) with
   ``<name>.validation.txt`` and ``.validation.json`` beside it.

Files still being uploaded are left alone until they have not changed for ``settle_s`` seconds.
Image references in an inbox CSV resolve against the inbox folder (local) or should be ``s3://`` /
``https://`` (S3 inbox).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from pydantic import Field

from orchestrator.options import RunOptions, StageName
from orchestrator.settings import get_settings
from packshot.catalog import CatalogError, load_catalog, report_json, validation_report

Outcome = Literal["processed", "failed"]


@dataclass(frozen=True)
class InboxFile:
    name: str
    digest: str  # sha256 (local) or ETag (S3) of the file's bytes
    modified: float  # unix time of the last change


class Inbox(ABC):
    """A place merchants drop CSVs into, with ``processed/``, ``failed/`` and ``.claims/`` beside them."""

    uri: str

    @abstractmethod
    def new_files(self, settle_s: float) -> list[InboxFile]:
        """CSV files directly in the inbox that have not changed for ``settle_s`` seconds."""

    @abstractmethod
    def claim(self, item: InboxFile) -> bool:
        """Atomically mark ``item`` as taken; False when someone already claimed these bytes."""

    @abstractmethod
    def claim_note(self, item: InboxFile) -> str:
        """What the existing claim marker says (who took the file, where it went)."""

    @abstractmethod
    def local_copy(self, item: InboxFile) -> Path:
        """A local path of the CSV, for the catalog reader."""

    @abstractmethod
    def settle(self, item: InboxFile, outcome: Outcome, reports: dict[str, bytes]) -> str:
        """Move the CSV to ``processed/`` or ``failed/`` with ``reports`` (suffix -> bytes) beside it;
        return the CSV's new location."""


def _stamped(name: str) -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{name}"


class LocalInbox(Inbox):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = str(self.root)

    def _marker(self, item: InboxFile) -> Path:
        return self.root / ".claims" / f"{item.name}.{item.digest[:16]}"

    def new_files(self, settle_s: float) -> list[InboxFile]:
        now = time.time()
        out = []
        for path in sorted(self.root.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.suffix.lower() != ".csv":
                continue
            stat = path.stat()
            if now - stat.st_mtime < settle_s:
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out.append(InboxFile(path.name, digest, stat.st_mtime))
        return out

    def claim(self, item: InboxFile) -> bool:
        marker = self._marker(item)
        marker.parent.mkdir(exist_ok=True)
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(f"claimed {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC by pid {os.getpid()}\n")
        return True

    def claim_note(self, item: InboxFile) -> str:
        try:
            return self._marker(item).read_text().strip()
        except FileNotFoundError:
            return ""

    def local_copy(self, item: InboxFile) -> Path:
        return self.root / item.name

    def settle(self, item: InboxFile, outcome: Outcome, reports: dict[str, bytes]) -> str:
        folder = self.root / outcome
        folder.mkdir(exist_ok=True)
        target = folder / _stamped(item.name)
        for suffix, data in reports.items():
            (folder / f"{target.name}{suffix}").write_bytes(data)
        os.replace(self.root / item.name, target)  # reports first: a CSV in processed/ always has them
        with open(self._marker(item), "a") as fh:
            fh.write(f"{outcome}: {target}\n")
        return str(target)


class S3Inbox(Inbox):
    def __init__(self, uri: str, client=None):
        from packshot.storage import make_s3_client

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client or make_s3_client()
        self._tmp = Path(tempfile.mkdtemp(prefix="packshot-inbox-"))

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _marker(self, item: InboxFile) -> str:
        return self._key(f".claims/{item.name}.{item.digest[:16]}")

    def new_files(self, settle_s: float) -> list[InboxFile]:
        now = time.time()
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix):]
                if name.startswith(".") or not name.lower().endswith(".csv"):
                    continue
                modified = obj["LastModified"].timestamp()
                if now - modified >= settle_s:
                    out.append(InboxFile(name, obj["ETag"].strip('"'), modified))
        return sorted(out, key=lambda f: f.name)

    def claim(self, item: InboxFile) -> bool:
        from botocore.exceptions import ClientError

        body = f"claimed {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC by pid {os.getpid()}\n".encode()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._marker(item), Body=body, IfNoneMatch="*")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def claim_note(self, item: InboxFile) -> str:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._marker(item))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return ""
        return body.decode().strip()

    def local_copy(self, item: InboxFile) -> Path:
        path = self._tmp / item.digest[:16] / item.name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self._key(item.name), str(path))
        return path

    def settle(self, item: InboxFile, outcome: Outcome, reports: dict[str, bytes]) -> str:
        target = self._key(f"{outcome}/{_stamped(item.name)}")
        for suffix, data in reports.items():
            self.client.put_object(Bucket=self.bucket, Key=f"{target}{suffix}", Body=data)
        self.client.copy_object(Bucket=self.bucket, Key=target,
                                CopySource={"Bucket": self.bucket, "Key": self._key(item.name)})
        self.client.delete_object(Bucket=self.bucket, Key=self._key(item.name))
        note = f"{self.claim_note(item)}\n{outcome}: s3://{self.bucket}/{target}\n".encode()
        self.client.put_object(Bucket=self.bucket, Key=self._marker(item), Body=note)
        return f"s3://{self.bucket}/{target}"


def open_inbox(uri: str) -> Inbox:
    return S3Inbox(uri) if uri.startswith("s3://") else LocalInbox(uri)


def _reports(text: str, data: dict) -> dict[str, bytes]:
    return {".validation.txt": (text + "\n").encode(),
            ".validation.json": json.dumps(data, indent=1).encode()}


@flow(name="packshot-intake", log_prints=True)
def intake_inbox(
    inbox: Annotated[str | None, Field(description="folder or s3://bucket/prefix; default: settings")] = None,
    out: Annotated[str | None, Field(description="where runs write: <out>/<csv stem>")] = None,
    brand: Annotated[str | None, Field(description="brand style for rows naming none")] = None,
    stages: Annotated[list[StageName] | None, Field(description="stages; default all but video")] = None,
    presets: Annotated[list[str] | None, Field(description="export presets; default from settings")] = None,
    settle_s: Annotated[float, Field(ge=0, description="skip files changed more recently than this")] = 10.0,
) -> list[dict]:
    """Start one catalog run per new CSV in the inbox; each file is handled exactly once."""
    from flows.catalog_run import catalog_run

    logger = get_run_logger()
    settings = get_settings().orchestration
    box = open_inbox(inbox or settings.inbox)
    out_root = (out or settings.inbox_out).rstrip("/")
    handled = []
    for item in box.new_files(settle_s):
        if not box.claim(item):
            note = box.claim_note(item)
            if "processed:" in note or "failed:" in note:  # the same bytes were uploaded again
                text = f"{item.name}: identical to an upload already handled, so no new run.\n{note}"
                moved = box.settle(item, "processed", _reports(text, {"duplicate_of": note}))
                handled.append({"file": item.name, "outcome": "duplicate", "moved_to": moved})
            continue  # else another intake run is processing it right now
        entry = {"file": item.name}
        try:
            catalog = load_catalog(box.local_copy(item))
        except CatalogError as exc:
            moved = box.settle(item, "failed", _reports(str(exc), {"file": item.name, "ok": False,
                                                                    "error": str(exc)}))
            handled.append({**entry, "outcome": "failed", "error": str(exc), "moved_to": moved})
            logger.warning("%s rejected: %s", item.name, exc)
            continue
        reports = _reports(validation_report(catalog), report_json(catalog))
        if not catalog.products:
            moved = box.settle(item, "failed", reports)
            handled.append({**entry, "outcome": "failed", "error": "no valid products", "moved_to": moved})
            continue
        options = RunOptions(catalog=catalog.path, out=f"{out_root}/{Path(item.name).stem}", brand=brand,
                             presets=presets, **({"stages": stages} if stages else {}))
        try:
            summary = catalog_run.with_options(flow_run_name=f"intake {item.name}")(options)
        except Exception as exc:  # the run crashed: keep the file with its report for a retry
            moved = box.settle(item, "failed", {**reports, ".error.txt": f"{exc}\n".encode()})
            handled.append({**entry, "outcome": "failed", "error": str(exc), "moved_to": moved})
            logger.error("%s: catalog run failed: %s", item.name, exc)
            continue
        moved = box.settle(item, "processed", reports)
        handled.append({**entry, "outcome": "processed", "moved_to": moved, "counts": summary["counts"],
                        "manifest": summary["manifest"]})
        logger.info("%s: %s", item.name, summary["counts"])
    return handled
