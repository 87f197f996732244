"""The deployments, in code. Three ways to run them, all from the same settings:

``python -m flows.deployments serve``
    one long-lived process runs every deployment itself, and watches the inbox (no work pool;
    simplest on one GPU box).
``python -m flows.deployments deploy --pool gpu-pool``
    registers them on a work pool; ``prefect worker start --pool gpu-pool`` processes (or the Docker
    image, or Kubernetes pods) pick the runs up. Run ``python -m flows.intake watch`` beside them.
``python -m flows.deployments yaml && prefect deploy --all``
    writes ``prefect.yaml`` from the settings (the repository's copy is the one for the defaults),
    then Prefect's own CLI registers it.

The schedule settings are checked first: a bad cron or timezone is one line naming the variable.

Deployments:

- ``packshot-catalog/nightly``: the source in ``PACKSHOT_ORCHESTRATION__NIGHTLY_CATALOG`` (a CSV or feed
  file, an https feed URL, ``shopify://SHOP``, ``woocommerce://HOST``) on the cron
  ``PACKSHOT_ORCHESTRATION__NIGHTLY_CRON`` in the merchant's ``PACKSHOT_ORCHESTRATION__TIMEZONE`` (the
  timezone is in the schedule's name and the deployment's description);
- ``packshot-catalog/on-demand``: any catalog or source; its parameters form is :class:`RunOptions`;
- ``packshot-intake/intake``: one catalog run per new CSV in the inbox; no schedule: the inbox watcher
  (:func:`flows.intake.watch_inbox`) starts it when a file arrives;
- ``packshot-fanout/fan-out`` and ``packshot-shard/shard``: a large catalog split over the pool's workers.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

from prefect.schedules import Cron

from orchestrator.settings import Settings, get_settings
from packshot.errors import ConfigError, PackshotError

REPO = Path(__file__).resolve().parent.parent
ENTRYPOINTS = {
    "nightly": "flows/catalog_run.py:catalog_run",
    "on-demand": "flows/catalog_run.py:catalog_run",
    "intake": "flows/intake.py:intake_inbox",
    "fan-out": "flows/shards.py:catalog_fanout",
    "shard": "flows/shards.py:catalog_shard",
}
TAGS = {"nightly": ["packshot", "nightly"], "on-demand": ["packshot"], "intake": ["packshot", "intake"],
        "fan-out": ["packshot"], "shard": ["packshot", "gpu"]}


def check_schedule(settings: Settings) -> None:
    """The nightly cron and timezone as Prefect will read them; a ConfigError of one line otherwise."""
    from prefect._vendor.croniter import croniter

    o = settings.orchestration
    if not croniter.is_valid(o.nightly_cron):
        raise ConfigError(f"PACKSHOT_ORCHESTRATION__NIGHTLY_CRON={o.nightly_cron!r} is not a cron "
                          "expression; write five fields, e.g. '0 2 * * *' for 02:00 every night")
    try:
        ZoneInfo(o.timezone)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError; a bad name a ValueError
        raise ConfigError(f"PACKSHOT_ORCHESTRATION__TIMEZONE={o.timezone!r} is not a timezone; use an IANA "
                          "name such as Europe/Berlin or America/New_York") from None


def schedule_name(settings: Settings) -> str:
    """The nightly schedule's name (its slug), which the UI lists: cron and timezone in plain sight."""
    o = settings.orchestration
    return f"nightly {o.nightly_cron} {o.timezone}"


def nightly_schedule(settings: Settings) -> Cron:
    check_schedule(settings)
    o = settings.orchestration
    return Cron(o.nightly_cron, timezone=o.timezone, slug=schedule_name(settings))


def deployment_specs(settings: Settings | None = None) -> dict[str, dict]:
    """Name -> keyword arguments shared by ``to_deployment``, ``deploy`` and ``prefect.yaml``."""
    settings = settings or get_settings()
    o = settings.orchestration
    return {
        "nightly": {
            "schedules": [nightly_schedule(settings)],
            "parameters": {"options": {"catalog": o.nightly_catalog, "out": o.nightly_out}},
            "description": f"every night on cron {o.nightly_cron} in {o.timezone} (the merchant's timezone): "
            f"{o.nightly_catalog} -> {o.nightly_out}; unchanged products skip",
            "tags": TAGS["nightly"],
        },
        "on-demand": {
            "description": "process any catalog, feed or store (shopify://SHOP, woocommerce://HOST): fill in "
            "the form (Run > Custom run)",
            "tags": TAGS["on-demand"],
        },
        "intake": {
            "parameters": {"inbox": o.inbox, "out": o.inbox_out},
            "description": f"one catalog run per new CSV in the inbox ({o.inbox}; runs write to "
            f"{o.inbox_out}); started when a file arrives by the inbox watcher (python -m flows.intake "
            "watch, or the serve process), never on a timer; Quick run processes the inbox now",
            "tags": TAGS["intake"],
        },
        "fan-out": {"description": "split a large catalog over the GPU workers", "tags": TAGS["fan-out"]},
        "shard": {"description": "one shard of a fan-out run", "tags": TAGS["shard"]},
    }


PREFECT_YAML_HEAD = """\
# Written by `python -m flows.deployments yaml` from the settings (PACKSHOT_ORCHESTRATION__*): do not
# edit; set the variables (or .env) and write it again. This copy is the one for the default settings.
# Then, on a machine that reaches the Prefect server:
#   prefect work-pool create gpu-pool --type process
#   PACKSHOT_CODE_DIR=/app prefect deploy --all     # /app: the code's folder on the workers (Docker image)
# PACKSHOT_CODE_DIR is filled in when you deploy; left unset then, each worker reads its own
# PACKSHOT_CODE_DIR before every run (bare-metal workers with the code in different folders).
# The intake deployment has no schedule: run `python -m flows.intake watch` beside the workers.
"""


def prefect_yaml(settings: Settings | None = None, pool: str = "gpu-pool") -> str:
    """``prefect.yaml`` for ``prefect deploy --all``: the deployments of :func:`deployment_specs`."""
    import prefect
    import yaml

    deployments = []
    for name, spec in deployment_specs(settings).items():
        entry = {"name": name, "entrypoint": ENTRYPOINTS[name], "description": spec["description"],
                 "tags": spec["tags"]}
        for schedule in spec.get("schedules", []):
            entry.setdefault("schedules", []).append(
                {"cron": schedule.cron, "timezone": schedule.timezone, "slug": schedule.slug})
        if "parameters" in spec:
            entry["parameters"] = spec["parameters"]
        entry["work_pool"] = {"name": pool, "work_queue_name": "default"}
        deployments.append(entry)
    doc = {"name": "packshot", "prefect-version": prefect.__version__, "build": None, "push": None,
           "pull": [{"prefect.deployments.steps.set_working_directory": {
               "directory": "{{ $PACKSHOT_CODE_DIR }}"}}],
           "deployments": deployments}
    return PREFECT_YAML_HEAD + yaml.safe_dump(doc, sort_keys=False, width=100)


def _flow_for(name: str):
    from flows.catalog_run import catalog_run
    from flows.intake import intake_inbox
    from flows.shards import catalog_fanout, catalog_shard

    return {"nightly": catalog_run, "on-demand": catalog_run, "intake": intake_inbox,
            "fan-out": catalog_fanout, "shard": catalog_shard}[name]


def runner_deployments(settings: Settings | None = None) -> list:
    """The deployments for ``serve`` (run by this process, no work pool)."""
    specs = deployment_specs(settings)
    return [_flow_for(name).to_deployment(name=name, **spec) for name, spec in specs.items()]


def deploy_to_pool(pool: str, settings: Settings | None = None, source: Path = REPO) -> list[str]:
    """Register every deployment on work pool ``pool``; workers run the code found at ``source``
    (the repository on the worker's disk, ``/app`` in the Docker image). Returns the deployment ids."""
    from prefect import flow

    ensure_work_pool(pool)
    ids = []
    for name, spec in deployment_specs(settings).items():
        remote = flow.from_source(source=str(source), entrypoint=ENTRYPOINTS[name])
        ids.append(str(remote.deploy(name=name, work_pool_name=pool, build=False, push=False,
                                     print_next_steps=False, ignore_warnings=True, **spec)))
    return ids


def ensure_work_pool(pool: str, pool_type: str = "process") -> None:
    """Create the work pool when it does not exist yet (``prefect work-pool create POOL --type process``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type=pool_type))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.deployments", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve every deployment from this process and watch the inbox")
    deploy = sub.add_parser("deploy", help="register the deployments on a work pool")
    deploy.add_argument("--pool", default="gpu-pool")
    deploy.add_argument("--source", type=Path, default=REPO, help="the code's path on the workers")
    write = sub.add_parser("yaml", help="write prefect.yaml from the settings, for `prefect deploy --all`")
    write.add_argument("--pool", default="gpu-pool")
    write.add_argument("--out", type=Path, default=REPO / "prefect.yaml")
    args = parser.parse_args(argv)
    try:
        check_schedule(get_settings())
        if args.command == "serve":
            from prefect import serve

            from flows.intake import watch_inbox

            threading.Thread(target=watch_inbox, daemon=True, name="inbox-watcher").start()
            serve(*runner_deployments())
        elif args.command == "yaml":
            args.out.write_text(prefect_yaml(pool=args.pool))
            print(f"wrote {args.out}: now `prefect deploy --all`")
        else:
            for dep_id in deploy_to_pool(args.pool, source=args.source):
                print(dep_id)
    except PackshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
