"""The deployments, in code. Two ways to run them:

``python -m flows.deployments serve``
    one long-lived process runs every deployment itself (no work pool; simplest on one GPU box).
``python -m flows.deployments deploy --pool gpu-pool``
    registers them on a work pool; ``prefect worker start --pool gpu-pool`` processes (or the Docker
    image, or Kubernetes pods) pick the runs up. ``prefect.yaml`` is the same set for ``prefect deploy``.

Deployments:

- ``packshot-catalog/nightly``: the source in ``PACKSHOT_ORCHESTRATION__NIGHTLY_CATALOG`` (a CSV or feed
  file, an https feed URL, ``shopify://SHOP``, ``woocommerce://HOST``) on the cron
  ``PACKSHOT_ORCHESTRATION__NIGHTLY_CRON`` in the merchant's ``PACKSHOT_ORCHESTRATION__TIMEZONE``;
- ``packshot-catalog/on-demand``: any catalog or source; its parameters form is :class:`RunOptions`;
- ``packshot-intake/intake``: every minute, one catalog run per new CSV in the inbox;
- ``packshot-fanout/fan-out`` and ``packshot-shard/shard``: a large catalog split over the pool's workers.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from prefect.schedules import Cron, Interval

from orchestrator.settings import Settings, get_settings

REPO = Path(__file__).resolve().parent.parent
ENTRYPOINTS = {
    "nightly": "flows/catalog_run.py:catalog_run",
    "on-demand": "flows/catalog_run.py:catalog_run",
    "intake": "flows/intake.py:intake_inbox",
    "fan-out": "flows/shards.py:catalog_fanout",
    "shard": "flows/shards.py:catalog_shard",
}


def nightly_schedule(settings: Settings) -> Cron:
    o = settings.orchestration
    return Cron(o.nightly_cron, timezone=o.timezone)


def deployment_specs(settings: Settings | None = None) -> dict[str, dict]:
    """Name -> keyword arguments shared by ``to_deployment`` and ``deploy`` (schedules, parameters ...)."""
    settings = settings or get_settings()
    o = settings.orchestration
    return {
        "nightly": {
            "schedules": [nightly_schedule(settings)],
            "parameters": {"options": {"catalog": o.nightly_catalog, "out": o.nightly_out}},
            "description": f"{o.nightly_catalog} nightly ({o.nightly_cron}, {o.timezone}); unchanged "
            "products skip",
            "tags": ["packshot", "nightly"],
        },
        "on-demand": {
            "description": "process any catalog, feed or store (shopify://SHOP, woocommerce://HOST): fill in "
            "the form",
            "tags": ["packshot"],
        },
        "intake": {
            "schedules": [Interval(timedelta(minutes=1))],
            "parameters": {"inbox": o.inbox, "out": o.inbox_out},
            "description": "one catalog run per new CSV in the inbox",
            "tags": ["packshot", "intake"],
        },
        "fan-out": {"description": "split a large catalog over the GPU workers", "tags": ["packshot"]},
        "shard": {"description": "one shard of a fan-out run", "tags": ["packshot", "gpu"]},
    }


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
    sub.add_parser("serve", help="serve every deployment from this process")
    deploy = sub.add_parser("deploy", help="register the deployments on a work pool")
    deploy.add_argument("--pool", default="gpu-pool")
    deploy.add_argument("--source", type=Path, default=REPO, help="the code's path on the workers")
    args = parser.parse_args(argv)
    if args.command == "serve":
        from prefect import serve

        serve(*runner_deployments())
    else:
        for dep_id in deploy_to_pool(args.pool, source=args.source):
            print(dep_id)


if __name__ == "__main__":
    main()
