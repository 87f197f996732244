"""Merchant uploads: the ``packshot-intake`` flow starts one catalog run per new CSV in the inbox
(:mod:`orchestrator.inbox`: a folder or S3 prefix, each content claimed exactly once).

For each new ``*.csv``: claim its content; validate it with the checks of ``packshot validate`` (an
unreadable file or one without a single valid product goes to ``failed/``); start one catalog run (a
subflow) writing to ``<inbox_out>/<csv stem>``; move the CSV to ``processed/`` (or ``failed/`` when the
run itself crashed) with ``<name>.validation.txt`` (the run's result appended) and ``.validation.json``
beside it. The same bytes uploaded again, under any name, are filed as a duplicate without a run
(unless the earlier upload failed: then they are tried again). The intake run ends Failed, naming the
files and why, when a file was rejected or its run had problems.

Nothing runs while nothing arrives: the deployment has no schedule; :func:`watch_inbox` (``python -m
flows.intake watch``, or the ``serve`` process of :mod:`flows.deployments`) looks at the inbox every
few seconds and starts the intake deployment only when a new file has settled there.

Image references in an inbox CSV resolve against the inbox folder (local) or should be ``s3://`` /
``https://`` (S3 inbox).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.states import Completed, Failed, State
from pydantic import Field, ValidationError

from orchestrator.inbox import Inbox, open_inbox
from orchestrator.options import DEFAULT_STAGES, RunOptions, StageName, options_problem
from orchestrator.settings import get_settings
from packshot.catalog import (
    CatalogError,
    load_catalog,
    report_json,
    validate_catalog,
    validation_context,
    validation_report,
)
from packshot.storage import StoredFile

INTAKE_DEPLOYMENT = "packshot-intake/intake"


def _run_outcome(name: str, summary: dict) -> tuple[str, str | None]:
    """The run's result for the validation report, and the problem the intake's state names (or None)."""
    c = summary["counts"]
    text = (f"Run: done {c['done']}, needs review {c['needs_review']}, skipped (unchanged) {c['skipped']}, "
            f"failed {c['failed']}, invalid rows {c['invalid']}; manifest: {summary['manifest']}")
    trouble = []
    if c["failed"]:
        trouble.append(f"{c['failed']} product(s) failed")
    if c["invalid"]:
        trouble.append(f"{c['invalid']} invalid row(s) skipped")
    if summary.get("problem"):
        text += f"\nRun problem: {summary['problem']}"
        trouble.append(summary["problem"])
    return text, (f"{name}: {', '.join(trouble)} (see {summary['report']})" if trouble else None)


def _reports(text: str, data: dict) -> dict[str, bytes]:
    return {".validation.txt": (text + "\n").encode(),
            ".validation.json": json.dumps(data, indent=1).encode()}


def last_outcome(note: str) -> str | None:
    """What became of the content a claim marker is about: ``processed``, ``failed``, or None while an
    intake run still holds it."""
    for line in reversed(note.splitlines()):
        word = line.split(":", 1)[0].split(" ", 1)[0]
        if word in ("processed", "failed"):
            return word
        if word == "claimed":
            return None
    return None


def intake_run_name() -> str:
    return f"intake {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


@flow(name="packshot-intake", log_prints=True, flow_run_name=intake_run_name, validate_parameters=False)
def intake_inbox(
    inbox: str = "",
    out: str = "",
    brand: str = "",
    stages: list[StageName] = DEFAULT_STAGES,  # noqa: B006 - never mutated; the form shows it
    presets: list[str] = [],  # noqa: B006
    settle_s: Annotated[float, Field(ge=0)] = 10.0,
) -> list[dict]:
    """Start one catalog run per new CSV in the inbox; each content is handled once. Ends Failed (its
    data: the same list) when a file was rejected or its run had problems, naming the files.

    (The Args below are the intake form's help: Prefect reads them from this docstring's source.)

    Args:
        inbox: the inbox, a folder or s3://bucket/prefix where merchants drop catalog CSVs; empty: the
            settings' PACKSHOT_ORCHESTRATION__INBOX
        out: where the runs write (this folder or s3://bucket/prefix, then the CSV's name); empty: the
            settings' PACKSHOT_ORCHESTRATION__INBOX_OUT
        brand: brand style for rows naming none, the name of a file in the brand_styles folder without
            .yaml (e.g. nordic-home); checked when the run starts, listing the choices, before any upload
            is touched; empty: none
        stages: stages to run; video (the paid ad clips) only when chosen
        presets: export presets (e.g. amazon-main, shopify-square); checked when the run starts, listing
            the choices; empty: the settings' PACKSHOT_EXPORT__PRESETS
        settle_s: leave a file alone until it has not changed for this many seconds (an upload still in
            progress)
    """
    logger = get_run_logger()
    settings = get_settings().orchestration
    inbox, out = inbox or settings.inbox, out or settings.inbox_out
    try:  # the form's choices, checked before any file is touched: a typo leaves the uploads in place
        RunOptions(catalog=f"{inbox.rstrip('/')}/upload.csv", out=out, brand=brand or None,
                   stages=stages or None, presets=presets or None)
    except ValidationError as exc:
        message = "the intake's options: " + "; ".join(options_problem(exc, form=True).splitlines())
        logger.error("%s (the uploads stay in the inbox)", message)
        return Failed(message=message)
    box = open_inbox(inbox)
    files = box.new_files(settle_s)
    if not files:
        logger.info("%s: nothing new", box.uri)
        return Completed(message="nothing new", data=[])
    handled = [_intake_one(box, item, out.rstrip("/"), brand, stages, presets, logger) for item in files]
    handled = [h for h in handled if h is not None]
    problems = [h["problem"] for h in handled if h.get("problem")]
    outcomes = [h["outcome"] for h in handled]
    tally = ", ".join(f"{outcomes.count(o)} {o}" for o in ("processed", "failed", "duplicate")
                      if o in outcomes)
    logger.info("%s: %d file(s): %s", box.uri, len(handled), tally or "none taken (in progress elsewhere)")
    if problems:  # the files are filed and reported; the state says which need attention and why
        return Failed(message=f"{len(problems)} upload(s) need attention: " + "; ".join(problems[:5])
                      + ("; ..." if len(problems) > 5 else ""), data=handled)
    return Completed(message=tally or "nothing taken", data=handled)


def _intake_one(box: Inbox, item: StoredFile, out_root: str, brand: str, stages: list, presets: list,
                logger) -> dict | None:
    """Handle one file of the inbox; its entry for the flow's result (None: another run holds it)."""
    from flows.catalog_run import catalog_run

    entry = {"file": item.key}
    if not box.claim(item):
        note = box.claim_note(item)
        earlier = last_outcome(note)
        if earlier == "processed":  # the same bytes were handled already, maybe under another name
            text = f"{item.key}: identical to an upload already processed, so no new run.\n{note}"
            moved = box.settle(item, "processed", _reports(text, {"duplicate_of": note}))
            logger.info("%s: identical to an upload already processed; filed as %s, no run", item.key, moved)
            return {**entry, "outcome": "duplicate", "moved_to": moved}
        if earlier is None:
            logger.info("%s: being handled by another intake run", item.key)
            return None
        box.reclaim(item)  # its earlier upload failed: try again
        logger.info("%s: identical to an upload that failed; trying it again", item.key)

    def reject(error: str, reports: dict[str, bytes]) -> dict:
        moved = box.settle(item, "failed", reports)
        logger.error("%s rejected: %s (moved to %s)", item.key, error, moved)
        return {**entry, "outcome": "failed", "error": error, "moved_to": moved,
                "problem": f"{item.key}: {error}"}

    try:
        catalog = load_catalog(box.local_copy(item))
    except CatalogError as exc:
        return reject(str(exc), _reports(str(exc), {"file": item.key, "ok": False, "error": str(exc)}))
    s = get_settings()
    catalog = validate_catalog(catalog, validation_context(  # the checks of `packshot validate`
        catalog.path, s.load.max_pixels, s.brand_styles_dir, default_brand=brand or None))
    text, data = validation_report(catalog), report_json(catalog)
    if not catalog.products:
        first = f"; first: {catalog.errors[0].message}" if catalog.errors else ""
        return reject(f"no valid product ({len(catalog.errors)} bad row(s){first})", _reports(text, data))
    try:
        options = RunOptions(catalog=catalog.path, out=f"{out_root}/{Path(item.key).stem}", brand=brand,
                             presets=presets, stages=stages or list(DEFAULT_STAGES))
    except ValidationError as exc:
        error = options_problem(exc, form=True)
        return reject(error, _reports(f"{text}\n{error}", {**data, "error": error}))
    logger.info("%s: %d product(s), %d bad row(s); starting its catalog run", item.key, len(catalog.products),
                len(catalog.errors))
    state: State = catalog_run.with_options(flow_run_name=f"intake {item.key}")(options, return_state=True)
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, dict):  # the run crashed: keep the file with its report for a retry
        error = f"the catalog run failed: {state.message or summary}"
        return reject(error, {**_reports(text, data), ".error.txt": f"{error}\n".encode()})
    run_text, trouble = _run_outcome(item.key, summary)
    moved = box.settle(item, "processed", _reports(f"{text}\n{run_text}", {**data, "run": summary}))
    (logger.warning if trouble else logger.info)("%s: %s; moved to %s", item.key, run_text, moved)
    return {**entry, "outcome": "processed", "moved_to": moved, "counts": summary["counts"],
            "manifest": summary["manifest"], "report": summary["report"], "problem": trouble}


def new_uploads(box: Inbox, seen: set[tuple[str, str]], settle_s: float) -> list[StoredFile]:
    """Files of the inbox not seen before (by name and content) that have settled; adds them to ``seen``."""
    fresh = [f for f in box.new_files(settle_s) if (f.key, f.digest) not in seen]
    seen.update((f.key, f.digest) for f in fresh)
    return fresh


def watch_inbox(inbox: str = "", deployment: str = INTAKE_DEPLOYMENT, poll_s: float = 15.0,
                settle_s: float = 10.0, rounds: int | None = None) -> int:
    """Look at the inbox every ``poll_s`` seconds and start ``deployment`` once per batch of new
    uploads, so the Prefect UI lists an intake run only when something arrived. Returns the number of
    runs started (after ``rounds`` looks; None: forever)."""
    from prefect.deployments import run_deployment

    log = logging.getLogger("packshot.intake")
    box = open_inbox(inbox or get_settings().orchestration.inbox)
    seen: set[tuple[str, str]] = set()
    started, done = 0, 0
    while rounds is None or done < rounds:
        fresh: list[StoredFile] = []
        try:
            fresh = new_uploads(box, seen, settle_s)
            if fresh:
                names = ", ".join(f.key for f in fresh[:5]) + (" ..." if len(fresh) > 5 else "")
                run = run_deployment(deployment, timeout=0, flow_run_name=f"intake {names}"[:120],
                                     parameters={"inbox": box.uri, "settle_s": settle_s})
                log.info("%s: new upload(s) %s; started %s", box.uri, names, run.name)
                started += 1
        except Exception as exc:  # a server restart, a storage hiccup: look again next round
            seen.difference_update((f.key, f.digest) for f in fresh)
            log.warning("inbox watcher: %s: %s; trying again in %g s", type(exc).__name__, exc, poll_s)
        done += 1
        if rounds is None or done < rounds:
            time.sleep(poll_s)
    return started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.intake", description="watch the inbox")
    sub = parser.add_subparsers(dest="command", required=True)
    watch = sub.add_parser("watch", help="start the intake deployment when a new upload arrives")
    watch.add_argument("--inbox", default="", help="default: PACKSHOT_ORCHESTRATION__INBOX")
    watch.add_argument("--poll-s", type=float, default=15.0)
    watch.add_argument("--settle-s", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    watch_inbox(args.inbox, poll_s=args.poll_s, settle_s=args.settle_s)


if __name__ == "__main__":
    main()
