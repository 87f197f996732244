"""The merchant review loop: decisions in ``review.json``, the review page, the approved-only manifest."""

from orchestrator.review.decisions import (
    Correction,
    Decision,
    ReviewFile,
    export_approved,
    load_review,
    save_review,
)

__all__ = ["Correction", "Decision", "ReviewFile", "export_approved", "load_review", "save_review"]
