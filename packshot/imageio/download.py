"""The one SSRF-safe downloader: https only, public addresses only (or ``load.allowed_networks``), the
connection pinned to the checked address, every redirect checked again, size and total time capped."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import certifi
import httpcore
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
from packshot.imageio.refs import display_ref, too_big_error

log = logging.getLogger(__name__)

USER_AGENT = f"packshot/{__version__} (product image loader)"
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_TRANSIENT_STATUSES = {500, 502, 503, 504}  # 4xx are never retried
_CHUNK_BYTES = 64 * 1024


@dataclass
class _Target:
    url: str
    scheme: str
    host: str  # ASCII (IDNA) hostname or IP literal, without brackets
    port: int
    target: str  # path and query, percent-encoded
    addresses: list[str]  # resolved and checked; connections go to these only


class HTTPStatusError(ImageLoadError):
    """The server's final answer was not 200 (after retries of 5xx); ``status`` says which it was."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class _TransientStatus(Exception):
    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


def fetch_url(url: str, settings: LoadSettings, accept: str = "image/*") -> bytes:
    """Download ``url`` under the SSRF, redirect, size and total-time rules (see module doc). Every
    packshot download goes through here: images, feeds, and providers' result files (``accept``)."""
    return _request(url, settings, accept, "GET")[0]


def fetch_headers(url: str, settings: LoadSettings, accept: str = "*/*") -> dict[str, str]:
    """The response headers (lowercased names) of a ``HEAD`` on ``url`` under the same rules as
    :func:`fetch_url`, no body read: how an image's ETag or Last-Modified is checked without a download."""
    return _request(url, settings, accept, "HEAD")[1]


def _request(url: str, settings: LoadSettings, accept: str, method: str) -> tuple[bytes, dict[str, str]]:
    deadline = time.monotonic() + settings.download_timeout_s
    shown = display_ref(url)
    current = url
    for _hop in range(settings.max_redirects + 1):
        target = check_url(current, settings, shown)
        try:
            status, location, body, headers = _fetch_with_retries(target, deadline, settings, shown, accept,
                                                                  method)
        except httpcore.TimeoutException as exc:
            raise ImageLoadError(
                f"Image {shown}: download did not finish within load.download_timeout_s = "
                f"{settings.download_timeout_s:g} s; check the server, or raise "
                "PACKSHOT_LOAD__DOWNLOAD_TIMEOUT_S."
            ) from exc
        except _TransientStatus as exc:
            raise HTTPStatusError(
                f"Image {shown}: the server kept answering HTTP {exc.status}; retry later.", exc.status
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
            raise HTTPStatusError(f"Image {shown}: the server answered HTTP {status} ({hint}).", status)
        return body, headers
    raise ImageLoadError(
        f"Image {shown}: more than load.max_redirects = {settings.max_redirects} redirects; "
        "use the final image URL."
    )


def check_url(url: str, settings: LoadSettings, shown: str | None = None) -> _Target:
    """Validate scheme and host, resolve it once and check every address. Raises ImageLoadError."""
    shown = shown or display_ref(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ImageLoadError(f"Image {shown}: malformed URL ({exc}).") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or (scheme == "http" and not settings.allow_http):
        raise ImageLoadError(
            f"Image {shown}: refused URL {display_ref(url)}, only https:// image URLs are allowed"
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


def _fetch_with_retries(
    target: _Target, deadline: float, settings: LoadSettings, shown: str, accept: str, method: str
):
    """One hop: (status, Location header or None, body bytes, headers). Transient errors are retried."""
    retrying = Retrying(
        retry=retry_if_exception(_is_transient),
        stop=stop_after_attempt(3) | stop_before_delay(max(0.0, deadline - time.monotonic())),
        wait=wait_exponential(multiplier=0.2, max=1.0),
        reraise=True,
    )
    return retrying(_fetch_once, target, deadline, settings, shown, accept, method)


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


def _fetch_once(
    target: _Target, deadline: float, settings: LoadSettings, shown: str, accept: str, method: str
):
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
        "Host": host_header, "User-Agent": USER_AGENT, "Accept": accept, "Accept-Encoding": "identity"
    }
    ssl_context = _ssl_context(settings.ca_bundle) if target.scheme == "https" else None
    with httpcore.ConnectionPool(
        ssl_context=ssl_context, network_backend=backend, max_connections=1, retries=0
    ) as pool, pool.stream(method, url, headers=headers, extensions={"timeout": timeouts}) as response:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
        status = response.status
        if status in _REDIRECT_STATUSES:
            return status, headers.get("location"), b"", headers
        if status in _TRANSIENT_STATUSES:
            raise _TransientStatus(status)
        if status != 200 or method == "HEAD":
            return status, None, b"", headers
        if headers.get("content-encoding", "identity").lower() not in ("identity", ""):
            raise ImageLoadError(
                f"Image {shown}: the server sent {headers['content-encoding']}-encoded data although "
                "packshot asked for none; download the image another way."
            )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_download_bytes:
            raise too_big_error(shown, f"Content-Length {int(declared):,} bytes", settings)
        body = bytearray()
        for chunk in response.iter_stream():
            body += chunk
            if len(body) > settings.max_download_bytes:
                raise too_big_error(shown, f"over {settings.max_download_bytes:,} bytes received", settings)
        return status, None, bytes(body), headers


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
