"""Merchant uploads: the ``packshot-intake`` flow starts one catalog run per new CSV in the inbox
(:mod:`orchestrator.inbox`: a folder or S3 prefix, each file claimed exactly once).

For each new ``*.csv``: claim it; validate it with the checks of ``packshot validate`` (an
unreadable file or one without a single valid product goes to ``failed/``); start one catalog run (a
subflow) writing to ``<inbox_out>/<csv stem>``; move the CSV to ``processed/`` (or ``failed/`` when the
run itself crashed) with ``<name>.validation.txt`` (the run's result appended) and ``.validation.json``
beside it. Image references in an inbox CSV resolve against the inbox folder (local) or should be
``s3://`` / ``https://`` (S3 inbox).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.states import Failed
from pydantic import Field, ValidationError

from orchestrator.inbox import open_inbox
from orchestrator.options import RunOptions, StageName, options_problem
from orchestrator.settings import get_settings
from packshot.catalog import (
    CatalogError,
    load_catalog,
    report_json,
    validate_catalog,
    validation_context,
    validation_report,
)


def _run_outcome(name: str, summary: dict) -> tuple[str, str | None]:
    """The run's result for the validation report, and the problem the intake's state names (or None)."""
    c = summary["counts"]
    text = (f"Run: done {c['done']}, skipped (unchanged) {c['skipped']}, failed {c['failed']}, "
            f"invalid rows {c['invalid']}; manifest: {summary['manifest']}")
    trouble = None
    if c["failed"]:
        trouble = f"{name}: {c['failed']} product(s) failed in the run (see {summary['manifest']})"
    if summary.get("problem"):
        text += f"\nRun problem: {summary['problem']}"
        trouble = f"{name}: {summary['problem']}"
    return text, trouble


def _reports(text: str, data: dict) -> dict[str, bytes]:
    return {".validation.txt": (text + "\n").encode(),
            ".validation.json": json.dumps(data, indent=1).encode()}


@flow(name="packshot-intake", log_prints=True)
def intake_inbox(
    inbox: Annotated[str | None, Field(description="folder or s3://bucket/prefix; default: settings")] = None,
    out: Annotated[str | None, Field(description="where runs write: <out>/<csv stem>")] = None,
    brand: Annotated[str | None, Field(description="brand style for rows naming none")] = None,
    stages: Annotated[list[StageName] | None, Field(description="stages; default all but video")] = None,
    presets: Annotated[list[str] | None, Field(description="export presets; default from settings")] = None,
    settle_s: Annotated[float, Field(ge=0, description="skip files changed more recently than this")] = 10.0,
) -> list[dict]:
    """Start one catalog run per new CSV in the inbox; each file is handled exactly once. The flow
    ends Failed (its data: the same list) when a run failed or failed products, naming the files."""
    from flows.catalog_run import catalog_run

    logger = get_run_logger()
    settings = get_settings().orchestration
    box = open_inbox(inbox or settings.inbox)
    out_root = (out or settings.inbox_out).rstrip("/")
    handled: list[dict] = []
    problems: list[str] = []
    for item in box.new_files(settle_s):
        if not box.claim(item):
            note = box.claim_note(item)
            if "processed:" in note or "failed:" in note:  # the same bytes were uploaded again
                text = f"{item.key}: identical to an upload already handled, so no new run.\n{note}"
                moved = box.settle(item, "processed", _reports(text, {"duplicate_of": note}))
                handled.append({"file": item.key, "outcome": "duplicate", "moved_to": moved})
            continue  # else another intake run is processing it right now
        entry = {"file": item.key}
        try:
            catalog = load_catalog(box.local_copy(item))
        except CatalogError as exc:
            moved = box.settle(item, "failed", _reports(str(exc), {"file": item.key, "ok": False,
                                                                    "error": str(exc)}))
            handled.append({**entry, "outcome": "failed", "error": str(exc), "moved_to": moved})
            logger.warning("%s rejected: %s", item.key, exc)
            continue
        settings_all = get_settings()
        catalog = validate_catalog(catalog, validation_context(  # the checks of `packshot validate`
            catalog.path, settings_all.load.max_pixels, settings_all.brand_styles_dir, default_brand=brand))
        text, data = validation_report(catalog), report_json(catalog)
        if not catalog.products:
            moved = box.settle(item, "failed", _reports(text, data))
            handled.append({**entry, "outcome": "failed", "error": "no valid products", "moved_to": moved})
            continue
        try:
            options = RunOptions(catalog=catalog.path, out=f"{out_root}/{Path(item.key).stem}", brand=brand,
                                 presets=presets, **({"stages": stages} if stages else {}))
        except ValidationError as exc:
            error = options_problem(exc)
            moved = box.settle(item, "failed", _reports(f"{text}\n{error}", {**data, "error": error}))
            handled.append({**entry, "outcome": "failed", "error": error, "moved_to": moved})
            problems.append(f"{item.key}: {error}")
            continue
        state = catalog_run.with_options(flow_run_name=f"intake {item.key}")(options, return_state=True)
        summary = state.result(raise_on_failure=False)
        if not isinstance(summary, dict):  # the run crashed: keep the file with its report for a retry
            error = state.message or str(summary)
            moved = box.settle(item, "failed", {**_reports(text, data), ".error.txt": f"{error}\n".encode()})
            handled.append({**entry, "outcome": "failed", "error": error, "moved_to": moved})
            problems.append(f"{item.key}: the catalog run failed: {error}")
            logger.error("%s: catalog run failed: %s", item.key, error)
            continue
        run_text, trouble = _run_outcome(item.key, summary)
        if trouble:
            problems.append(trouble)
        moved = box.settle(item, "processed", _reports(f"{text}\n{run_text}", {**data, "run": summary}))
        handled.append({**entry, "outcome": "processed", "moved_to": moved, "counts": summary["counts"],
                        "manifest": summary["manifest"], "problem": trouble})
        logger.info("%s: %s", item.key, summary["counts"])
    if problems:  # the files are filed and reported; the state says that not everything worked
        return Failed(message=f"{len(problems)} upload(s) had problems: " + "; ".join(problems[:5]),
                      data=handled)
    return handled
