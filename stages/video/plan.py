"""Resolving clip requests against provider rules, and what a planned run will cost (no network)."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from packshot.errors import ConfigError, PackshotError
from stages.video.framing import choose_size, decode_image
from stages.video.prompts import build_prompt
from stages.video.providers import make_provider
from stages.video.providers.base import VideoProvider
from stages.video.settings import VideoSettings
from stages.video.spec import BrandVideoStyle, ClipRequest, ClipSpec, CostEstimate, EstimateLine


def price_per_second(settings: VideoSettings, provider: str, model: str, size_label: str) -> float | None:
    """USD/s from ``prices_usd_per_s``: ``provider/model@size``, ``provider/model``, ``provider/*``."""
    prices = settings.prices_usd_per_s
    for key in (f"{provider}/{model}@{size_label}", f"{provider}/{model}", f"{provider}/*"):
        if key in prices:
            return prices[key]
    return None


def resolve_clip(
    request: ClipRequest, settings: VideoSettings, providers: dict[str, VideoProvider]
) -> tuple[ClipSpec, np.ndarray]:
    """The exact spec to submit for ``request`` and its decoded RGB image (``HxWx3 uint8``).

    Precedence: the request's overrides, then the brand's ``video:`` mapping, then ``settings``.
    """
    brand = request.brand or BrandVideoStyle()
    name = request.provider or brand.provider or settings.provider
    if name == "none":
        raise ConfigError(
            f"no video provider for sku {request.sku}: set PACKSHOT_VIDEO__PROVIDER (runway, sora or local) "
            "or provider in the brand's video: mapping"
        )
    provider = providers.get(name)
    if provider is None:
        provider = providers[name] = make_provider(name, settings)
    model = (
        request.model
        or (brand.model if brand.provider in (None, name) else None)
        or (settings.model if settings.provider == name else None)
        or provider.default_model
    )
    provider.check_model(model)
    notes = []
    wanted_s = request.duration_s or brand.duration_s or settings.duration_s
    duration = provider.duration(model, wanted_s)
    if duration != wanted_s:
        notes.append(f"{wanted_s} s is not offered, using {duration} s")
    rgb = decode_image(request.image)
    label, size = choose_size(
        provider.sizes(model), request.ratio or brand.ratio or settings.ratio, rgb.shape
    )
    camera = request.camera_motion or brand.camera_motion or settings.camera_motion
    prompt = build_prompt(request.prompt, brand.prompt, camera, provider.max_prompt_chars)
    price = price_per_second(settings, name, model, label)
    if price is None:
        notes.append(f"no price for {name}/{model}: add it to PACKSHOT_VIDEO__PRICES_USD_PER_S")
    identity = json.dumps(
        [
            request.sku,
            request.name,
            name,
            model,
            duration,
            label,
            prompt,
            settings.fit,
            hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).hexdigest(),
        ]
    )
    key = hashlib.sha256(identity.encode()).hexdigest()[:20]
    spec = ClipSpec(key, request.sku, request.name, name, model, duration, size, label, prompt, price, notes)  # type: ignore[arg-type]
    return spec, rgb


def plan_clips(
    items: list[ClipRequest], settings: VideoSettings, *, committed_usd: float = 0.0
) -> CostEstimate:
    """What each clip will cost and whether it fits under ``max_spend_usd``, submitting nothing.

    Clips are budgeted in order, as ``render_clips`` submits them; ``committed_usd`` is spend already
    recorded for this run (a resumed run).
    """
    providers: dict[str, VideoProvider] = {}
    lines, spent = [], committed_usd
    for item in items:
        try:
            spec, _ = resolve_clip(item, settings, providers)
        except ConfigError:
            raise
        except PackshotError as exc:
            lines.append(
                EstimateLine(
                    sku=item.sku,
                    name=item.name,
                    provider=item.provider or settings.provider,
                    model=item.model or "",
                    duration_s=0,
                    size="",
                    price_usd_per_s=None,
                    cost_usd=None,
                    within_budget=False,
                    notes=[str(exc)],
                )
            )
            continue
        cost = spec.cost_usd
        fits = cost is not None and spent + cost <= settings.max_spend_usd + 1e-9
        if fits:
            spent += cost  # type: ignore[operator]
        lines.append(
            EstimateLine(
                sku=spec.sku,
                name=spec.name,
                provider=spec.provider,
                model=spec.model,
                duration_s=spec.duration_s,
                size=spec.size_label,
                price_usd_per_s=spec.price_usd_per_s,
                cost_usd=cost,
                within_budget=fits,
                notes=spec.notes,
            )
        )
    total = round(sum(line.cost_usd or 0.0 for line in lines), 4)
    return CostEstimate(
        lines=lines,
        total_usd=total,
        cap_usd=settings.max_spend_usd,
        committed_usd=committed_usd,
        prices_source=settings.prices_source,
    )


def format_estimate(estimate: CostEstimate) -> str:
    """A plain-text table for ``packshot estimate``; columns as wide as their longest value (a SKU or
    model name is never cut)."""
    models = [f"{line.provider}/{line.model}" for line in estimate.lines]
    sku_w = max([3, *(len(line.sku) for line in estimate.lines)])
    clip_w = max([4, *(len(line.name) for line in estimate.lines)])
    model_w = max([14, *(len(m) for m in models)])
    header = (
        f"{'sku':<{sku_w}} {'clip':<{clip_w}} {'provider/model':<{model_w}} {'sec':>4} {'size':<10} "
        f"{'$/s':>6} {'cost':>8}  note"
    )
    rows = [header, "-" * len(header)]
    for line, model in zip(estimate.lines, models, strict=True):
        price = "?" if line.price_usd_per_s is None else f"{line.price_usd_per_s:.3f}"
        cost = "?" if line.cost_usd is None else f"${line.cost_usd:.2f}"
        notes = list(line.notes)
        if not line.within_budget and line.cost_usd is not None:
            notes.insert(0, "OVER CAP: would be skipped")
        rows.append(
            f"{line.sku:<{sku_w}} {line.name:<{clip_w}} {model:<{model_w}} "
            f"{line.duration_s:>4} {line.size:<10} {price:>6} {cost:>8}  {'; '.join(notes)}"
        )
    within = sum((line.cost_usd or 0.0) for line in estimate.lines if line.within_budget)
    skipped = len(estimate.over_budget)
    rows += [
        "",
        f"total if all clips ran: ${estimate.total_usd:.2f} for {len(estimate.lines)} clips",
        f"spend cap per run: ${estimate.cap_usd:.2f} "
        f"(already spent in this run: ${estimate.committed_usd:.2f}); "
        f"planned within the cap: ${within:.2f}, clips over the cap or unpriced: {skipped}",
        f"prices: {estimate.prices_source}",
    ]
    return "\n".join(rows)
