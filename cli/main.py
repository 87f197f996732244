"""The ``packshot`` command line. Errors a user can fix print as one clear message, no traceback."""

from __future__ import annotations

import logging
import os
import sys
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from packshot.errors import PackshotError

app = typer.Typer(
    help="packshot: product photos in, marketplace-ready images out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# soft_wrap: a message is never cut into lines at the terminal's width (a long path would otherwise be
# split mid-word, and a log or a script would read a different message at each width).
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _prefect_defaults(verbose: bool) -> None:
    """Quiet, offline-friendly defaults for the ephemeral Prefect API (set before Prefect loads)."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def friendly(fn):
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PackshotError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)  # literal [brackets]
            raise typer.Exit(2) from None

    return wrapper


SOURCE_HELP = (
    "catalog: a CSV (ours, a Shopify or WooCommerce export), a Merchant Center feed file or https URL, "
    "shopify://SHOP or woocommerce://HOST"
)


def _run_name(source: str) -> str:
    """Default output folder name: the file's stem, the shop, or the feed's file name."""
    from orchestrator.options import default_out

    return default_out(source).removeprefix("out/")


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@app.command()
@friendly
def run(
    catalog: Annotated[str, typer.Argument(help=SOURCE_HELP)],
    out: Annotated[str | None, typer.Option(help="output folder or s3://bucket/prefix")] = None,
    brand: Annotated[str | None, typer.Option(help="brand style for rows without one")] = None,
    stages: Annotated[list[str] | None, typer.Option(help="stages, comma-separated")] = None,
    presets: Annotated[list[str] | None, typer.Option(help="export presets, comma-separated")] = None,
    batch_size: Annotated[int | None, typer.Option(help="products per task")] = None,
    limit: Annotated[int | None, typer.Option(help="only the first N products")] = None,
    sku: Annotated[list[str] | None, typer.Option(
        help="redo only this SKU (repeat or comma-separate); the others keep their outputs")] = None,
    force: Annotated[bool, typer.Option(help="redo the chosen products even when nothing changed")] = False,
    from_review: Annotated[str | None, typer.Option(
        help="a reviewed run folder: redo its rejected products (corrected box or new seed)")] = None,
    fail_on_review: Annotated[bool, typer.Option(
        help="exit 1 when any product needs review (a doubtful cutout)")] = False,
    video_provider: Annotated[str | None, typer.Option(
        help="who renders the video stage's clips: runway, sora or local (default PACKSHOT_VIDEO__PROVIDER); "
        "its API key is checked before any work")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
):
    """Process a catalog through the Prefect flow and show progress."""
    _prefect_defaults(verbose)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    from pydantic import ValidationError

    from orchestrator.catalog_source import read_catalog
    from orchestrator.options import DEFAULT_STAGES, RunOptions, options_problem
    from orchestrator.settings import get_settings
    from packshot import progress

    try:  # every option is checked before Prefect starts (it takes seconds to)
        options = RunOptions(
            catalog=catalog,
            out=out or from_review,
            brand=brand,
            stages=_split(stages) or list(DEFAULT_STAGES),
            presets=_split(presets),
            batch_size=batch_size,
            limit=limit,
            skus=_split(sku),
            force=force,
            from_review=from_review,
            video={"provider": video_provider} if video_provider else None,
        )
    except ValidationError as exc:
        for line in options_problem(exc).splitlines():
            err.print(f"[bold red]error:[/] {line}", highlight=False)
        raise typer.Exit(2) from None
    from orchestrator.licences import check_licences

    check_licences(get_settings(), list(options.stages))  # a model the deployment may not run: stop now
    from packshot.storage import check_output, open_storage

    check_output(open_storage(options.out))  # a missing bucket, a read-only folder: one line, before any work
    # A file: fail fast on an unreadable catalog, and size the bar. A store or feed URL is read once,
    # by the run itself (reading it twice would page through the whole store twice).
    parsed = None if "://" in catalog else read_catalog(catalog, get_settings())
    total = None if parsed is None else min(len(parsed.products), limit) if limit else len(parsed.products)
    if parsed is not None and parsed.errors:
        err.print(
            f"[yellow]{len(parsed.errors)} bad row(s) will be skipped; see `packshot validate {catalog}`[/]"
        )
    from cli.stop import stop_cleanly
    from flows.catalog_run import catalog_run

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task_id = bar.add_task("products", total=total, last="starting (first run sets up Prefect)")

        def advance(result):
            mark = {"done": "[green]ok", "skipped": "[cyan]cached", "failed": "[red]failed",
                    "needs_review": "[yellow]review"}.get(result.status, "")
            bar.update(task_id, advance=1, last=f"{mark}[/] {result.sku}")

        with progress.listening(advance), stop_cleanly(lambda line: err.print(line, highlight=False)):
            state = catalog_run(options, return_state=True)
            summary = state.result(raise_on_failure=not state.is_failed())
    if not isinstance(summary, dict):  # the flow failed before it finished: its error says why
        raise summary if isinstance(summary, BaseException) else PackshotError(state.message or "run failed")
    _print_summary(summary)
    counts = summary["counts"]
    if summary.get("problem"):
        err.print(f"[bold red]error:[/] {summary['problem']}", highlight=False)
    if counts["failed"] or counts["invalid"] or summary.get("problem") or (
            fail_on_review and counts["needs_review"]):
        raise typer.Exit(1)


def _print_summary(summary: dict) -> None:
    c = summary["counts"]
    console.print(
        f"\n[bold]done {c['done']}[/], [yellow]needs review {c['needs_review']}[/], "
        f"skipped (unchanged) {c['skipped']}, "
        f"[red]failed {c['failed']}[/], invalid rows {c['invalid']}; {c['outputs']} files, "
        f"{c['failed_checks']} failed marketplace checks"
    )
    if c["failed"] or c["invalid"] or c["failed_checks"] or c["needs_review"]:
        _print_problems(summary["output"])
    if c["needs_review"]:
        console.print(f"review them:   [bold]packshot review {summary['output']}[/]", soft_wrap=True)
    console.print(f"results:       {summary['output']}")
    console.print(f"manifest:      {summary['manifest']}  (and {summary['manifest_csv']})")
    console.print(f"contact sheet: [bold]{summary['report']}[/]")


def _print_problems(output: str, shown: int = 20) -> None:
    """The first failures and failed checks, read back from the run's manifest.csv (streamed)."""
    import csv
    import io

    from packshot.storage import open_storage

    text = open_storage(output).read_bytes("manifest.csv").decode()
    problems = []
    for row in csv.DictReader(io.StringIO(text)):
        if row["status"] in ("failed", "invalid") and row["error"]:
            problems.append(f"{row['source_file']}:{row['source_line']} {row['sku']}: {row['error']}")
        elif row["status"] == "needs_review" and row["review_reasons"]:
            problems.append(f"{row['source_file']}:{row['source_line']} {row['sku']}: needs review: "
                            f"{row['review_reasons']}")
        elif row["checks"]:
            problems.append(f"{row['key']}: fails {row['preset']} checks: {row['checks']}")
    unique = list(dict.fromkeys(problems))
    for line in unique[:shown]:
        err.print(f"- {line}", style="red", highlight=False, markup=False, soft_wrap=True)
    if len(unique) > shown:
        err.print(f"... and {len(unique) - shown} more: see the contact sheet or manifest.csv")


@app.command()
@friendly
def review(
    out: Annotated[str, typer.Argument(help="a run's output: folder or s3://bucket/prefix")],
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8765,
    host: Annotated[str, typer.Option(help="address to bind; keep the default 127.0.0.1")] = "127.0.0.1",
):
    """Review a run in the browser: approve or reject each image, correct boxes, export the approved."""
    from orchestrator.review.server import create_app, serve_app
    from packshot.storage import check_location, check_output, open_storage

    if "://" not in check_location(out) and not (Path(out) / "manifest.json").is_file():
        raise PackshotError(f"{out} has no manifest.json: give the --out of a finished `packshot run` "
                            "(a folder or s3://bucket/prefix)")
    storage = open_storage(out)
    check_output(storage)  # a missing bucket or a read-only folder: one line now, not at the first decision
    app_ = create_app(storage, host)  # one line when the run's manifest is missing or damaged
    console.print(f"reviewing {out}: open [bold]http://{host}:{port}/[/] (Ctrl+C to stop)", soft_wrap=True)
    serve_app(app_, host=host, port=port)


@app.command()
@friendly
def validate(
    catalog: Annotated[str, typer.Argument(help=SOURCE_HELP)],
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    check_images: Annotated[
        bool, typer.Option(help="check each local image, bbox, recolor mask and brand style as the run will")
    ] = True,
    brand: Annotated[str | None, typer.Option(help="brand style for rows without one")] = None,
):
    """Check a catalog without processing it; exit code 1 when any row is bad."""
    from orchestrator.catalog_source import read_catalog
    from orchestrator.settings import get_settings
    from packshot.catalog import report_json, validate_catalog, validation_context, validation_report

    parsed = read_catalog(catalog, get_settings(), versions=False)
    if check_images:
        settings = get_settings()
        parsed = validate_catalog(parsed, validation_context(
            parsed.path, settings.load.max_pixels, settings.brand_styles_dir, default_brand=brand))
    if json_out:
        import json

        console.print_json(json.dumps(report_json(parsed)))
    else:
        console.print(validation_report(parsed), highlight=False, markup=False, soft_wrap=True)
    if parsed.errors:
        raise typer.Exit(1)


@app.command()
@friendly
def publish(
    out: Annotated[str, typer.Argument(help="the run's output: folder or s3://bucket/prefix")],
    to: Annotated[str, typer.Option("--to", help="shopify://SHOP or woocommerce://HOST")],
    all_: Annotated[
        bool, typer.Option("--all", help="without a review: every image that passed its checks")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would change, change nothing")] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="detach the merchant's own images (kept in the store's files)")
    ] = False,
    preset: Annotated[str | None, typer.Option(help="whose images to send (default: shopify)")] = None,
    wait: Annotated[
        float, typer.Option("--wait", help="seconds to wait when another publish of this run is under way")
    ] = 0.0,
):
    """Send a run's approved images to the store, in listing order, exactly once (resumable). Products
    flagged needs_review or failed are held back unless a review approved them."""
    from orchestrator.publish import publish as publish_run
    from orchestrator.settings import get_settings

    def echo(line: str) -> None:
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    settings = get_settings()
    report = publish_run(out, to, all_=all_, dry_run=dry_run, replace=replace, preset=preset,
                         settings=settings.sources, load=settings.load, wait_s=wait, echo=echo)
    console.print(report.headline(), style="bold", highlight=False, markup=False)
    for problem in report.problems:
        err.print(f"- {problem}", style="red", highlight=False, markup=False, soft_wrap=True)
    if report.problems:
        raise typer.Exit(1)


@app.command()
@friendly
def segment(
    images_dir: Annotated[Path, typer.Argument(help="folder of product photos")],
    out: Annotated[Path, typer.Option(help="folder for the RGBA PNG cutouts")],
    backend: Annotated[str | None, typer.Option(help="sam, rembg, classic, tiny or auto")] = None,
):
    """Cut out every image of a folder (one RGBA PNG per input, named after its stem)."""
    from orchestrator.settings import get_settings
    from packshot.config import resolve_device
    from stages.segment.folder import segment_folder

    settings = get_settings()
    seg = settings.segment.model_copy(update={"backend": backend}) if backend else settings.segment
    results = segment_folder(images_dir, out, seg, resolve_device(settings.device), load=settings.load)
    failed = [(name, error) for name, error in results if error]
    console.print(f"{len(results) - len(failed)} cutouts written to {out}")
    for name, error in failed:
        err.print(f"[red]{name}[/]: {error}")
    if failed:
        raise typer.Exit(1)


@app.command()
@friendly
def check(
    files: Annotated[list[Path], typer.Argument(help="finished image files")],
    preset: Annotated[str, typer.Option(help="preset name, e.g. amazon-main")],
    presets_file: Annotated[Path | None, typer.Option(help="YAML with custom presets")] = None,
):
    """Check finished files against a marketplace preset; exit code 1 when any rule is broken."""
    from packshot.errors import ImageLoadError
    from packshot.imageio import regular_file
    from stages.export import Violation, check_files

    report: dict[Path, list[Violation]] = {}
    readable = []
    for path in files:  # never open a FIFO or device: it could block forever
        try:
            regular_file(str(path), path, "File")
            readable.append(path)
        except ImageLoadError as exc:
            report[path] = [Violation(rule="readable", message=str(exc))]
    report.update(check_files(readable, preset, presets_file))
    bad = 0
    for path in files:
        errors = [v for v in report[path] if not v.warning]
        if errors:
            bad += 1
            console.print(f"[red]FAIL[/] {path}", highlight=False)
        else:
            console.print(f"[green]ok[/]   {path}", highlight=False)
        for v in report[path]:
            console.print(f"  - {'warning: ' if v.warning else ''}{v}", highlight=False, markup=False)
    if bad:
        raise typer.Exit(1)


@app.command()
@friendly
def estimate(
    catalog: Annotated[Path, typer.Argument(help="catalog CSV")],
    brand: Annotated[str | None, typer.Option(help="brand style for rows without one")] = None,
    provider: Annotated[str | None, typer.Option(help="runway, veo, local (sora: retired)")] = None,
    model: Annotated[str | None, typer.Option(help="provider model, e.g. gen4_turbo")] = None,
    duration: Annotated[int | None, typer.Option(help="clip length in seconds")] = None,
    limit: Annotated[int | None, typer.Option(help="only the first N products")] = None,
):
    """Print what the video clips of a catalog would cost, without submitting anything."""
    from orchestrator.clips import clip_requests
    from orchestrator.settings import get_settings
    from packshot.catalog import load_catalog
    from packshot.imageio import load_image
    from packshot.schemas.brand import brand_style_dirs
    from stages.video import format_estimate, plan_clips

    settings = get_settings()
    parsed = load_catalog(catalog)
    products = parsed.products[:limit] if limit else parsed.products
    base = catalog.resolve().parent
    requests, problems = clip_requests(
        products,
        lambda p: load_image(p.images[0], base, settings.load).rgb,
        brand_style_dirs(settings.brand_styles_dir, base),
        default_brand=brand,
        provider=provider,
        model=model,
        duration_s=duration,
    )
    console.print(
        format_estimate(plan_clips(requests, settings.video)), highlight=False, markup=False, soft_wrap=True
    )
    for product, reason in problems:
        err.print(
            f"[yellow]{product.source_file}:{product.source_line} {product.sku}: not priced: {reason}[/]"
        )


@app.command()
@friendly
def presets():
    """List the export presets."""
    from orchestrator.settings import get_settings
    from packshot.schemas.presets import load_presets

    for p in load_presets(get_settings().export.presets_file).values():
        console.print(
            f"[bold]{p.name}[/]: {p.width}x{p.height} {p.format}, fill {p.fill_fraction:.0%}. {p.notes}"
        )


@app.command()
@friendly
def plan(
    gpu_memory: Annotated[float | None, typer.Option(
        "--gpu-memory", help="plan for a card of this many GiB instead of this machine's card")] = None,
    stages: Annotated[list[str] | None, typer.Option(
        help="stages, comma-separated (default: all but video)")] = None,
):
    """Which memory plan each configured model would use, its expected peak memory and why (loads nothing)."""
    from orchestrator.options import DEFAULT_STAGES
    from orchestrator.plans import describe, plan_run
    from orchestrator.settings import get_settings
    from packshot.config import resolve_device
    from packshot.memory import CARD_RESERVE_BYTES, GIB

    settings = get_settings()
    chosen = _split(stages) or list(DEFAULT_STAGES)
    if gpu_memory is not None:
        free = int(gpu_memory * GIB) - CARD_RESERVE_BYTES
        run_plan = plan_run(settings, chosen, "cuda", free_bytes=free,
                            card=f"a {gpu_memory:g} GiB card ({free / GIB:.1f} GiB free assumed)")
    else:
        run_plan = plan_run(settings, chosen, resolve_device(settings.device))
    console.print(describe(run_plan), markup=False, highlight=False, soft_wrap=True)
    from orchestrator.licences import run_models
    from packshot.licences import refusal

    console.print("licences:", markup=False, highlight=False, soft_wrap=True)
    refused = False
    for model in run_models(settings, chosen):
        console.print(f"  {model.label}: {model.licence.summary()}", markup=False, highlight=False,
                      soft_wrap=True)
        reason = refusal(f"{model.label}", model.licence, settings.licences)
        if reason:
            refused = True
            console.print(f"  refused for this deployment: {reason}", markup=False, highlight=False,
                          soft_wrap=True)
    if run_plan.free_bytes is None:
        console.print("no CUDA card here: pass --gpu-memory GIB to plan for a card of that size")
    if not run_plan.fits or refused:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    sys.exit(app())
