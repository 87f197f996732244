"""What a merchant watches in the Prefect UI while a catalog runs: a log line per finished product and a
progress artifact (done/total, the counts, the last product), plus the names the UI lists runs and
artifacts by (run names from the catalog and date, artifact keys per catalog)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run as current_run

from orchestrator.options import default_out
from orchestrator.report import md_text
from packshot.types import slugify

LOG_GAP_S = 1.0  # at most one "done" line per second; failures and reviews are always logged
# Product lines are INFO, failures included: the UI shows them, and the CLI (Prefect at WARNING) lists
# the failures itself at the end instead of between its progress bar's updates.
PROGRESS_EVERY_S = 2.0  # how often the progress artifact is updated


def catalog_slug(catalog: str) -> str:
    """``spring-2026`` for ``catalogs/Spring 2026.csv``, ``acme`` for ``shopify://acme.myshopify.com``."""
    return slugify(default_out(catalog).removeprefix("out/"))[:48].strip("-") or "run"


def artifact_key(kind: str, catalog: str) -> str:
    """One artifact key per catalog (lowercase, digits and dashes, as Prefect requires), so the
    Artifacts page follows one catalog's runs: ``packshot-summary-spring-2026``."""
    return f"packshot-{kind}-{catalog_slug(catalog)}"


def _catalog_parameter() -> str | None:
    options = current_run.parameters.get("options")
    catalog = options.get("catalog") if isinstance(options, dict) else getattr(options, "catalog", None)
    return catalog if isinstance(catalog, str) else None


def _now_in_merchant_zone() -> datetime:
    from orchestrator.settings import get_settings

    try:
        return datetime.now(ZoneInfo(get_settings().orchestration.timezone))
    except Exception:  # a bad timezone is reported by the deployment check, not by a run's name
        return datetime.now(UTC)


def run_name() -> str:
    """The flow run's name: the catalog and the start time (``spring-2026 2026-05-04 02:00``)."""
    catalog = _catalog_parameter()
    return f"{catalog_slug(catalog) if catalog else 'catalog'} {_now_in_merchant_zone():%Y-%m-%d %H:%M}"


def progress_artifact(key: str, description: str) -> UUID:
    """This flow run's progress artifact: a retry of the run finds the one its first attempt made and
    goes on updating it, instead of leaving a second one stuck."""
    run_id = current_run.get_id()
    if run_id:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

        with get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]),
                type=ArtifactFilterType(any_=["progress"])), limit=1)
        if found:
            update_progress_artifact(found[0].id, progress=0.0, description=description)
            return found[0].id
    return create_progress_artifact(progress=0.0, key=key, description=description)


class ProductWatch:
    """Counts finished products, logs them and keeps the progress artifact current. ``add`` is called
    from the task threads (thread-safe); ``refresh`` from the flow, every :data:`PROGRESS_EVERY_S`."""

    def __init__(self, logger, total: int, catalog: str, what: str = "products"):
        self.logger, self.total, self.what = logger, total, what
        self.counts: Counter[str] = Counter()
        self.last: str = "starting"
        self._lock = threading.Lock()
        self._quiet = 0  # "done" lines left out by the rate limit, named in the next line
        self._last_line = 0.0
        self.artifact_id = progress_artifact(artifact_key("progress", catalog), self.describe())

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    def add(self, result) -> None:
        """One finished product (a :class:`packshot.schemas.results.ProductResult`)."""
        with self._lock:
            self.counts[result.status] += 1
            done = self.finished
            self.last = f"{result.sku} ({result.status.replace('_', ' ')}, {result.seconds:.1f} s)"
            if result.status == "skipped":
                return  # unchanged since the last run: counted, not logged one by one
            now = time.monotonic()
            loud = result.status in ("failed", "needs_review")
            if not loud and now - self._last_line < LOG_GAP_S:
                self._quiet += 1
                return
            more, self._quiet, self._last_line = self._quiet, 0, now
        detail = f": {result.error}" if result.error else (
            f": {'; '.join(result.review_reasons)}" if result.review_reasons else "")
        self.logger.info("%s %s in %.1f s (%d/%d)%s%s", result.sku, result.status.replace("_", " "),
                         result.seconds, done, self.total, f" (and {more} more done)" if more else "", detail)

    def describe(self) -> str:
        c = self.counts
        parts = [f"{n} {s.replace('_', ' ')}" for s, n in sorted(c.items())]
        return (f"**{self.finished}/{self.total} {self.what}**" + (f" ({', '.join(parts)})" if parts else "")
                + f"; last: {md_text(self.last)}")

    def refresh(self, final: bool = False) -> None:
        with self._lock:
            share = 100.0 if final else 100.0 * self.finished / max(self.total, 1)
            text = self.describe()
        update_progress_artifact(self.artifact_id, progress=min(share, 100.0), description=text)
