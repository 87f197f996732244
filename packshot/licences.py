"""Model licences: what each backend's weights allow, shown in every run and enforced at its start.

Every backend in a stage's table (:mod:`packshot.backends`) names a :class:`Licence` from
:data:`LICENCES`. A deployment states its use (``PACKSHOT_LICENCES__USE``, ``commercial`` by default) and
the agreements the merchant holds (``PACKSHOT_LICENCES__HELD``); a commercial run refuses, before any
model loads, a model whose licence needs an agreement the merchant has not declared
(:func:`check_use`), and ``auto`` passes over such a model when a licence-clean one is configured.

Sources: FLUX.1 [dev] Non-Commercial License and BFL's self-hosted commercial licence terms
(bfl.ai/legal); FLUX.2 [klein] 4B model card (Apache-2.0; the 9B variants are non-commercial);
BiRefNet README (MIT); rembg README; RMBG-2.0 model card (CC BY-NC 4.0); segment-anything README
(Apache-2.0); LTX-Video open-weights licence (revenue-gated); Wan 2.x model cards (Apache-2.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from packshot.errors import ConfigError

Commercial = Literal["allowed", "agreement", "service", "none"]


@dataclass(frozen=True)
class Licence:
    """``commercial``: ``allowed`` (open licence), ``agreement`` (commercial use needs ``agreement``),
    ``service`` (a hosted provider's terms, paid per use), ``none`` (no model: code of this project)."""

    key: str
    title: str
    commercial: Commercial
    agreement: str = ""
    url: str = ""

    def summary(self) -> str:
        """One line for the report, the manifest and ``packshot plan``."""
        use = {
            "allowed": "commercial use allowed",
            "agreement": f"commercial use needs {self.agreement} (PACKSHOT_LICENCES__HELD={self.key})",
            "service": "hosted service: its terms of use apply, billed per use",
            "none": "no model weights",
        }[self.commercial]
        return f"{self.title}: {use}" + (f" <{self.url}>" if self.url else "")


LICENCES: dict[str, Licence] = {lic.key: lic for lic in (
    Licence("apache-2.0", "Apache-2.0", "allowed", url="https://www.apache.org/licenses/LICENSE-2.0"),
    Licence("mit", "MIT", "allowed", url="https://opensource.org/license/mit"),
    Licence("flux-1-dev", "FLUX.1 [dev] Non-Commercial License", "agreement",
            agreement="Black Forest Labs' self-hosted commercial licence",
            url="https://bfl.ai/legal/self-hosted-commercial-license-terms"),
    Licence("cc-by-nc-4.0", "CC BY-NC 4.0", "agreement",
            agreement="a commercial agreement with the model's owner",
            url="https://creativecommons.org/licenses/by-nc/4.0/"),
    Licence("ltxv-open-weights", "LTX-Video open weights licence", "agreement",
            agreement="Lightricks' commercial licence (companies above its revenue threshold)",
            url="https://huggingface.co/Lightricks/LTX-Video"),
    Licence("service", "hosted service terms", "service"),
    Licence("none", "no model (code of this project, Apache-2.0)", "none"),
    Licence("test", "tiny random test weights (not for production)", "none"),
)}


class LicenceSettings(BaseModel):
    """What this deployment does with the models (``PACKSHOT_LICENCES__*``)."""

    use: Literal["commercial", "non-commercial"] = Field(
        "commercial", description="commercial (a shop's product images, the default) or non-commercial "
        "(evaluation, research): a commercial run refuses models whose licence forbids it"
    )
    held: list[str] = Field(
        default_factory=list, description='licences whose commercial agreement the merchant holds, by key, '
        'e.g. ["flux-1-dev"] after signing BFL\'s self-hosted commercial licence'
    )


def licence(key: str) -> Licence:
    return LICENCES[key]


def refusal(model: str, lic: Licence, settings: LicenceSettings) -> str | None:
    """Why ``settings`` forbid running ``model`` under ``lic`` (one line naming model, licence, setting),
    or None when it may run."""
    if lic.commercial != "agreement" or settings.use != "commercial" or lic.key in settings.held:
        return None
    return (
        f"{model} is under the {lic.title}: a commercial run needs {lic.agreement}. Once you hold it, "
        f"declare it with PACKSHOT_LICENCES__HELD='[\"{lic.key}\"]'; for evaluation only, set "
        "PACKSHOT_LICENCES__USE=non-commercial; or choose a licence-clean model"
    )


def check_use(model: str, lic: Licence, settings: LicenceSettings) -> None:
    """Raise :class:`LicenceError` when ``settings`` forbid running ``model`` under ``lic``."""
    reason = refusal(model, lic, settings)
    if reason:
        raise LicenceError(reason)


class LicenceError(ConfigError):
    """A model's licence forbids this run's declared use; the message names model, licence and setting."""
