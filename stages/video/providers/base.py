"""The small interface every image-to-video provider implements, its error kinds and retry policy.

Retries live here, not in the SDKs: clients are built with ``max_retries=0`` so every HTTP request
is one attempt of a tenacity loop whose count and waits come from ``VideoSettings``.
"""

from __future__ import annotations

import logging
import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from packshot.errors import ImageLoadError, PackshotError
from stages.video.settings import VideoSettings
from stages.video.spec import ClipSpec

log = logging.getLogger("stages.video")
T = TypeVar("T")


class TransientProviderError(Exception):
    """Throttled (429), 5xx or a timeout: worth another attempt after a wait."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ClipFailedError(PackshotError):
    """This clip failed for good in this run; ``code`` is the provider's machine-readable reason."""

    def __init__(
        self, message: str, code: str | None = None, *, charged: bool = False, cost_usd: float | None = None
    ):
        super().__init__(message)
        self.code = code
        self.charged = charged  # the provider may have billed for it
        self.cost_usd = cost_usd  # what the provider says it billed, when it says


class ClipRejectedError(ClipFailedError):
    """Refused by the provider's safety/moderation system: recorded, never retried."""


class ProviderUnavailableError(ClipFailedError):
    """The provider cannot serve any clip (endpoint or model withdrawn, no or bad API key).

    The first one stops further submissions to that provider in this run: its other clips fail fast.
    """


class OutputExpiredError(Exception):
    """The result's download URL has expired; fetch the job again for a fresh one."""


@dataclass
class JobState:
    status: Literal["pending", "running", "succeeded", "failed"]
    progress: float | None = None
    output_urls: list[str] = field(default_factory=list)
    failure: str | None = None
    failure_code: str | None = None
    cost_usd: float | None = None  # the provider's final charge, when it reports one
    throttled: bool = False


class VideoProvider(ABC):
    """Submit, poll, download. ``remote=False`` providers render inside ``submit`` instead."""

    name: str
    licence: str  # for the run report
    default_model: str
    remote: bool = True
    generated = True  # every clip is synthesised
    max_prompt_chars: int = 1000

    def __init__(self, settings: VideoSettings):
        self.settings = settings

    @abstractmethod
    def sizes(self, model: str) -> dict[str, tuple[int, int]]:
        """Output sizes this model accepts: provider label -> (width, height)."""

    @abstractmethod
    def duration(self, model: str, requested_s: int) -> int:
        """The accepted duration closest to ``requested_s``."""

    def check_model(self, model: str) -> None:  # noqa: B027 - optional hook
        """Raise ``ClipFailedError`` for a model this provider cannot run."""

    @abstractmethod
    def submit(self, spec: ClipSpec, frame: np.ndarray) -> str:
        """Start a job for ``frame`` (``HxWx3 uint8`` already at ``spec.size``); return its job id."""

    @abstractmethod
    def poll(self, job_id: str) -> JobState:
        """Current state of a job."""

    @abstractmethod
    def download(self, job_id: str, state: JobState) -> bytes:
        """The finished MP4; raises ``OutputExpiredError`` if its URL has expired."""

    def secrets(self) -> tuple[str, ...]:
        """Values that must be scrubbed from any text this provider produces."""
        return ()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""


class HostedProvider(VideoProvider):
    """A provider reached over HTTP with an API key: one SDK client built on first use, and its key
    remembered so every message this provider produces can be scrubbed of it."""

    key_env: str  # environment variable holding the key, e.g. RUNWAYML_API_SECRET
    key_block_setting: str  # VideoSettings field naming a Prefect Secret block, e.g. runway_secret_block
    label: str  # provider name as people write it, for messages

    def __init__(self, settings: VideoSettings):
        super().__init__(settings)
        self._client = None
        self._key: str | None = None
        self._lock = threading.Lock()

    @abstractmethod
    def make_client(self, api_key: str):
        """The SDK client, with retries off (ours are counted and bounded) and the settings' timeout."""

    def secrets(self) -> tuple[str, ...]:
        return (self._key,) if self._key else ()

    def client(self):
        from packshot.secrets import get_secret

        with self._lock:
            if self._client is None:
                block = getattr(self.settings, self.key_block_setting)
                self._key = get_secret(self.key_env, block, setting=f"video.{self.key_block_setting}")
                if not self._key:
                    raise ProviderUnavailableError(
                        f"no {self.label} API key: set the {self.key_env} environment variable or name a "
                        f"Prefect Secret block in PACKSHOT_VIDEO__{self.key_block_setting.upper()}",
                        "NO_API_KEY",
                    )
                self._client = self.make_client(self._key)
            return self._client


def _wait(settings: VideoSettings) -> Callable[[RetryCallState], float]:
    backoff = wait_random_exponential(multiplier=settings.retry_wait_s, max=settings.retry_max_wait_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after_s", None) or 0.0
        # Honour the provider's Retry-After but add jitter so parallel workers do not stampede.
        return min(settings.retry_max_wait_s, max(backoff(state), retry_after * random.uniform(1.0, 1.2)))

    return wait


def call_with_retries(fn: Callable[[], T], settings: VideoSettings, what: str) -> T:
    """``fn()`` retried on ``TransientProviderError`` up to ``settings.max_retries`` times."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s: %s; retry %d of %d", what, exc, state.attempt_number, settings.max_retries)

    retrying = Retrying(
        retry=retry_if_exception_type(TransientProviderError),
        stop=stop_after_attempt(settings.max_retries + 1),
        wait=_wait(settings),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)


def retry_after_seconds(headers: object) -> float | None:
    """Seconds from a ``Retry-After`` / ``retry-after-ms`` header, if present and numeric."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


WITHDRAWN_WORDS = ("no longer", "deprecated", "retired", "removed", "shut down", "discontinued")
MISSING_WORDS = ("does not exist", "not found", "unknown model", "invalid model")


def looks_gone(status: int, message: str, code: str | None, *, submitting: bool) -> bool:
    """Whether an error answer says the model or the endpoint was withdrawn.

    410, a ``model_not_found`` code, or words like "retired" always count. When submitting, a 400/404
    naming a missing model counts too; when polling a job, a plain 404 means only that job is unknown.
    """
    text = f"{code or ''} {message}".lower()
    if status == 410 or (code or "") in ("model_not_found", "endpoint_not_found"):
        return True
    if status not in (400, 404):
        return False
    if any(word in text for word in WITHDRAWN_WORDS):
        return True
    return submitting and (status == 404 or any(word in text for word in MISSING_WORDS))


def fetch_url(url: str, settings: VideoSettings) -> bytes:
    """GET a result file through packshot's one SSRF-safe downloader (checked addresses, every redirect
    checked again, size and time capped by ``settings.download``); expired signed URLs raise
    ``OutputExpiredError``, 429/5xx and network failures are transient."""
    from packshot.imageio.download import HTTPStatusError
    from packshot.imageio.download import fetch_url as safe_fetch

    try:
        return safe_fetch(url, settings.download, accept="video/*, */*")
    except HTTPStatusError as exc:
        if exc.status in (401, 403, 404, 410):
            raise OutputExpiredError(f"output URL answered {exc.status}") from None
        if exc.status == 429 or exc.status >= 500:
            raise TransientProviderError(f"output download answered {exc.status}") from None
        raise ClipFailedError(f"output download answered {exc.status}", charged=True) from None
    except ImageLoadError as exc:
        text = str(exc)
        if "network error" in text or "did not finish" in text:
            raise TransientProviderError(f"output download failed: {text}") from None
        raise ClipFailedError(f"output download refused: {text}", charged=True) from None
