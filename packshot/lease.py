"""One writer per output: a lease that runs, publishes and review servers hold on their output.

``acquire_lease(storage, "run", "packshot run catalog.csv")`` returns a held :class:`Lease` (a context
manager that releases it) or raises :class:`LeaseHeld`, whose message names the holder and what to do.

- Local folder: an OS file lock (``flock``) on ``<out>/.locks/<name>.lock``. The kernel drops it when
  the holding process dies, however it dies, so a killed run never blocks the next one. The lock file
  also holds a small JSON record of the holder (host, pid, purpose, since) for the refusal message.
- S3: a conditional create (``If-None-Match: *``) of ``<prefix>/.locks/<name>.json`` carrying an expiry.
  A heartbeat thread renews it (a conditional put on the record's own ETag); a holder that dies stops
  renewing, and once the record has expired (measured on the S3 server's clock) the next writer takes
  it over with a put conditional on the expired record's ETag, so of two takers exactly one wins. A
  damaged record counts as expired: damaged state is never a reason to fail forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from packshot.errors import PackshotError
from packshot.storage import Storage

log = logging.getLogger(__name__)

LOCK_FOLDER = ".locks"
S3_TTL_S = 60.0  # an S3 lease not renewed for this long is free to take over
POLL_S = 0.2  # how often a waiting writer looks again


class LeaseHeld(PackshotError):
    """Another process holds the output's lease; the message names it and what to do."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    purpose: str
    since: str  # ISO time the lease was taken (UTC)

    @classmethod
    def me(cls, purpose: str) -> Holder:
        return cls(socket.gethostname(), os.getpid(), purpose,
                   datetime.now(UTC).replace(microsecond=0).isoformat())

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        """The holder a record names, or None for a damaged or empty record."""
        try:
            raw = json.loads(data)
            return cls(str(raw["host"]), int(raw["pid"]), str(raw["purpose"]), str(raw["since"]))
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        return f"{self.purpose!r} (pid {self.pid} on {self.host}, since {self.since})"


def _held_message(where: str, holder: Holder | None, waited: float) -> str:
    who = holder.describe() if holder else "another process (its record is being written)"
    waited_note = f" after waiting {waited:.0f} s" if waited >= 1 else ""
    return (f"{where} is in use by {who}{waited_note}: wait for it to finish and try again, "
            "or stop that process; a process that died frees it by itself")


class Lease:
    """A held lease: ``with`` releases it at the end of the block; ``release()`` does it at once."""

    name: str
    holder: Holder

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def lost(self) -> bool:
        """True when the lease was taken from this holder (an S3 lease that could not be renewed)."""
        return False


class _FileLease(Lease):
    def __init__(self, fd: int, path: str, name: str, holder: Holder):
        self._fd: int | None = fd
        self.path, self.name, self.holder = path, name, holder

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no stale holder record for the next reader
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire_local(storage: Storage, name: str, purpose: str, wait_s: float) -> Lease:
    path = storage.local_path(f"{LOCK_FOLDER}/{name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    started = time.monotonic()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    with open(path, "rb") as fh:
                        holder = Holder.parse(fh.read())
                    raise LeaseHeld(_held_message(str(storage.uri), holder,
                                                  time.monotonic() - started)) from None
                time.sleep(POLL_S)
        holder = Holder.me(purpose)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder.__dict__).encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return _FileLease(fd, str(path), name, holder)


class _S3Lease(Lease):
    def __init__(self, storage, key: str, name: str, holder: Holder, etag: str, ttl_s: float):
        self.storage, self.key, self.name, self.holder = storage, key, name, holder
        self._etag, self.ttl_s = etag, ttl_s
        self._lost = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease-{name}", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> bool:
        return self._lost

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                with self._lock:
                    if self._stop.is_set():
                        return
                    etag = _put_record(self.storage, self.key, self.holder, self.ttl_s, if_match=self._etag)
                    if etag is None:
                        self._lost = True
                        log.error("the lease %s on %s was taken over by another process", self.name,
                                  self.storage.uri)
                        return
                    self._etag = etag
            except Exception as exc:  # a network blip: try again at the next beat, the TTL leaves room
                log.warning("could not renew the lease %s on %s: %s", self.name, self.storage.uri, exc)

    def release(self) -> None:
        if self._stop.is_set():
            return
        with self._lock:
            self._stop.set()
            if not self._lost:
                with contextlib.suppress(Exception):  # at worst it expires by itself
                    self.storage.client.delete_object(Bucket=self.storage.bucket, Key=self.key,
                                                      IfMatch=self._etag)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def _record(holder: Holder, ttl_s: float) -> bytes:
    # The token makes every write's bytes (so its ETag) unique, which the conditional puts rely on.
    return json.dumps({**holder.__dict__, "ttl_s": ttl_s, "token": uuid.uuid4().hex}).encode()


def _put_record(storage, key: str, holder: Holder, ttl_s: float, *, if_match: str | None = None,
                if_none_match: bool = False) -> str | None:
    """Write the lease record under a condition; its new ETag, or None when the condition failed."""
    from botocore.exceptions import ClientError

    condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"} if if_none_match else {}
    try:
        answer = storage.client.put_object(Bucket=storage.bucket, Key=key, Body=_record(holder, ttl_s),
                                           ContentType="application/json", **condition)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404"):
            return None
        raise
    return answer["ETag"]


def _read_record(storage, key: str) -> tuple[Holder | None, str, bool] | None:
    """(holder, etag, expired) of the current record, or None when there is none."""
    from botocore.exceptions import ClientError

    try:
        answer = storage.client.get_object(Bucket=storage.bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    body = answer["Body"].read()
    holder = Holder.parse(body)
    try:
        ttl_s = float(json.loads(body)["ttl_s"])
    except (ValueError, TypeError, KeyError):
        ttl_s = -1.0  # damaged: treated as expired
    try:  # the server's clock on both sides, so a skewed client clock cannot steal a live lease
        now = parsedate_to_datetime(answer["ResponseMetadata"]["HTTPHeaders"]["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        now = time.time()
    age = now - answer["LastModified"].timestamp()
    return holder, answer["ETag"], holder is None or age > ttl_s


def _acquire_s3(storage, name: str, purpose: str, wait_s: float, ttl_s: float) -> Lease:
    key = storage._key(f"{LOCK_FOLDER}/{name}.json")
    holder = Holder.me(purpose)
    started = time.monotonic()
    while True:
        etag = _put_record(storage, key, holder, ttl_s, if_none_match=True)
        current = None
        if etag is None:
            current = _read_record(storage, key)
            if current is None:
                continue  # released between our put and our read: try the create again
            old_holder, old_etag, expired = current
            if expired:
                etag = _put_record(storage, key, holder, ttl_s, if_match=old_etag)
                if etag is not None:
                    log.warning("took over the expired lease %s on %s from %s", name, storage.uri,
                                old_holder.describe() if old_holder else "a damaged record")
        if etag is not None:
            return _S3Lease(storage, key, name, holder, etag, ttl_s)
        if time.monotonic() - started >= wait_s:
            raise LeaseHeld(_held_message(storage.uri, current[0] if current else None,
                                          time.monotonic() - started))
        time.sleep(POLL_S)


def acquire_lease(storage: Storage, name: str, purpose: str, *, wait_s: float = 0,
                  ttl_s: float | None = None) -> Lease:
    """Hold the lease ``name`` (``run``, ``publish``, ``review``) on ``storage``'s output for
    ``purpose`` (shown to whoever is refused). Waits up to ``wait_s`` seconds for the holder to finish,
    then raises :class:`LeaseHeld`. ``ttl_s`` (S3 only) is how long a holder may go unrenewed."""
    if storage.local_path(LOCK_FOLDER) is not None:
        return _acquire_local(storage, name, purpose, wait_s)
    return _acquire_s3(storage, name, purpose, wait_s, ttl_s if ttl_s is not None else S3_TTL_S)
