"""Merchant uploads: the ``packshot-intake`` flow starts one catalog run per new CSV in the inbox
(:mod:`orchestrator.inbox`: a folder or S3 prefix, each file claimed exactly once).

For each new ``*.csv``: claim it; validate it (an unreadable file or one without a single valid product
goes to ``failed/``); start one catalog run (a subflow) writing to ``<inbox_out>/<csv stem>``; move the
CSV to ``processed/`` (or ``failed/`` when the run itself crashed) with ``<name>.validation.txt`` and
``.validation.json`` beside it. Image references in an inbox CSV resolve against the inbox folder
(local) or should be ``s3://`` / ``https://`` (S3 inbox).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger
from pydantic import Field

from orchestrator.inbox import open_inbox
from orchestrator.options import RunOptions, StageName
from orchestrator.settings import get_settings
from packshot.catalog import CatalogError, load_catalog, report_json, validation_report


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
    """Start one catalog run per new CSV in the inbox; each file is handled exactly once."""
    from flows.catalog_run import catalog_run

    logger = get_run_logger()
    settings = get_settings().orchestration
    box = open_inbox(inbox or settings.inbox)
    out_root = (out or settings.inbox_out).rstrip("/")
    handled = []
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
        reports = _reports(validation_report(catalog), report_json(catalog))
        if not catalog.products:
            moved = box.settle(item, "failed", reports)
            handled.append({**entry, "outcome": "failed", "error": "no valid products", "moved_to": moved})
            continue
        options = RunOptions(catalog=catalog.path, out=f"{out_root}/{Path(item.key).stem}", brand=brand,
                             presets=presets, **({"stages": stages} if stages else {}))
        try:
            summary = catalog_run.with_options(flow_run_name=f"intake {item.key}")(options)
        except Exception as exc:  # the run crashed: keep the file with its report for a retry
            moved = box.settle(item, "failed", {**reports, ".error.txt": f"{exc}\n".encode()})
            handled.append({**entry, "outcome": "failed", "error": str(exc), "moved_to": moved})
            logger.error("%s: catalog run failed: %s", item.key, exc)
            continue
        moved = box.settle(item, "processed", reports)
        handled.append({**entry, "outcome": "processed", "moved_to": moved, "counts": summary["counts"],
                        "manifest": summary["manifest"]})
        logger.info("%s: %s", item.key, summary["counts"])
    return handled
