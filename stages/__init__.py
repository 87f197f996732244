"""Pipeline stages, one package per stage.

Stages never import Prefect: each runs and tests on its own, on numpy arrays in and out.
Orchestration lives in ``flows/``; shared plumbing in ``packshot/``.
"""
