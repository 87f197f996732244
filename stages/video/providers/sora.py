"""OpenAI Sora image-to-video through the official ``openai`` SDK (``client.videos``).

OpenAI deprecated the Videos API on 2026-03-24 and announced its removal for 2026-09-24. An answer
saying the model or endpoint is gone stops every Sora clip of the run at once, with a message that
names another provider; the rest of the catalog run carries on.
"""

from __future__ import annotations

import numpy as np

from packshot.secrets import redact
from stages.video.framing import encode_within
from stages.video.providers.base import (
    ClipFailedError,
    ClipRejectedError,
    HostedProvider,
    JobState,
    OutputExpiredError,
    ProviderUnavailableError,
    TransientProviderError,
    looks_gone,
    retry_after_seconds,
)
from stages.video.spec import ClipSpec

SIZES = {"1280x720": (1280, 720), "720x1280": (720, 1280)}
PRO_SIZES = {**SIZES, "1792x1024": (1792, 1024), "1024x1792": (1024, 1792)}
SECONDS = (4, 8, 12)
REFERENCE_MAX_BYTES = 20 * 1024 * 1024
REJECTION_WORDS = ("moderation", "safety", "policy", "blocked")
GONE_ADVICE = (
    "OpenAI has withdrawn the Sora video API (removal announced for 2026-09-24). "
    "Set PACKSHOT_VIDEO__PROVIDER=runway (or local for a self-hosted model), "
    "or set provider in the brand's video: mapping"
)


class SoraProvider(HostedProvider):
    name = "sora"
    default_model = "sora-2"
    key_env = "OPENAI_API_KEY"
    key_block_setting = "openai_secret_block"
    label = "OpenAI"

    def make_client(self, api_key: str):
        from openai import OpenAI

        kwargs = {"base_url": self.settings.openai_base_url} if self.settings.openai_base_url else {}
        return OpenAI(api_key=api_key, max_retries=0, timeout=self.settings.request_timeout_s, **kwargs)

    def sizes(self, model: str) -> dict[str, tuple[int, int]]:
        return dict(PRO_SIZES if model.startswith("sora-2-pro") else SIZES)

    def duration(self, model: str, requested_s: int) -> int:
        return min(SECONDS, key=lambda s: (abs(s - requested_s), s))  # ties go to the shorter, cheaper clip

    def submit(self, spec: ClipSpec, frame: np.ndarray) -> str:
        # Sora requires the reference frame's pixel size to equal the requested size exactly.
        data, mime = encode_within(frame, REFERENCE_MAX_BYTES)
        filename = "reference.png" if mime == "image/png" else "reference.jpg"
        try:
            video = self.client().videos.create(
                prompt=spec.prompt_text,
                model=spec.model,
                seconds=str(spec.duration_s),  # type: ignore[arg-type]
                size=spec.size_label,  # type: ignore[arg-type]
                input_reference=(filename, data, mime),
            )
        except Exception as exc:
            raise self._translate(exc, submitting=True, model=spec.model) from None
        return video.id

    def poll(self, job_id: str) -> JobState:
        try:
            video = self.client().videos.retrieve(job_id)
        except Exception as exc:
            raise self._translate(exc, submitting=False, model=None) from None
        if video.status == "failed":
            code = video.error.code if video.error else "failed"
            message = redact(video.error.message if video.error else "no reason given", self.secrets())
            text = f"Sora refused the clip: {message} ({code})"
            if any(word in f"{code} {message}".lower() for word in REJECTION_WORDS):
                raise ClipRejectedError(text, code)
            raise ClipFailedError(text + "; run again to retry", code)
        status = {"queued": "pending", "in_progress": "running", "completed": "succeeded"}[video.status]
        return JobState(status=status, progress=video.progress)  # type: ignore[arg-type]

    def download(self, job_id: str, state: JobState) -> bytes:
        import openai

        try:
            return self.client().videos.download_content(job_id, variant="video").content
        except openai.NotFoundError:
            raise OutputExpiredError("the Sora video content is gone (expired)") from None
        except Exception as exc:
            raise self._translate(exc, submitting=False, model=None) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _translate(self, exc: Exception, *, submitting: bool, model: str | None) -> Exception:
        import openai

        if isinstance(exc, ClipFailedError):
            return exc
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = redact(_message(exc), self.secrets())
            if status in (408, 429) or status >= 500:
                return TransientProviderError(
                    f"OpenAI answered {status}: {message}", retry_after_seconds(exc.response.headers)
                )
            if status in (401, 403):
                return ProviderUnavailableError(
                    f"OpenAI refused the API key ({status}): check OPENAI_API_KEY", f"HTTP_{status}"
                )
            if looks_gone(status, message, exc.code, submitting=submitting):
                return ProviderUnavailableError(
                    f"{GONE_ADVICE}. OpenAI answered {status}: {message}", "MODEL_GONE"
                )
            if any(word in f"{exc.code} {message}".lower() for word in REJECTION_WORDS):
                return ClipRejectedError(f"Sora refused the clip: {message}", exc.code or f"HTTP_{status}")
            return ClipFailedError(
                f"OpenAI refused the request ({status}): {message}", exc.code or f"HTTP_{status}"
            )
        if isinstance(exc, openai.APIConnectionError):
            if submitting and type(exc.__cause__).__name__ not in ("ConnectError", "ConnectTimeout"):
                return ClipFailedError(
                    "the connection to OpenAI broke after the request was sent; it was not retried to avoid "
                    "paying twice. Check the OpenAI dashboard before running again",
                    "AMBIGUOUS_SUBMISSION",
                    charged=True,
                )
            return TransientProviderError(f"OpenAI connection failed: {type(exc).__name__}")
        return ClipFailedError(redact(f"OpenAI call failed: {type(exc).__name__}: {exc}", self.secrets()))


def _message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(getattr(exc, "message", exc))
