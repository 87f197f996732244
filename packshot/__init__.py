"""packshot: self-hosted product photography pipeline (shared plumbing lives in this package)."""

__version__ = "0.1.0"
