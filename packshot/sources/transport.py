"""What every store client shares: HTTPS with a total deadline per request, answers checked
against a schema, and upload targets held to the downloader's SSRF rules.

httpx only knows per-operation timeouts, so a store that trickles one byte every few seconds keeps
a request alive for ever. :class:`StoreTransport` is httpx's own transport over an httpcore pool
whose network streams cap every connect, read and write by the deadline of the request in progress
(:func:`within`), and connect a pinned host to the addresses checked for it (:func:`pinned`), so an
upload target cannot resolve to one address when checked and another when used.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import certifi
import httpcore
import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from packshot.config import LoadSettings
from packshot.errors import ImageLoadError
from packshot.secrets import redact
from packshot.sources.base import SourceError

Model = TypeVar("Model", bound=BaseModel)
_SHOWN_BYTES = 200  # of a store's unexpected answer, in an error


@dataclass(frozen=True)
class _Limits:
    deadline: float | None = None
    pins: tuple[tuple[str, tuple[str, ...]], ...] = ()


_NO_LIMITS = _Limits()
_limits: ContextVar[_Limits | None] = ContextVar("store_request_limits", default=None)


def _current() -> _Limits:
    return _limits.get() or _NO_LIMITS


class DeadlineExceeded(Exception):
    """The request in progress ran past its total deadline (raised inside the network stream)."""


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Every network operation inside ends by ``seconds`` from now, whatever the server sends."""
    token = _limits.set(_Limits(time.monotonic() + seconds, _current().pins))
    try:
        yield
    finally:
        _limits.reset(token)


@contextlib.contextmanager
def pinned(host: str, addresses: list[str]) -> Iterator[None]:
    """Connections to ``host`` go to these (already checked) addresses only."""
    current = _current()
    token = _limits.set(_Limits(current.deadline, (*current.pins, (host.lower(), tuple(addresses)))))
    try:
        yield
    finally:
        _limits.reset(token)


def past_deadline() -> bool:
    deadline = _current().deadline
    return deadline is not None and time.monotonic() >= deadline


def _capped(timeout: float | None) -> float | None:
    deadline = _current().deadline
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the request's total deadline has passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _capped(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        addresses = dict(_current().pins).get(host.lower(), (host,))
        error: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(address, port, timeout=_capped(timeout),
                                                 local_address=local_address, socket_options=socket_options)
                return _Stream(stream)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address to connect to for {host}")

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("store clients do not use unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class StoreTransport(httpx.HTTPTransport):
    """httpx's transport with the deadline-capped, pinning network backend (see the module doc)."""

    def __init__(self, ca_bundle: Path | None = None):
        super().__init__()
        context = ssl.create_default_context(cafile=certifi.where())
        if ca_bundle is not None:
            context.load_verify_locations(cafile=str(ca_bundle))
        # httpx builds its pool without a way to pass a network backend: the same pool, with ours
        self._pool = httpcore.ConnectionPool(ssl_context=context, network_backend=_Backend(), retries=0)


def store_http(ca_bundle: Path | None, timeout_s: float, **options: Any) -> httpx.Client:
    """An httpx client for one store: per-operation ``timeout_s``, the deadline of :func:`within`."""
    from packshot import __version__

    headers = {"User-Agent": f"packshot/{__version__}", **options.pop("headers", {})}
    return httpx.Client(transport=StoreTransport(ca_bundle), timeout=timeout_s, headers=headers, **options)


def deadline_error(uri: str, what: str, seconds: float) -> SourceError:
    return SourceError(
        f"{uri}: {what} did not finish within sources.request_deadline_s = {seconds:g} s (the store answers "
        "too slowly); retry later, or raise PACKSHOT_SOURCES__REQUEST_DEADLINE_S"
    )


def shown(data: bytes | str | Any, secrets: tuple[str, ...] = ()) -> str:
    """A store's answer as an error may quote it: the first bytes, one line, secrets removed."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    text = " ".join(text.split())
    cut = text[:_SHOWN_BYTES] + (" …" if len(text) > _SHOWN_BYTES else "")
    return redact(repr(cut), secrets)


def parse_answer(model: type[Model] | TypeAdapter, payload: Any, *, uri: str, what: str, raw: bytes | str,
                 secrets: tuple[str, ...] = ()) -> Any:
    """``payload`` validated as ``model`` (a pydantic model or TypeAdapter); SourceError naming the store,
    the call and what it sent."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(payload)
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the answer"
        raise SourceError(
            f"{uri}: {what} answered something packshot cannot use ({where}: {first['msg']}); "
            f"it sent {shown(raw, secrets)}"
        ) from None


def check_upload_target(uri: str, url: str, load: LoadSettings) -> tuple[str, list[str]]:
    """(host, checked addresses) of an upload target the store named, under the downloader's SSRF rules
    (https, a public address or one of ``load.allowed_networks``); SourceError when refused."""
    from packshot.imageio.download import check_url

    if not url.lower().startswith("https://"):
        raise SourceError(f"{uri}: the store named an upload target that is not HTTPS ({shown(url)}); "
                          "nothing was sent")
    try:
        target = check_url(url, load)
    except ImageLoadError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise SourceError(f"{uri}: refused the store's upload target: {reason}") from None
    return target.host, target.addresses
