"""Prefect flows, tasks and deployments: thin wiring around ``packshot.pipeline``."""
