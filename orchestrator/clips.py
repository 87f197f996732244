"""Turn catalog products into video clip requests (shared by ``packshot estimate`` and the flow)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from packshot.errors import ConfigError, PackshotError
from packshot.types import Product


def brand_video_style(brand_name: str | None, brand_styles_dir: Path):
    """The brand YAML's optional ``video:`` mapping as a validated BrandVideoStyle, or None."""
    if not brand_name:
        return None
    from packshot.schemas.brand import load_brand_style
    from stages.video import BrandVideoStyle

    brand = load_brand_style(brand_name, brand_styles_dir)
    raw = getattr(brand, "video", None)
    if not raw:
        return None
    try:
        return BrandVideoStyle.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"video.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(
            f"brand style '{brand_name}' ({brand._source_file}): {problems}"
        ) from None


def clip_requests(
    products: list[Product],
    image_for: Callable[[Product], np.ndarray | bytes],
    brand_styles_dir: Path,
    default_brand: str | None = None,
    **overrides,
) -> tuple[list, list[tuple[Product, str]]]:
    """One clip request per product; products whose image cannot be had are returned with the reason."""
    from stages.video import ClipRequest

    requests, problems = [], []
    styles: dict[str | None, object] = {}
    for product in products:
        brand = product.brand_style or default_brand
        try:
            if brand not in styles:
                styles[brand] = brand_video_style(brand, brand_styles_dir)
            image = image_for(product)
        except PackshotError as exc:
            problems.append((product, str(exc)))
            continue
        prompt = f"{product.title}" + (f", {product.category}" if product.category else "")
        requests.append(
            ClipRequest(
                sku=product.sku,
                image=image,
                prompt=prompt,
                brand=styles[brand],
                **{k: v for k, v in overrides.items() if v is not None},
            )
        )
    return requests, problems


# Which finished image a clip starts from: a brand scene reads best as an ad, then the generated
# background, then a plain packshot. Color variants are not animated.
_CLIP_SOURCE_RANK = {"scene": 0, "background": 1, "packshot": 2}


def best_image_key(result) -> str | None:
    candidates = [o for o in result.outputs if o.variant is None and o.kind in _CLIP_SOURCE_RANK]
    if not candidates:
        return None
    best = min(candidates, key=lambda o: (_CLIP_SOURCE_RANK[o.kind], o.scene or 0, o.position or 0))
    return best.key


def add_clips(results: list, products: list[Product], ctx) -> None:
    """Render one ad clip per finished product and add it to the product's results.

    The job ledger lives in the run folder (``.video/`` locally; a local state folder per output for
    S3 runs), so a rerun resumes the jobs it already paid for instead of submitting them again; a clip
    already in the output under its content-keyed name is used even when the ledger lost its entry.
    """
    import hashlib
    import io

    from packshot.schemas.brand import brand_style_dirs
    from packshot.schemas.results import OutputRecord
    from stages.video import render_clips

    by_sku = {p.sku: p for p in products}
    sources = {}
    for result in results:
        if result.status in ("done", "skipped") and result.sku in by_sku:
            key = best_image_key(result)
            if key:
                sources[result.sku] = key
    if not sources:
        return
    requests, problems = clip_requests(
        [by_sku[sku] for sku in sources],
        lambda p: ctx.storage.read_bytes(sources[p.sku]),
        brand_style_dirs(ctx.settings.brand_styles_dir, ctx.base_dir),
        default_brand=ctx.options.brand,
    )
    stored: dict[str, tuple[str, bytes]] = {}

    def write_output(relpath: str, data: bytes) -> str:
        uri = ctx.storage.write_bytes(relpath, data, "video/mp4")
        stored[uri] = (relpath, data)
        return uri

    def find_output(relpath: str) -> str | None:
        return f"{ctx.storage.uri.rstrip('/')}/{relpath}" if ctx.storage.exists(relpath) else None

    clips = render_clips(requests, ctx.settings.video, _video_state_dir(ctx), write_output, find_output)
    by_result = {r.sku: r for r in results}
    for product, reason in problems:
        by_result[product.sku].notes.append(f"video: no clip ({reason})")
    for clip in clips:
        result = by_result[clip.sku]
        if clip.status != "succeeded" or not clip.output_uri:
            detail = f": {clip.error}" if clip.error else ""
            result.notes.append(f"video: {clip.status} ({clip.provider}/{clip.model}){detail}")
            continue
        relpath, data = stored.get(clip.output_uri) or (_key_of(clip.output_uri, ctx), None)
        if data is None:  # resumed from the ledger: the clip was stored by an earlier run
            data = ctx.storage.read_bytes(relpath)
        size = _video_size(io.BytesIO(data))
        product = by_sku[clip.sku]
        result.outputs.append(OutputRecord(
            sku=clip.sku, kind="clip", key=relpath, uri=clip.output_uri, format="MP4",
            width=size[0] if size else 0, height=size[1] if size else 0, bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(), generated=True,
            checks=[] if size else ["clip: the provider's file is not a readable MP4 video"],
            source_file=product.source_file, source_line=product.source_line,
        ))
        if clip.cost_usd:
            result.notes.append(f"video: {clip.provider}/{clip.model} clip cost ${clip.cost_usd:.2f}")


def _video_state_dir(ctx) -> Path:
    local = ctx.storage.local_path(".video")
    if local is not None:
        return local
    import hashlib

    digest = hashlib.sha256(ctx.storage.uri.encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "packshot" / "video-state" / digest


def _key_of(uri: str, ctx) -> str:
    root = ctx.storage.uri.rstrip("/") + "/"
    return uri[len(root):] if uri.startswith(root) else uri


def _video_size(stream) -> tuple[int, int] | None:
    """Width and height of an MP4's first video stream, or None when it is not a readable video."""
    from packshot.extras import require

    av = require("av", "video", "reading video clips")

    try:
        with av.open(stream) as container:
            video = container.streams.video[0]
            return video.codec_context.width, video.codec_context.height
    except (av.FFmpegError, IndexError, ValueError):
        return None
