"""Runway image-to-video through the official ``runwayml`` SDK.

The image goes inline as a data URI (at most 5 MB), already padded or cropped to the chosen ratio's
exact size, so Runway never has to crop it itself. Output URLs expire in 24-48 h: we download at once
and, if a URL has already expired, fetch the task again for fresh ones.
"""

from __future__ import annotations

import httpx
import numpy as np

from packshot.secrets import redact
from stages.video.framing import data_uri
from stages.video.providers.base import (
    ClipFailedError,
    ClipRejectedError,
    HostedProvider,
    JobState,
    OutputExpiredError,
    ProviderUnavailableError,
    TransientProviderError,
    fetch_url,
    looks_gone,
    retry_after_seconds,
)
from stages.video.spec import ClipSpec

USD_PER_CREDIT = 0.01
DATA_URI_MAX_BYTES = 5 * 1024 * 1024
RATIOS = ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672")
MIN_DURATION_S, MAX_DURATION_S = 2, 10
_STATUS = {
    "PENDING": "pending",
    "THROTTLED": "pending",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "CANCELLED": "failed",
}


class RunwayProvider(HostedProvider):
    name = "runway"
    default_model = "gen4_turbo"
    key_env = "RUNWAYML_API_SECRET"
    key_block_setting = "runway_secret_block"
    label = "Runway"

    def make_client(self, api_key: str):
        from runwayml import RunwayML

        kwargs = {"base_url": self.settings.runway_base_url} if self.settings.runway_base_url else {}
        return RunwayML(api_key=api_key, max_retries=0, timeout=self.settings.request_timeout_s, **kwargs)

    def sizes(self, model: str) -> dict[str, tuple[int, int]]:
        return {r: (int(r.split(":")[0]), int(r.split(":")[1])) for r in RATIOS}

    def duration(self, model: str, requested_s: int) -> int:
        return min(MAX_DURATION_S, max(MIN_DURATION_S, int(requested_s)))

    def submit(self, spec: ClipSpec, frame: np.ndarray) -> str:
        uri = data_uri(frame, DATA_URI_MAX_BYTES)
        try:
            task = self.client().image_to_video.create(
                model=spec.model,
                prompt_image=uri,
                prompt_text=spec.prompt_text[: self.max_prompt_chars],
                ratio=spec.size_label,
                duration=spec.duration_s,
            )
        except Exception as exc:
            raise self._translate(exc, submitting=True, model=spec.model) from None
        return task.id

    def poll(self, job_id: str) -> JobState:
        try:
            task = self.client().tasks.retrieve(job_id)
        except Exception as exc:
            raise self._translate(exc, submitting=False, model=None) from None
        status = task.status
        cost = getattr(task, "cost", None)
        state = JobState(
            status=_STATUS.get(status, "running"),  # type: ignore[arg-type]
            progress=getattr(task, "progress", None),
            throttled=status == "THROTTLED",
            cost_usd=round(cost.credits * USD_PER_CREDIT, 4) if cost is not None else None,
        )
        if status == "SUCCEEDED":
            state.output_urls = list(task.output)
        elif status == "FAILED":
            code = getattr(task, "failure_code", None) or ""
            message = redact(f"Runway task failed: {task.failure} ({code or 'no code'})", self.secrets())
            if code.startswith("SAFETY"):
                raise ClipRejectedError(message, code, charged=bool(state.cost_usd), cost_usd=state.cost_usd)
            raise ClipFailedError(
                message + "; run again to retry", code, charged=bool(state.cost_usd), cost_usd=state.cost_usd
            )
        elif status == "CANCELLED":
            raise ClipFailedError(
                "the Runway task was cancelled",
                "CANCELLED",
                charged=bool(state.cost_usd),
                cost_usd=state.cost_usd,
            )
        return state

    def download(self, job_id: str, state: JobState) -> bytes:
        if not state.output_urls:
            raise OutputExpiredError("the task has no output URL")
        return fetch_url(state.output_urls[0], self.settings)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _translate(self, exc: Exception, *, submitting: bool, model: str | None) -> Exception:
        import runwayml

        if isinstance(exc, ClipFailedError):
            return exc
        if isinstance(exc, runwayml.APIStatusError):
            status = exc.status_code
            message, code = _error_text(exc)
            message = redact(message, self.secrets())
            if status in (408, 429) or status >= 500:
                return TransientProviderError(
                    f"Runway answered {status}: {message}", retry_after_seconds(exc.response.headers)
                )
            if status in (401, 403):
                return ProviderUnavailableError(
                    f"Runway refused the API key ({status}): check RUNWAYML_API_SECRET", f"HTTP_{status}"
                )
            if looks_gone(status, message, code, submitting=submitting):
                what = f"model '{model}'" if model else "the task endpoint"
                return ProviderUnavailableError(
                    f"Runway no longer offers {what} ({status}: {message}). Set PACKSHOT_VIDEO__MODEL to a "
                    "current model such as gen4_turbo or gen4.5, or choose another provider (sora, local)",
                    "MODEL_GONE",
                )
            return ClipFailedError(
                f"Runway refused the request ({status}): {message}", code or f"HTTP_{status}"
            )
        if isinstance(exc, runwayml.APIConnectionError):
            if submitting and not isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout):
                # The request may have reached Runway: retrying could pay twice for one clip.
                return ClipFailedError(
                    "the connection to Runway broke after the request was sent; it was not retried to avoid "
                    "paying twice. Check the Runway dashboard before running again",
                    "AMBIGUOUS_SUBMISSION",
                    charged=True,
                )
            return TransientProviderError(f"Runway connection failed: {type(exc).__name__}")
        return ClipFailedError(redact(f"Runway call failed: {type(exc).__name__}: {exc}", self.secrets()))


def _error_text(exc) -> tuple[str, str | None]:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err), err.get("code")
        if err:
            return str(err), body.get("code")
    return str(getattr(exc, "message", exc)), None
