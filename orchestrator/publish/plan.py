"""What ``publish`` sends and what it reports: shared by :mod:`orchestrator.publish` and the targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from packshot.errors import PackshotError
from packshot.schemas.results import OutputRecord


class PublishError(PackshotError):
    """Nothing can be published: no manifest, no review (and no --all), an unknown target."""


@dataclass
class PlannedImage:
    """One output to send: ``filename`` is stable (sku, preset, position, checksum) and marks it ours."""

    output: OutputRecord
    filename: str
    mime: str

    def alt(self, title: str) -> str:
        variant = (self.output.variant or "").replace("-", " ").title()
        return f"{title} – {variant}" if variant else title


@dataclass
class PublishReport:
    target: str
    dry_run: bool
    lines: list[str] = field(default_factory=list)
    uploaded: int = 0
    already: int = 0
    problems: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)

    def would(self, remote: RemoteProduct, pending: list[PlannedImage], merchant: int, replaced: int) -> None:
        """A dry run's line for one product: what would be sent and detached (``merchant``: --replace)."""
        self.uploaded += len(pending)
        names = ", ".join(i.filename for i in pending) or "nothing new"
        also = f"; would detach the merchant's {merchant} image(s)" if merchant else ""
        if replaced:
            also += f"; would detach {replaced} older image(s) of ours they replace"
        self.say(f"{remote.sku} ({remote.title}): would upload {names}{also}")

    def headline(self) -> str:
        verb = "would upload" if self.dry_run else "uploaded"
        return f"{self.target}: {verb} {self.uploaded} image(s), {self.already} already there"

    def summary(self) -> str:
        tail = [f"problem: {p}" for p in self.problems]
        return "\n".join([self.headline(), *self.lines, *tail])


@dataclass
class RemoteProduct:
    ref: str
    sku: str
    title: str
    images: list[dict[str, Any]] = field(default_factory=list)  # WooCommerce: the product's images


def stem(name: str) -> str:
    return name.rpartition(".")[0] or name
