"""Settings of the export stage (``PACKSHOT_EXPORT__*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class ExportSettings(BaseModel):
    presets: list[str] = Field(default_factory=lambda: ["amazon-main", "shopify"])
    presets_file: Path | None = Field(None, description="YAML file with custom presets")
