"""Where outputs go: a local folder (default) or an S3 prefix.

Keys are POSIX relative paths (``SKU/packshot-shopify.jpg``). Every write is atomic: a local
write goes to a temp file in the same folder and is renamed into place, an S3 object appears
only when its upload completes, so a killed run never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from packshot.config import StorageSettings
from packshot.errors import ConfigError, PackshotError


def _check_key(key: str) -> str:
    p = PurePosixPath(key)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"storage key must be a relative path inside the run: {key!r}")
    return str(p)


@dataclass(frozen=True)
class StoredFile:
    key: str  # relative to the storage root
    digest: str  # sha256 of the bytes (local) or the ETag (S3): changes whenever the content does
    modified: float  # unix time of the last change


class Storage(ABC):
    uri: str

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        """Store ``data`` atomically under ``key``; return the object's URI."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def link(self, key: str) -> str:
        """A link a person can open from the run report (relative path, or a presigned URL)."""

    def local_path(self, key: str) -> Path | None:
        """The file's path when the storage is a local folder, else None."""
        return None

    def clean_leftovers(self, older_than: float) -> list[str]:
        """Remove what killed runs left behind before the unix time ``older_than`` (temp files,
        unfinished uploads); returns a note per removal kind, for the run's log."""
        return []

    @abstractmethod
    def list_files(self, folder: str = "") -> list[StoredFile]:
        """The files directly inside ``folder`` (not in its subfolders), sorted by key."""

    @abstractmethod
    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if it does not exist yet (atomically, across processes and machines);
        False when it already existed."""

    @abstractmethod
    def move(self, key: str, target: str) -> str:
        """Move ``key`` to ``target`` (replacing it); returns the new URI."""

    @abstractmethod
    def fetch_copy(self, key: str, folder: Path) -> Path:
        """A local file with ``key``'s bytes: the file itself for local storage, else a download into
        ``folder``."""


class LocalStorage(Storage):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        atomic_write(self._path(key), data)
        return str(self._path(key))

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def link(self, key: str) -> str:
        return _check_key(key)

    def list_files(self, folder: str = "") -> list[StoredFile]:
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return []
        out = []
        for path in sorted(base.iterdir()):
            if path.is_file() and not path.is_symlink():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out.append(StoredFile(str(path.relative_to(self.root)), digest, path.stat().st_mtime))
        return out

    def create_exclusive(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True

    def move(self, key: str, target: str) -> str:
        destination = self._path(target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(key), destination)
        return str(destination)

    def fetch_copy(self, key: str, folder: Path) -> Path:
        return self._path(key)

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def clean_leftovers(self, older_than: float) -> list[str]:
        removed = 0
        for path in stale_temp_files(self.root, older_than):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
        return [f"removed {removed} temp file(s) left by an interrupted run"] if removed else []


class StorageFullError(PackshotError):
    """The output's disk (or quota) is full: nothing more can be written until space is freed."""


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_umask_lock = threading.Lock()


def disk_error(exc: OSError, where: Path | str) -> Exception:
    """``exc`` as the error to raise: a full disk or quota becomes one clear :class:`StorageFullError`."""
    if exc.errno in _FULL:
        return StorageFullError(
            f"cannot write {where}: the disk is full ({exc.strerror}); free space there or write the run "
            "to another --out folder, then run again (finished products are kept and skipped)"
        )
    return exc


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:  # elsewhere: set and restore
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def output_mode() -> int:
    """The mode a plain ``open()`` would give a new file: 0644 under umask 022 (mkstemp gives 0600)."""
    return 0o666 & ~current_umask()


@contextmanager
def atomic_file(path: Path, mode: str = "wb", **open_args) -> Iterator[IO]:
    """A file object whose content appears at ``path`` only when the block ends without error: written
    to a temp file in the same folder, flushed to disk, given the umask's mode, then renamed over
    ``path``. On any error the temp file is removed before the error is raised (a full disk as one
    :class:`StorageFullError`), and ``path`` keeps its old content. The one atomic write of packshot:
    storage, cutout folders, ledgers and caches go through it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise disk_error(exc, path) from exc
    try:
        with os.fdopen(fd, mode, **open_args) as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), output_mode())
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise disk_error(exc, path) from exc
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(data)


def stale_temp_files(root: Path, older_than: float) -> list[Path]:
    """``.<name>.<random>.tmp`` files under ``root`` (left by killed runs) last changed before the
    unix time ``older_than``."""
    found = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                path = Path(folder) / name
                with contextlib.suppress(OSError):
                    if path.lstat().st_mtime < older_than:
                        found.append(path)
    return found


class S3Storage(Storage):
    """An S3 (or S3-compatible) bucket prefix, through boto3's managed transfers: uploads above
    ``PACKSHOT_STORAGE__MULTIPART_THRESHOLD_MB`` go multipart in ``MULTIPART_CHUNK_MB`` parts (an object
    appears only when its last part lands); links in the report are presigned GET URLs."""

    def __init__(self, uri: str, client=None, presign_expiry_s: int = 7 * 24 * 3600,
                 multipart_threshold_mb: int = 8, multipart_chunk_mb: int = 8):
        from boto3.s3.transfer import TransferConfig

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"bad S3 location {uri!r}: write it as s3://bucket/prefix")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client or make_s3_client()
        self.presign_expiry_s = presign_expiry_s
        self.transfer = TransferConfig(multipart_threshold=multipart_threshold_mb * 1024 * 1024,
                                       multipart_chunksize=multipart_chunk_mb * 1024 * 1024)

    def _key(self, key: str) -> str:
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        import io

        extra = {"ContentType": content_type} if content_type else None
        self.client.upload_fileobj(io.BytesIO(data), self.bucket, self._key(key), ExtraArgs=extra,
                                   Config=self.transfer)
        return f"s3://{self.bucket}/{self._key(key)}"

    def upload_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        """Upload a local file (a LoRA, a clip) without reading it into memory; multipart when large."""
        extra = {"ContentType": content_type} if content_type else None
        self.client.upload_file(str(path), self.bucket, self._key(key), ExtraArgs=extra, Config=self.transfer)
        return f"s3://{self.bucket}/{self._key(key)}"

    def download_file(self, key: str, path: Path) -> Path:
        """Download an object to ``path`` (parallel ranged GETs when large), atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        try:
            self.client.download_file(self.bucket, self._key(key), str(tmp), Config=self.transfer)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def list_files(self, folder: str = "") -> list[StoredFile]:
        prefix = self._key(folder) + "/" if folder else (f"{self.prefix}/" if self.prefix else "")
        root = f"{self.prefix}/" if self.prefix else ""
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                out.append(StoredFile(obj["Key"][len(root):], obj["ETag"].strip('"'),
                                      obj["LastModified"].timestamp()))
        return sorted(out, key=lambda f: f.key)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:  # a conditional put: S3 (and compatible servers) refuse it when the key exists
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def move(self, key: str, target: str) -> str:
        self.client.copy_object(Bucket=self.bucket, Key=self._key(target),
                                CopySource={"Bucket": self.bucket, "Key": self._key(key)})
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        return f"s3://{self.bucket}/{self._key(target)}"

    def fetch_copy(self, key: str, folder: Path) -> Path:
        return self.download_file(key, folder / PurePosixPath(key).name)

    def clean_leftovers(self, older_than: float) -> list[str]:
        """Abort multipart uploads under this prefix started before ``older_than`` (a killed run's
        parts are otherwise stored, and billed, until a lifecycle rule removes them)."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < older_than:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
                    aborted += 1
        return [f"aborted {aborted} unfinished multipart upload(s) of an interrupted run"] if aborted else []

    def link(self, key: str) -> str:
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        expiry = self.presign_expiry_s
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expiry)


def make_s3_client(settings: StorageSettings | None = None):
    """The one S3 client factory: the configured endpoint (MinIO, Ceph, R2 ...), path-style addressing
    for them, SigV4 and standard retries. Every S3 access (outputs, inputs, LoRAs, inboxes) uses it."""
    import boto3
    from botocore.config import Config

    s = settings or StorageSettings()
    addressing = "path" if s.s3_endpoint_url else "auto"  # S3-compatible servers (MinIO ...) want path style
    return boto3.client(
        "s3", endpoint_url=s.s3_endpoint_url, region_name=s.s3_region,
        # SigV4 presigned links: required by newer regions, and they carry their expiry (X-Amz-Expires).
        config=Config(s3={"addressing_style": addressing}, retries={"mode": "standard"},
                      signature_version="s3v4"),
    )


def open_storage(target: str | Path, settings: StorageSettings | None = None) -> Storage:
    target = check_location(str(target))
    if target.startswith("s3://"):
        s = settings or StorageSettings()
        return S3Storage(target, client=make_s3_client(s), presign_expiry_s=s.presign_expiry_s,
                         multipart_threshold_mb=s.multipart_threshold_mb,
                         multipart_chunk_mb=s.multipart_chunk_mb)
    try:
        return LocalStorage(target)
    except OSError as exc:
        raise ConfigError(f"cannot use the output folder {target}: {exc.strerror or exc}; choose "
                          "another --out folder") from None


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_location(target: str) -> str:
    """``target`` when it is a folder path or a well-formed ``s3://bucket/prefix``; else one
    :class:`ConfigError` line (``s3:/bucket`` with one slash, ``s3:bucket``, another scheme, a bucket
    name S3 would refuse) before any work is done. Returns it unchanged."""
    scheme = _SCHEME.match(target)
    if target.lower().startswith("s3://"):
        bucket = target[5:].partition("/")[0]
        if not target.startswith("s3://"):
            raise ConfigError(f"bad S3 location {target!r}: write the scheme in lower case, s3://bucket/prefix")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ConfigError(f"bad S3 location {target!r}: {bucket!r} is not a valid bucket name "
                              "(3-63 lower-case letters, digits, dots and hyphens); write s3://bucket/prefix")
        return target
    if scheme and (target[scheme.end():].startswith("/") or scheme.group(1).lower() in _KNOWN_SCHEMES
                   or "://" in target):
        raise ConfigError(f"unsupported or malformed output location {target!r}: use a folder or "
                          "s3://bucket/prefix (two slashes)")
    return target


_KNOWN_SCHEMES = {"s3", "s3a", "s3n", "gs", "gcs", "az", "abfs", "abfss", "wasb", "http", "https", "file",
                  "ftp", "sftp", "hdfs", "r2", "minio"}


def check_output(storage: Storage) -> None:
    """Fail with one :class:`ConfigError` line, before any work, when ``storage`` cannot be written:
    a local folder that is read-only or not a folder, an S3 bucket that does not exist or refuses
    us. Writes and removes a probe file locally; asks S3 for the bucket (HeadBucket)."""
    probe_dir = storage.local_path(".probe")
    if probe_dir is not None:
        root = probe_dir.parent
        try:
            fd, probe = tempfile.mkstemp(dir=root, prefix=".write-probe.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(f"cannot write to the output folder {root} ({exc.strerror or exc}): make it "
                              "writable or choose another --out") from None
        return
    if isinstance(storage, S3Storage):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            storage.client.head_bucket(Bucket=storage.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("403", "AccessDenied"):  # it exists; a policy without ListBucket may let us write
                return
            what = "does not exist" if code in ("404", "NoSuchBucket") else f"answered {code}"
            raise ConfigError(f"the S3 bucket {storage.bucket!r} of {storage.uri} {what}: create it or "
                              "fix --out (and the AWS credentials)") from None
        except BotoCoreError as exc:
            raise ConfigError(f"cannot reach S3 for {storage.uri} ({exc}); check "
                              "PACKSHOT_STORAGE__S3_ENDPOINT_URL and the network") from None
