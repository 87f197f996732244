"""Backend tables: how a stage offers interchangeable backends (rembg's sessions, IOPaint's models).

A stage declares one :class:`BackendTable` and registers a :class:`BackendSpec` per backend, tiny test
backends included, the same way as the real ones. ``table.create(name, settings, device)`` builds the
named backend; ``"auto"`` takes the first spec, in registration order, that ``auto`` may pick, whose
optional dependencies (``modules``, installed by the pyproject ``extra``) are installed and whose
``unavailable`` check finds nothing missing, and says why in the returned notes. Naming a backend
whose extra is missing is one :class:`packshot.extras.MissingExtraError` line naming the extra.

Every built backend satisfies :class:`Backend`: what it is called, what cache keys record about it, its
licence for the run report, and whether its pixels are synthesised (provenance metadata).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

from packshot.errors import ConfigError
from packshot.extras import install_hint, installed, missing
from packshot.licences import LICENCES, Licence

S = TypeVar("S")  # the stage's settings group
B = TypeVar("B")  # what the stage's backends are


@runtime_checkable
class Backend(Protocol):
    name: str  # the table's key, e.g. "sam"
    identity: str  # what content keys record: model id@revision and anything else that changes output
    licence: str  # shown in the run report
    generated: bool  # True when the backend synthesises pixels (generated-image provenance)


@dataclass(frozen=True)
class BackendSpec(Generic[S, B]):
    """One backend of a stage.

    ``build(settings, device)`` returns the backend (loading weights through the model registry).
    ``unavailable(settings)`` returns why ``auto`` cannot use it (a missing checkpoint ...), or None.
    ``auto``: whether ``auto`` may pick it at all (test backends never are).
    ``licence``: what its weights allow (:mod:`packshot.licences`), shown in every run and enforced.
    ``modules``: top-level modules it imports from the pyproject extra ``extra`` (e.g. "generative").
    """

    name: str
    build: Callable[[S, str], B]
    summary: str
    auto: bool = True
    unavailable: Callable[[S], str | None] = lambda settings: None
    licence: str | Callable[[S], str] = "none"  # a key of packshot.licences.LICENCES, or one per settings
    extra: str | None = None
    modules: tuple[str, ...] = ()

    def licence_of(self, settings: S) -> Licence:
        """The licence of the weights this backend would load with ``settings`` (nothing is loaded)."""
        key = self.licence(settings) if callable(self.licence) else self.licence
        return LICENCES[key]

    def missing_module(self) -> str | None:
        """The first of ``modules`` that is not installed, or None."""
        return next((m for m in self.modules if not installed(m)), None)


class BackendTable(Generic[S, B]):
    """The backends of one stage, by name; ``setting`` is the variable that chooses one (for errors)."""

    def __init__(self, stage: str, setting: str):
        self.stage, self.setting = stage, setting
        self._specs: dict[str, BackendSpec[S, B]] = {}

    def register(self, spec: BackendSpec[S, B], before: str | None = None) -> BackendSpec[S, B]:
        """Add ``spec`` last, or just before the backend ``before`` (``auto`` tries them in order)."""
        if spec.name in self._specs or spec.name == "auto":
            raise ValueError(f"{self.stage}: backend name {spec.name!r} is taken")
        if before is None:
            self._specs[spec.name] = spec
        else:
            specs = list(self._specs.items())
            at = [name for name, _ in specs].index(before)
            self._specs = dict([*specs[:at], (spec.name, spec), *specs[at:]])
        return spec

    def names(self) -> list[str]:
        return list(self._specs)

    def spec(self, name: str) -> BackendSpec[S, B]:
        try:
            return self._specs[name]
        except KeyError:
            choices = ", ".join([*self._specs, "auto"])
            raise ConfigError(
                f"{self.setting}={name!r} is not a {self.stage} backend: use {choices}"
            ) from None

    def choose(self, name: str, settings: S) -> tuple[BackendSpec[S, B], list[str]]:
        """The spec ``name`` means (resolving ``auto``) and the notes that explain an ``auto`` choice."""
        if name != "auto":
            return self.spec(name), []
        skipped = []
        for spec in self._specs.values():
            if not spec.auto:
                continue
            reason = spec.unavailable(settings)  # what the user did not configure comes first
            absent = spec.missing_module() if reason is None else None
            if absent is not None:
                reason = f"{absent} is not installed ({install_hint(spec.extra or '')})"
            if reason is None:
                why = f" ({'; '.join(skipped)})" if skipped else ""
                return spec, [f"{self.stage}: auto chose {spec.name}{why}"]
            skipped.append(f"not {spec.name}: {reason}")
        raise ConfigError(f"{self.setting}=auto found no usable {self.stage} backend: {'; '.join(skipped)}")

    def create(self, name: str, settings: S, device: str) -> tuple[B, list[str]]:
        """Build the backend ``name`` (or ``auto``'s choice); returns it with the choice's notes."""
        spec, notes = self.choose(name, settings)
        return self.build(spec, settings, device), notes

    def build(self, spec: BackendSpec[S, B], settings: S, device: str) -> B:
        """``spec.build`` once its extra is known to be installed (else one line naming the extra)."""
        absent = spec.missing_module()
        if absent is not None:
            raise missing(spec.extra or "", f"{self.setting}={spec.name}", absent)
        return spec.build(settings, device)
