"""Render a batch of clips: budget check, submit, persist, poll, download; resumable after a crash.

Per clip: if the ledger already knows a job for it, resume that job (never submit it again);
otherwise reserve its cost under the run's cap, submit, write the job id to the ledger, then poll
with backoff and jitter and hand the result bytes to ``write_output`` as soon as they exist.
Every failure stays with its clip; the batch always returns one ``ClipResult`` per request.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from packshot.errors import PackshotError
from packshot.secrets import redact
from packshot.types import slugify
from stages.video.framing import fit_to_frame
from stages.video.ledger import STICKY_FAILURES, JobLedger, submitter_alive
from stages.video.plan import resolve_clip
from stages.video.providers.base import (
    ClipFailedError,
    ClipRejectedError,
    OutputExpiredError,
    ProviderUnavailableError,
    TransientProviderError,
    VideoProvider,
    call_with_retries,
)
from stages.video.settings import VideoSettings
from stages.video.spec import ClipRequest, ClipResult, ClipSpec

log = logging.getLogger("stages.video")

MAX_URL_REFRESHES = 2


def clip_path(spec: ClipSpec) -> str:
    """Where a clip is stored in the run's output: named by its content key, so a clip whose ledger
    entry was lost is found there before anything is paid again."""
    return f"video/{slugify(spec.sku)}/{slugify(spec.name)}-{spec.provider}-{spec.key[:8]}.mp4"


class _Batch:
    def __init__(self, settings: VideoSettings, ledger: JobLedger, write_output: Callable[[str, bytes], str],
                 find_output: Callable[[str], str | None] | None = None):
        self.settings = settings
        self.ledger = ledger
        self.write_output = write_output
        self.find_output = find_output
        self.unavailable: dict[str, ProviderUnavailableError] = {}
        self._lock = threading.Lock()

    # -- results -----------------------------------------------------------------------------------
    def _result(self, spec: ClipSpec, provider: VideoProvider, status: str, **fields) -> ClipResult:
        if fields.get("error"):
            fields["error"] = redact(str(fields["error"]), provider.secrets())
        return ClipResult(
            sku=spec.sku, name=spec.name, provider=spec.provider, model=spec.model, status=status, **fields
        )  # type: ignore[arg-type]

    def _fail(
        self,
        spec: ClipSpec,
        provider: VideoProvider,
        exc: ClipFailedError,
        *,
        accepted: bool,
        job_id: str | None = None,
    ) -> ClipResult:
        """Record a final failure; what it costs depends on whether the provider took the job."""
        if exc.cost_usd is not None:
            committed = exc.cost_usd
        else:
            committed = (spec.cost_usd or 0.0) if (accepted or exc.charged) else 0.0
        status = "rejected" if isinstance(exc, ClipRejectedError) else "failed"
        message = redact(str(exc), provider.secrets())
        self.ledger.update(
            spec.key, status=status, error=message, error_code=exc.code, committed_usd=committed
        )
        log.warning("%s/%s: %s (%s)", spec.sku, spec.name, status, message)
        return self._result(
            spec, provider, status, error=message, error_code=exc.code, cost_usd=committed, job_id=job_id
        )

    # -- one clip ------------------------------------------------------------------------------------
    def run(self, spec: ClipSpec, rgb: np.ndarray, provider: VideoProvider) -> ClipResult:
        try:
            return self._run(spec, rgb, provider)
        except Exception as exc:  # a bug or an unexpected library error: this clip only
            log.exception("%s/%s: unexpected error", spec.sku, spec.name)
            return self._result(
                spec,
                provider,
                "failed",
                error=f"unexpected error: {type(exc).__name__}: {exc}",
                error_code="INTERNAL",
            )

    def _run(self, spec: ClipSpec, rgb: np.ndarray, provider: VideoProvider) -> ClipResult:
        entry = self.ledger.get(spec.key)
        if entry:
            resumed = self._resume(spec, provider, entry, live=False)
            if resumed is not None:
                return resumed
        found = self.find_output(clip_path(spec)) if self.find_output else None
        if found:  # the clip is in the output although the ledger lost its entry: never pay for it again
            self.ledger.update(spec.key, sku=spec.sku, name=spec.name, provider=spec.provider,
                               model=spec.model, status="succeeded", output_uri=found, committed_usd=0.0,
                               error=None, error_code=None)
            log.info("%s/%s: clip already in the output at %s; not submitted", spec.sku, spec.name, found)
            return self._result(spec, provider, "succeeded", output_uri=found)
        return self._submit(spec, rgb, provider)

    def _resume(self, spec: ClipSpec, provider: VideoProvider, entry: dict, *,
                live: bool) -> ClipResult | None:
        """The result of a clip the ledger already has a job or final answer for, or None when it may
        be submitted. ``live``: the entry was made by another process running now (it lost the race to
        claim it), not by an earlier run that stopped."""
        status = entry.get("status")
        if status == "succeeded" and entry.get("output_uri"):
            return self._result(
                spec,
                provider,
                "succeeded",
                output_uri=entry["output_uri"],
                cost_usd=entry.get("committed_usd", 0.0),
                job_id=entry.get("job_id"),
            )
        if status == "rejected" or (status == "failed" and entry.get("error_code") in STICKY_FAILURES):
            return self._result(
                spec,
                provider,
                status,
                error=entry.get("error"),
                error_code=entry.get("error_code"),
                cost_usd=entry.get("committed_usd", 0.0),
                job_id=entry.get("job_id"),
            )
        if status == "submitted" and entry.get("job_id") and provider.remote:
            log.info("%s/%s: resuming %s job %s", spec.sku, spec.name, spec.provider, entry["job_id"])
            return self._follow(spec, provider, entry["job_id"])
        if status == "submitting" and (live or submitter_alive(entry)):
            return self._result(
                spec, provider, "pending", job_id=None, cost_usd=entry.get("committed_usd", 0.0),
                error="another process is submitting this clip right now; the next run picks up its job "
                "without paying again")
        if status == "submitting" and provider.remote:
            exc = ClipFailedError(
                f"the previous run stopped while this clip was being submitted to {spec.provider}, "
                "so it may have been charged. Check the provider's dashboard; to submit it again, "
                f"delete the entry "
                f"{spec.key} from {self.ledger.path}",
                "INTERRUPTED_SUBMISSION",
            )
            return self._fail(spec, provider, exc, accepted=True)
        return None

    def _submit(self, spec: ClipSpec, rgb: np.ndarray, provider: VideoProvider) -> ClipResult:
        gone = self.unavailable.get(spec.provider)
        if gone is not None:
            return self._fail(spec, provider, ClipFailedError(str(gone), gone.code), accepted=False)
        if spec.cost_usd is None:
            return self._fail(
                spec,
                provider,
                ClipFailedError(
                    f"no price known for {spec.provider}/{spec.model}, so the spending cap cannot be "
                    "checked: add it to PACKSHOT_VIDEO__PRICES_USD_PER_S",
                    "NO_PRICE",
                ),
                accepted=False,
            )
        with self._lock:  # check-and-reserve is atomic across workers (and processes: the ledger's lock)
            outcome, entry = self.ledger.claim(spec, self.settings.max_spend_usd)
            committed = self.ledger.committed_usd()
        if outcome == "taken":  # another process claimed it since we looked: follow its job, never resubmit
            return self._resume(spec, provider, entry, live=True) or self._result(
                spec, provider, "pending", error="another process holds this clip's job")
        if outcome != "reserved":
            message = (
                f"skipped: ${spec.cost_usd:.2f} more would exceed this run's cap of "
                f"${self.settings.max_spend_usd:.2f} (${committed:.2f} already committed); raise "
                "PACKSHOT_VIDEO__MAX_SPEND_USD and run again"
            )
            self.ledger.update(
                spec.key,
                sku=spec.sku,
                name=spec.name,
                provider=spec.provider,
                model=spec.model,
                status="skipped-budget",
                committed_usd=0.0,
                error=message,
                job_id=None,
            )
            log.warning("%s/%s: %s", spec.sku, spec.name, message)
            return self._result(spec, provider, "skipped-budget", error=message, error_code="BUDGET")
        frame = fit_to_frame(rgb, spec.size, self.settings.fit)
        try:
            job_id = call_with_retries(
                lambda: provider.submit(spec, frame),
                self.settings,
                f"{spec.sku}/{spec.name}: submit to {spec.provider}",
            )
        except TransientProviderError as exc:
            return self._fail(
                spec,
                provider,
                ClipFailedError(
                    f"{spec.provider} kept refusing the submission ({exc}) after "
                    f"{self.settings.max_retries} retries; "
                    "run again later",
                    "RETRIES_EXHAUSTED",
                ),
                accepted=False,
            )
        except ProviderUnavailableError as exc:
            self.unavailable.setdefault(spec.provider, exc)
            return self._fail(spec, provider, exc, accepted=False)
        except ClipFailedError as exc:
            return self._fail(spec, provider, exc, accepted=False)
        # Persist the paid job before waiting on it: a crash from here on resumes, never resubmits.
        self.ledger.update(
            spec.key,
            status="submitted",
            job_id=job_id,
            submitted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        log.info(
            "%s/%s: submitted to %s/%s as job %s", spec.sku, spec.name, spec.provider, spec.model, job_id
        )
        return self._follow(spec, provider, job_id)

    def _follow(self, spec: ClipSpec, provider: VideoProvider, job_id: str) -> ClipResult:
        settings = self.settings
        deadline = time.monotonic() + settings.poll_timeout_s
        interval, refreshes = settings.poll_interval_s, 0
        what = f"{spec.sku}/{spec.name}: {spec.provider} job {job_id}"

        def still_pending(reason: str) -> ClipResult:
            message = f"{reason}; the job id is kept and the next run resumes it without paying again"
            self.ledger.update(spec.key, error=redact(message, provider.secrets()))
            return self._result(
                spec, provider, "pending", error=message, job_id=job_id, cost_usd=spec.cost_usd or 0.0
            )

        while True:
            try:
                state = call_with_retries(lambda: provider.poll(job_id), settings, f"{what}: poll")
                if state.status == "succeeded":
                    data = call_with_retries(
                        lambda st=state: provider.download(job_id, st), settings, f"{what}: download"
                    )
                    break
            except OutputExpiredError:
                refreshes += 1
                if refreshes > MAX_URL_REFRESHES:
                    return self._fail(
                        spec,
                        provider,
                        ClipFailedError(
                            "the finished clip's download link kept expiring; run again to fetch it",
                            "OUTPUT_EXPIRED",
                        ),
                        accepted=True,
                        job_id=job_id,
                    )
                log.info("%s: output URL expired, fetching the job again for a fresh one", what)
                continue
            except TransientProviderError as exc:
                return still_pending(f"{spec.provider} could not be reached ({exc})")
            except ProviderUnavailableError as exc:
                self.unavailable.setdefault(spec.provider, exc)
                return self._fail(spec, provider, exc, accepted=True, job_id=job_id)
            except ClipFailedError as exc:
                return self._fail(spec, provider, exc, accepted=True, job_id=job_id)
            if time.monotonic() > deadline:
                return still_pending(f"still {state.status} after {settings.poll_timeout_s:.0f} s")
            time.sleep(interval * random.uniform(0.8, 1.2))
            interval = min(interval * 1.5, settings.poll_max_interval_s)

        cost = state.cost_usd if state.cost_usd is not None else (spec.cost_usd or 0.0)
        relpath = clip_path(spec)
        try:
            uri = self.write_output(relpath, data)
        except Exception as exc:  # storage trouble: the job stays 'submitted' so a rerun downloads it again
            message = f"the clip was made but could not be stored ({type(exc).__name__}: {exc}); run again"
            self.ledger.update(spec.key, error=redact(message, provider.secrets()))
            return self._result(
                spec, provider, "failed", error=message, error_code="STORAGE", cost_usd=cost, job_id=job_id
            )
        self.ledger.update(
            spec.key,
            status="succeeded",
            output_uri=uri,
            committed_usd=cost,
            cost_usd=cost,
            error=None,
            error_code=None,
            bytes=len(data),
        )
        log.info("%s/%s: clip stored at %s", spec.sku, spec.name, uri)
        return self._result(spec, provider, "succeeded", output_uri=uri, cost_usd=cost, job_id=job_id)


def render_clips(
    items: list[ClipRequest],
    settings: VideoSettings,
    state_dir: Path,
    write_output: Callable[[str, bytes], str],
    find_output: Callable[[str], str | None] | None = None,
) -> list[ClipResult]:
    """Make every clip of ``items``; one ``ClipResult`` per item, in order.

    ``state_dir`` holds this run's job ledger (reuse it to resume a run). ``write_output(relpath, data)``
    stores an MP4 and returns its URI; ``find_output(relpath)`` returns the URI of a clip already
    stored there (or None), so a clip whose ledger entry was lost is not paid for again. At most
    ``settings.concurrency[provider]`` clips per provider are in flight at once.
    """
    ledger = JobLedger(Path(state_dir))
    batch = _Batch(settings, ledger, write_output, find_output)
    providers: dict[str, VideoProvider] = {}
    results: list[ClipResult | None] = [None] * len(items)
    work: dict[str, list[tuple[int, ClipSpec, np.ndarray]]] = {}
    for index, item in enumerate(items):
        try:
            spec, rgb = resolve_clip(item, settings, providers)
        except PackshotError as exc:
            results[index] = ClipResult(
                sku=item.sku,
                name=item.name,
                provider=item.provider or settings.provider,
                model=item.model or "",
                status="failed",
                error=redact(str(exc)),
                error_code="INVALID_REQUEST",
            )
            continue
        work.setdefault(spec.provider, []).append((index, spec, rgb))

    pools = []
    try:
        futures = []
        for name, clips in work.items():
            limit = max(1, settings.concurrency.get(name, 1))
            pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"video-{name}")
            pools.append(pool)
            futures += [
                (index, pool.submit(batch.run, spec, rgb, providers[name])) for index, spec, rgb in clips
            ]
        for index, future in futures:
            results[index] = future.result()
    finally:
        for pool in pools:
            pool.shutdown(wait=True)
        for provider in providers.values():
            provider.close()
    return [r for r in results if r is not None]
