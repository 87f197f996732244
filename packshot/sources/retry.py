"""Retrying store API calls: what is safe to send again, and how long to wait (tenacity).

A call that may have changed the store (an attach, a PUT with new image URLs) is sent again only
when the store certainly did not act on it: HTTP 429, Shopify's THROTTLED, or a connection that
never opened. Anything else (5xx, a dropped answer) leaves it to the caller, which looks the
result up in the store before trying again; reads are retried on every transient failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt


class RetryLater(Exception):
    """A transient refusal; ``unprocessed`` when the server says it did nothing (429, THROTTLED)."""

    def __init__(self, reason: str, wait_s: float, *, unprocessed: bool = False):
        super().__init__(reason)
        self.wait_s = wait_s
        self.unprocessed = unprocessed


def retry_after(response: httpx.Response, default: float = 1.0) -> float:
    """Seconds from a ``Retry-After: <seconds>`` header, else ``default``."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return default


def raise_if_busy(response: httpx.Response, who: str) -> None:
    """:class:`RetryLater` for a store that is busy (429, 503: with its Retry-After) or failing (5xx)."""
    status = response.status_code
    if status in (429, 503):
        raise RetryLater(f"{who} answered HTTP {status}", retry_after(response), unprocessed=status == 429)
    if status >= 500:
        raise RetryLater(f"{who} answered HTTP {status}", 0.5)


def retrying(
    *, attempts: int, max_wait_s: float, idempotent: bool, sleep: Callable[[float], None]
) -> Retrying:
    def worth_another_try(exc: BaseException) -> bool:
        if isinstance(exc, RetryLater):
            return idempotent or exc.unprocessed
        if isinstance(exc, httpx.ConnectError):
            return True
        return idempotent and isinstance(exc, httpx.TransportError)

    def wait(state: RetryCallState) -> float:
        exc: Any = state.outcome.exception() if state.outcome else None
        seconds = exc.wait_s if isinstance(exc, RetryLater) else 0.5 * 2 ** (state.attempt_number - 1)
        return min(seconds, max_wait_s)

    return Retrying(
        retry=retry_if_exception(worth_another_try),
        stop=stop_after_attempt(attempts),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )


def call_with_retries(call: Callable[..., Any], *args: Any, uri: str, settings: Any, idempotent: bool,
                      sleep: Callable[[float], None]) -> Any:
    """``call(*args)`` under :func:`retrying` with the source's attempts and wait cap; a store that keeps
    refusing becomes one :class:`SourceError` naming ``uri``."""
    from packshot.sources.base import SourceError

    attempts = retrying(attempts=settings.max_attempts, max_wait_s=settings.max_wait_s,
                        idempotent=idempotent, sleep=sleep)
    try:
        return attempts(call, *args)
    except RetryLater as exc:
        raise SourceError(f"{uri}: {exc} after {settings.max_attempts} tries; retry later") from None
