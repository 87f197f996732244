"""The orchestrator: one catalog run, without Prefect.

Layers above it (``flows``, ``cli``) call it; it calls the stages and plumbing. ``RunOptions`` says what to
run, ``get_context`` builds settings, storage and backends once per process, ``process_batch`` runs the
per-product phases (load, compute, write), ``orchestrator.run`` finishes a run (manifest, report).
"""

from orchestrator.context import RunContext, clear_contexts, get_context
from orchestrator.options import DEFAULT_STAGES, RunOptions, StageName, VideoOptions
from orchestrator.phases import process_batch

__all__ = [
    "DEFAULT_STAGES", "RunContext", "RunOptions", "StageName", "VideoOptions", "clear_contexts",
    "get_context", "process_batch",
]
