"""Safe image loading: catalog-relative paths, ``s3://`` objects and ``https://`` URLs.

Every failure is an :class:`~packshot.errors.ImageLoadError` whose message names the image and
says what to do. Images come out as sRGB ``HxWx3 uint8`` plus an optional ``HxW uint8`` alpha.

Safety rules:
- local references must stay inside the catalog folder (no ``..``, outside absolute paths or symlinks);
- the pixel count is checked from the header before any pixel is decoded (decompression bombs);
- URLs must resolve to public addresses only (or to ``load.allowed_networks``); the connection goes to
  the address that was checked, so DNS rebinding cannot swap it, while TLS still verifies the hostname;
  redirects are followed by hand and checked again at every hop; size and total time are capped.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import logging
import os
import socket
import ssl
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import certifi
import httpcore
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from packshot import __version__
from packshot.config import LoadSettings
from packshot.errors import ImageLoadError

log = logging.getLogger(__name__)

USER_AGENT = f"packshot/{__version__} (product image loader)"
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "AVIF")  # JPEG includes MPO
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_TRANSIENT_STATUSES = {500, 502, 503, 504}  # 4xx are never retried
_CHUNK_BYTES = 64 * 1024
# Formats Pillow cannot (or must not) read here, recognised by their first bytes for a helpful message.
_KNOWN_NON_RASTER = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"8BPS", "a Photoshop PSD file"),
    (b"%!PS", "a PostScript/EPS file"),
)


@dataclass
class LoadedImage:
    """A decoded image.

    ``rgb``: sRGB ``HxWx3 uint8``, EXIF orientation applied. ``alpha``: ``HxW uint8`` straight alpha,
    only when the source has transparency that is actually used, else None. ``sha256``: hex digest of
    the source bytes (cache key). ``source``: the reference as given. ``size``: (width, height).
    ``notes``: things the user may want to know (first frame of an animation used, broken ICC ignored).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    sha256: str
    source: str
    size: tuple[int, int]
    notes: tuple[str, ...] = ()


def load_image(
    ref: str, base_dir: Path, settings: LoadSettings, s3_client=None, data: bytes | None = None
) -> LoadedImage:
    """Load ``ref`` (catalog-relative path, ``s3://bucket/key`` or ``https://`` URL) and decode it.

    ``data``: the bytes of ``ref`` when the caller has already read them (the pipeline hashes a
    local file before deciding to decode it), so the file is not read twice.
    """
    try:
        scheme = urlsplit(ref).scheme.lower() if "://" in ref else ""
        if data is not None:
            pass
        elif scheme in ("http", "https"):
            data = fetch_url(ref, settings)
        elif scheme == "s3":
            data = _read_s3(ref, settings, s3_client)
        elif scheme:
            raise ImageLoadError(
                f"Image {ref!r}: unsupported scheme '{scheme}://'. Use a path relative to the catalog "
                "folder, s3://bucket/key or an https:// URL."
            )
        else:
            data = read_local(ref, base_dir)
        loaded = decode_image(data, _display_ref(ref), settings)
    except ImageLoadError:
        raise
    except MemoryError as exc:
        raise ImageLoadError(
            f"Image {_display_ref(ref)}: ran out of memory while loading it; lower load.max_pixels "
            "(PACKSHOT_LOAD__MAX_PIXELS) or give the worker more memory."
        ) from exc
    except Exception as exc:  # any other failure is still a per-image error, never a crash
        raise ImageLoadError(
            f"Image {_display_ref(ref)}: could not be loaded ({type(exc).__name__}: {exc})."
        ) from exc
    loaded.source = ref
    return loaded


# ---------------------------------------------------------------------------------------------- decoding


def decode_image(data: bytes, name: str, settings: LoadSettings) -> LoadedImage:
    """Decode image bytes into sRGB ``HxWx3 uint8`` (+ optional alpha); ``name`` is used in messages."""
    if not data:
        raise ImageLoadError(f"Image {name}: the file is empty (0 bytes). Re-export or re-upload it.")
    _refuse_non_raster(data, name)
    try:
        with warnings.catch_warnings():
            # Our own limit (load.max_pixels) is checked just below; Pillow's hard limit still applies.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=_available_formats())
    except Image.DecompressionBombError as exc:
        raise _bomb_error(name, str(exc), settings) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(
            f"Image {name}: not a readable image (supported: {', '.join(SUPPORTED_FORMATS)}). "
            "The file may be corrupt or another kind of file; re-export it as JPEG or PNG."
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(f"Image {name}: invalid image header ({exc}); re-export the file.") from exc

    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"Image {name}: declares an empty size {width}x{height}; re-export the file.")
    if width * height > settings.max_pixels:
        raise _bomb_error(name, f"{width}x{height} = {width * height:,} pixels", settings)

    notes: list[str] = []
    if getattr(img, "is_animated", False):
        notes.append("animated image: the first frame was used")
        img.seek(0)
    icc_profile = img.info.get("icc_profile")
    try:
        img.load()
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageLoadError(
            f"Image {name}: the pixel data is truncated or corrupt ({exc}); re-export or re-upload the file."
        ) from exc

    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception as exc:  # malformed EXIF must not lose the image
        notes.append(f"EXIF orientation unreadable ({exc}); image used as stored")

    rgb, alpha = _to_srgb(img, icc_profile, name, notes)
    for note in notes:
        log.warning("Image %s: %s", name, note)
    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        sha256=hashlib.sha256(data).hexdigest(),
        source=name,
        size=(rgb.shape[1], rgb.shape[0]),
        notes=tuple(notes),
    )


@lru_cache
def _available_formats() -> tuple[str, ...]:
    """SUPPORTED_FORMATS that this Pillow build can open (AVIF needs libavif)."""
    Image.init()
    return tuple(fmt for fmt in SUPPORTED_FORMATS if fmt in Image.OPEN)


def _refuse_non_raster(data: bytes, name: str) -> None:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<"):
        kind = "an SVG drawing" if b"<svg" in data[:4096].lower() else "an HTML/XML document"
        raise ImageLoadError(
            f"Image {name}: is {kind}, not a raster image (from a URL: likely an error or login page). "
            "Check the reference, or export the artwork as PNG."
        )
    for magic, kind in _KNOWN_NON_RASTER:
        if data.startswith(magic):
            raise ImageLoadError(f"Image {name}: is {kind}, not an image; export it as JPEG or PNG.")
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftyphevc"):
        raise ImageLoadError(f"Image {name}: HEIC/HEIF is not supported; convert it to JPEG or PNG.")


def _bomb_error(name: str, detail: str, settings: LoadSettings) -> ImageLoadError:
    return ImageLoadError(
        f"Image {name}: refused, too many pixels ({detail}); the limit is load.max_pixels = "
        f"{settings.max_pixels:,}. Downscale the image, or raise PACKSHOT_LOAD__MAX_PIXELS if it is genuine."
    )


def _to_srgb(img: Image.Image, icc_profile: bytes | None, name: str, notes: list[str]):
    """Any Pillow mode -> (sRGB ``HxWx3 uint8``, ``HxW uint8`` alpha or None)."""
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        return _high_bit_depth_gray(img), None
    if mode in ("RGBa", "La"):  # premultiplied: Pillow un-premultiplies on conversion
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("PA", "LA"):
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")

    if icc_profile and img.mode in ("RGB", "RGBA", "CMYK", "L"):
        img = _apply_icc(img, icc_profile, name, notes)
    if img.mode not in ("RGB", "RGBA"):
        try:
            img = img.convert("RGB")
        except ValueError as exc:
            raise ImageLoadError(
                f"Image {name}: color mode {img.mode} is not supported; re-export it as 8-bit RGB."
            ) from exc

    arr = np.asarray(img)
    if img.mode == "RGB":
        return np.ascontiguousarray(arr), None
    rgb, alpha = np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
    return rgb, (alpha if alpha.min() < 255 else None)


def _apply_icc(img: Image.Image, icc_profile: bytes, name: str, notes: list[str]) -> Image.Image:
    """Convert from the embedded profile to sRGB; a broken profile falls back to a plain conversion."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if img.mode != "CMYK" and "srgb" in ImageCms.getProfileDescription(source).lower():
            return img  # already sRGB: skip a costly identity transform
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(
            img,
            source,
            ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            outputMode=out_mode,
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        notes.append(f"embedded ICC profile unusable ({exc}); colors converted without it")
        return img


def _high_bit_depth_gray(img: Image.Image) -> np.ndarray:
    """16/32-bit integer or float grayscale -> ``HxWx3 uint8`` (16-bit ``v`` maps to ``round(v / 257)``)."""
    values = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
    elif img.mode == "I" and (values.size == 0 or values.max() <= 255):
        scale = 1.0  # 8-bit data stored in a 32-bit container
    else:
        scale = 255.0 / 65535.0
    gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


# ----------------------------------------------------------------------------------------- local and S3


def resolve_local(ref: str, base_dir: Path) -> Path:
    """The real path of the catalog-relative file ``ref``; :class:`ImageLoadError` when it (or a
    symlink on the way) points outside ``base_dir``. Every local file a catalog names goes through here."""
    base = Path(base_dir).resolve()
    candidate = Path(ref).expanduser() if ref.startswith("~") else Path(ref)
    resolved = (base / candidate).resolve()  # follows symlinks, so a link to /etc is seen as /etc
    if not resolved.is_relative_to(base):
        raise ImageLoadError(
            f"{ref!r}: refused, it points outside the catalog folder {base} (resolved to {resolved}). "
            "Copy the file into the catalog folder and reference it relative to it."
        )
    return resolved


def read_local(ref: str, base_dir: Path) -> bytes:
    """The bytes of the catalog-relative file ``ref`` (see :func:`resolve_local`)."""
    base = Path(base_dir).resolve()
    resolved = resolve_local(ref, base)
    try:
        # O_NOFOLLOW: the last component cannot be swapped for a symlink after the check above.
        fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError as exc:
        raise ImageLoadError(
            f"Image {ref!r}: file not found at {resolved} (paths are relative to the catalog folder {base})."
        ) from exc
    except IsADirectoryError as exc:
        raise ImageLoadError(f"Image {ref!r}: {resolved} is a folder, not an image file.") from exc
    except OSError as exc:
        raise ImageLoadError(f"Image {ref!r}: cannot open {resolved} ({exc.strerror}); check permissions.") \
            from exc
    with os.fdopen(fd, "rb") as fh:
        try:
            return fh.read()
        except IsADirectoryError as exc:
            raise ImageLoadError(f"Image {ref!r}: {resolved} is a folder, not an image file.") from exc


def _read_s3(ref: str, settings: LoadSettings, s3_client) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    parts = urlsplit(ref)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise ImageLoadError(f"Image {ref!r}: an S3 reference must look like s3://bucket/path/to/image.jpg.")
    try:
        if s3_client is None:
            import boto3

            from packshot.config import get_settings

            storage = get_settings().storage
            s3_client = boto3.client(
                "s3", endpoint_url=storage.s3_endpoint_url, region_name=storage.s3_region
            )
        obj = s3_client.get_object(Bucket=bucket, Key=key)
        declared = obj.get("ContentLength") or 0
        if declared > settings.max_download_bytes:
            obj["Body"].close()
            raise _too_big_error(ref, f"{declared:,} bytes", settings)
        data = obj["Body"].read(settings.max_download_bytes + 1)
        obj["Body"].close()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        hint = {
            "NoSuchKey": "the object does not exist; check the key",
            "NoSuchBucket": "the bucket does not exist; check the name and PACKSHOT_STORAGE__S3_ENDPOINT_URL",
            "AccessDenied": "access denied; check the credentials' permissions on this bucket",
            "403": "access denied; check the credentials' permissions on this bucket",
            "404": "the object does not exist; check the key",
        }.get(code, "check the bucket, key and credentials")
        raise ImageLoadError(f"Image {ref}: S3 said {code}: {hint}.") from exc
    except BotoCoreError as exc:
        raise ImageLoadError(
            f"Image {ref}: could not read from S3 ({exc}); check AWS credentials and "
            "PACKSHOT_STORAGE__S3_ENDPOINT_URL / PACKSHOT_STORAGE__S3_REGION."
        ) from exc
    if len(data) > settings.max_download_bytes:
        raise _too_big_error(ref, f"more than {settings.max_download_bytes:,} bytes", settings)
    return data


def _too_big_error(ref: str, detail: str, settings: LoadSettings) -> ImageLoadError:
    return ImageLoadError(
        f"Image {_display_ref(ref)}: refused, the file is too large ({detail}); the limit is "
        f"load.max_download_bytes = {settings.max_download_bytes:,}. Raise PACKSHOT_LOAD__MAX_DOWNLOAD_BYTES "
        "if the image is genuine."
    )


# ---------------------------------------------------------------------------------------------------- URLs


@dataclass
class _Target:
    url: str
    scheme: str
    host: str  # ASCII (IDNA) hostname or IP literal, without brackets
    port: int
    target: str  # path and query, percent-encoded
    addresses: list[str]  # resolved and checked; connections go to these only


class _TransientStatus(Exception):
    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


def fetch_url(url: str, settings: LoadSettings) -> bytes:
    """Download an image URL under the SSRF, redirect, size and total-time rules (see module doc)."""
    deadline = time.monotonic() + settings.download_timeout_s
    shown = _display_ref(url)
    current = url
    for _hop in range(settings.max_redirects + 1):
        target = check_url(current, settings, shown)
        try:
            status, location, body = _fetch_with_retries(target, deadline, settings, shown)
        except httpcore.TimeoutException as exc:
            raise ImageLoadError(
                f"Image {shown}: download did not finish within load.download_timeout_s = "
                f"{settings.download_timeout_s:g} s; check the server, or raise "
                "PACKSHOT_LOAD__DOWNLOAD_TIMEOUT_S."
            ) from exc
        except _TransientStatus as exc:
            raise ImageLoadError(
                f"Image {shown}: the server kept answering HTTP {exc.status}; retry later."
            ) from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            tls = _tls_error(exc)
            if tls is not None:
                raise ImageLoadError(
                    f"Image {shown}: TLS check failed for {target.host} ({tls}). If the server uses an "
                    "internal certificate authority, point PACKSHOT_LOAD__CA_BUNDLE at its PEM file."
                ) from exc
            raise ImageLoadError(
                f"Image {shown}: network error talking to {target.host} ({exc or type(exc).__name__}); "
                "check the URL and that the server is reachable with a valid certificate."
            ) from exc
        if status in _REDIRECT_STATUSES:
            if not location:
                raise ImageLoadError(f"Image {shown}: HTTP {status} redirect without a Location header.")
            current = urljoin(current, location)
            continue
        if status != 200:
            hint = "the URL is wrong or expired" if 400 <= status < 500 else "the server failed; retry later"
            raise ImageLoadError(f"Image {shown}: the server answered HTTP {status} ({hint}).")
        return body
    raise ImageLoadError(
        f"Image {shown}: more than load.max_redirects = {settings.max_redirects} redirects; "
        "use the final image URL."
    )


def check_url(url: str, settings: LoadSettings, shown: str | None = None) -> _Target:
    """Validate scheme and host, resolve it once and check every address. Raises ImageLoadError."""
    shown = shown or _display_ref(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ImageLoadError(f"Image {shown}: malformed URL ({exc}).") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or (scheme == "http" and not settings.allow_http):
        raise ImageLoadError(
            f"Image {shown}: refused URL {_display_ref(url)}, only https:// image URLs are allowed"
            + ("" if scheme != "http" else " (set PACKSHOT_LOAD__ALLOW_HTTP=true to accept plain http)")
            + "."
        )
    if parts.username is not None or parts.password is not None:
        raise ImageLoadError(f"Image {shown}: URLs with user:password@ are not supported; remove them.")
    if not parts.hostname:
        raise ImageLoadError(f"Image {shown}: the URL has no host name.")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ImageLoadError(f"Image {shown}: invalid host name {parts.hostname!r}.") from exc
    port = port or (443 if scheme == "https" else 80)

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageLoadError(f"Image {shown}: cannot resolve host {host!r} ({exc}); check the URL.") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        reason = blocked_reason(address, settings)
        if reason:
            where = f"address {address}" if address == host else f"host {host!r} resolves to {address}"
            raise ImageLoadError(
                f"Image {shown}: refused, {where} is {reason}. Image URLs must be public; for an internal "
                "image server add its network to PACKSHOT_LOAD__ALLOWED_NETWORKS."
            )
    if not addresses:
        raise ImageLoadError(f"Image {shown}: host {host!r} has no address.")
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~") + (f"?{parts.query}" if parts.query else "")
    return _Target(url=url, scheme=scheme, host=host, port=port, target=target, addresses=addresses)


def blocked_reason(address: str, settings: LoadSettings) -> str | None:
    """Why a connection to ``address`` is not allowed, or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if any(ip.version == net.version and ip in net for net in settings.allowed_networks):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and blocked_reason(str(embedded), settings):
            return "a tunnel address embedding a private IPv4 address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if settings.allow_private_addresses:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (this includes cloud metadata services)"
    if ip.version == 4 and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a carrier-grade NAT address"
    if ip.is_private:
        return "a private network address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved, non-public address"
    return None


def _fetch_with_retries(target: _Target, deadline: float, settings: LoadSettings, shown: str):
    """One hop: (status, Location header or None, body bytes). Transient errors are retried."""
    retrying = Retrying(
        retry=retry_if_exception(_is_transient),
        stop=stop_after_attempt(3) | stop_before_delay(max(0.0, deadline - time.monotonic())),
        wait=wait_exponential(multiplier=0.2, max=1.0),
        reraise=True,
    )
    return retrying(_fetch_once, target, deadline, settings, shown)


def _is_transient(exc: BaseException) -> bool:
    """Connection drops and 5xx are worth another try; TLS failures (bad certificate) are not."""
    if isinstance(exc, _TransientStatus):
        return True
    network = (httpcore.ConnectError, httpcore.ReadError, httpcore.WriteError, httpcore.RemoteProtocolError)
    return isinstance(exc, network) and _tls_error(exc) is None


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    # httpcore wraps the original error as the first argument (its pool drops __cause__).
    causes = (exc.__cause__, exc.__context__, *(exc.args[:1] if exc.args else ()))
    return next((cause for cause in causes if isinstance(cause, ssl.SSLError)), None)


def _fetch_once(target: _Target, deadline: float, settings: LoadSettings, shown: str):
    remaining = _remaining(deadline)
    timeouts = {"connect": remaining, "read": remaining, "write": remaining, "pool": remaining}
    backend = _PinnedBackend(target.addresses, deadline)
    default_port = 443 if target.scheme == "https" else 80
    host_header = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != default_port:
        host_header += f":{target.port}"
    url = httpcore.URL(
        scheme=target.scheme.encode(),
        host=target.host.encode(),
        port=target.port,
        target=target.target.encode(),
    )
    headers = {
        "Host": host_header, "User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"
    }
    ssl_context = _ssl_context(settings.ca_bundle) if target.scheme == "https" else None
    with httpcore.ConnectionPool(
        ssl_context=ssl_context, network_backend=backend, max_connections=1, retries=0
    ) as pool, pool.stream("GET", url, headers=headers, extensions={"timeout": timeouts}) as response:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
        status = response.status
        if status in _REDIRECT_STATUSES:
            return status, headers.get("location"), b""
        if status in _TRANSIENT_STATUSES:
            raise _TransientStatus(status)
        if status != 200:
            return status, None, b""
        if headers.get("content-encoding", "identity").lower() not in ("identity", ""):
            raise ImageLoadError(
                f"Image {shown}: the server sent {headers['content-encoding']}-encoded data although "
                "packshot asked for none; download the image another way."
            )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_download_bytes:
            raise _too_big_error(shown, f"Content-Length {int(declared):,} bytes", settings)
        body = bytearray()
        for chunk in response.iter_stream():
            body += chunk
            if len(body) > settings.max_download_bytes:
                raise _too_big_error(shown, f"over {settings.max_download_bytes:,} bytes received", settings)
        return status, None, bytes(body)


@lru_cache(maxsize=4)
def _ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Verifying context (certificate chain + hostname) with certifi's CAs plus ``load.ca_bundle``."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle is not None:
        try:
            context.load_verify_locations(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ImageLoadError(
                f"Setting load.ca_bundle = {ca_bundle} could not be read as PEM certificates ({exc}); "
                "fix PACKSHOT_LOAD__CA_BUNDLE."
            ) from exc
    return context


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("total download time exceeded")
    return left


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to pre-checked addresses whatever host the URL names (TLS still checks that hostname),
    and caps every socket operation by the download's total deadline."""

    def __init__(self, addresses: list[str], deadline: float):
        self._addresses = addresses
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        error: Exception | None = None
        for address in self._addresses:
            try:
                stream = self._inner.connect_tcp(
                    address, port, timeout=_capped(timeout, self._deadline), local_address=local_address,
                    socket_options=socket_options,
                )
                return _DeadlineStream(stream, self._deadline)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError("no address to connect to")

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("unix sockets are not used for image downloads")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: float):
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes, timeout=None):
        return self._inner.read(max_bytes, _capped(timeout, self._deadline))

    def write(self, buffer, timeout=None):
        self._inner.write(buffer, _capped(timeout, self._deadline))

    def close(self):
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        inner = self._inner.start_tls(ssl_context, server_hostname, _capped(timeout, self._deadline))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info):
        return self._inner.get_extra_info(info)


def _capped(timeout: float | None, deadline: float) -> float:
    left = _remaining(deadline)
    return left if timeout is None else min(timeout, left)


def _display_ref(ref: str) -> str:
    """The reference without query string or credentials (pre-signed URLs carry secrets there)."""
    if "://" not in ref:
        return ref
    parts = urlsplit(ref)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")
