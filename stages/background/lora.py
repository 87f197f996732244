"""Brand LoRAs on the already loaded FLUX Fill pipeline.

Each brand's LoRA is loaded once under its own adapter name; switching brand switches adapters
(``set_adapters``) and never reloads the base model. With ``speed.lora_hotswap`` there is a single
pre-sized adapter slot instead (:func:`stages.background.speed.add_hotswap_slot`): a brand's
weights, scaled by its ``lora.scale``, are copied into it in place, so a compiled transformer
never recompiles; the state dicts are kept in memory, so switching back reads no file.

Before loading, every LoRA matrix is checked against the Fill transformer's layer shapes:
diffusers would otherwise zero-pad a FLUX-dev LoRA that touches ``x_embedder`` (64 inputs) into
Fill's 384-input layer and apply it silently wrong.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packshot.config import GenerativeSettings
from packshot.errors import ConfigError, ModelUnavailableError

if TYPE_CHECKING:
    from packshot.schemas.brand import BrandStyle, LoraSpec

log = logging.getLogger(__name__)


def adapter_name(brand: BrandStyle) -> str:
    """Stable per brand and LoRA file, so editing the YAML's source loads a new adapter."""
    spec = brand.lora
    digest = hashlib.sha256(f"{spec.source}|{spec.weight_name}".encode()).hexdigest()[:8]
    return f"{brand.name}-{digest}".replace("-", "_")


def activate_lora(
    pipe: Any, brand: BrandStyle | None, settings: GenerativeSettings
) -> tuple[str, float] | None:
    """Make ``brand``'s LoRA the only active adapter (loading it the first time); with no brand or
    no LoRA, disable all adapters. Returns ``(adapter_name, scale)`` or None."""
    if getattr(pipe, "_packshot_slot_holds", "absent") != "absent":
        return _activate_hotswap(pipe, brand, settings)
    loaded = set(_loaded_adapters(pipe))
    if brand is None or brand.lora is None:
        if loaded:
            pipe.disable_lora()
        return None
    name = adapter_name(brand)
    if name not in loaded:
        load_brand_lora(pipe, brand, name, settings)
    pipe.enable_lora()
    pipe.set_adapters([name], adapter_weights=[brand.lora.scale])
    return name, brand.lora.scale


def load_brand_lora(pipe: Any, brand: BrandStyle, name: str, settings: GenerativeSettings) -> None:
    where, source, kwargs, _state_dict = read_brand_lora(pipe, brand, settings)
    log.info("loading LoRA %s as adapter %s", brand.lora.source, name)
    try:
        pipe.load_lora_weights(source, adapter_name=name, **kwargs)
    except Exception as exc:
        raise ConfigError(f"{where}: LoRA {brand.lora.source} failed to load into FLUX Fill: {exc}") from exc
    from stages.background.speed import lora_layers_in_compute_dtype

    lora_layers_in_compute_dtype(pipe.transformer)


def read_brand_lora(pipe: Any, brand: BrandStyle, settings: GenerativeSettings):
    """(where, source, load kwargs, diffusers-format state dict) of the brand's LoRA, checked to fit."""
    where = f"{brand.source_file or brand.name}: field 'lora.source'"
    source, weight_name = resolve_lora_source(brand.lora, brand.source_file, settings.lora_cache_dir, where)
    kwargs = {"weight_name": weight_name} if weight_name else {}
    try:
        state_dict = pipe.lora_state_dict(source, **kwargs)
    except Exception as exc:  # unknown trainer format, missing file in a repo, unreachable hub id
        raise ConfigError(f"{where}: cannot read LoRA {brand.lora.source}: {exc}") from exc
    check_lora_fits(state_dict, pipe.transformer, f"{where}: LoRA {brand.lora.source}")
    return where, source, kwargs, state_dict


def _activate_hotswap(pipe: Any, brand: BrandStyle | None, settings: GenerativeSettings):
    """Copy ``brand``'s LoRA into the hot-swap slot (zero it for no LoRA); no module is added or removed."""
    from stages.background.speed import HOTSWAP_SLOT, clear_hotswap_slot

    if brand is None or brand.lora is None:
        if pipe._packshot_slot_holds is not None:
            clear_hotswap_slot(pipe)
        return None
    name = adapter_name(brand)
    held = (name, brand.lora.scale)  # the scale is folded into the weights: a new scale is a new swap
    if pipe._packshot_slot_holds != held:
        cache = pipe.__dict__.setdefault("_packshot_hotswap_loras", {})
        if held not in cache:
            cache[held] = _hotswap_state_dict(pipe, brand, settings)
        log.info("hot-swapping LoRA %s into slot %s", brand.lora.source, HOTSWAP_SLOT)
        try:
            pipe.load_lora_weights(dict(cache[held]), adapter_name=HOTSWAP_SLOT, hotswap=True)
        except Exception as exc:
            where = f"{brand.source_file or brand.name}: field 'lora.source'"
            raise ConfigError(
                f"{where}: LoRA {brand.lora.source} cannot be hot-swapped ({exc}); set "
                "PACKSHOT_GENERATIVE__SPEED__LORA_HOTSWAP=false to load it as its own adapter"
            ) from exc
        pipe._packshot_slot_holds = held
    return held


def _hotswap_state_dict(pipe: Any, brand: BrandStyle, settings: GenerativeSettings) -> dict:
    """The brand's transformer LoRA with ``lora.scale`` folded into the B matrices, checked against
    the slot: same or fewer layers, rank at most ``speed.lora_max_rank``, no text-encoder weights."""
    from stages.background.speed import slot_modules

    where, _source, _kwargs, state_dict = read_brand_lora(pipe, brand, settings)
    label = f"{where}: LoRA {brand.lora.source}"
    text_keys = [k for k in state_dict if not k.startswith("transformer.")]
    if text_keys:
        raise ConfigError(
            f"{label} also adapts the text encoders ({text_keys[0]} ...), which LoRA hot-swap cannot do; "
            "set PACKSHOT_GENERATIVE__SPEED__LORA_HOTSWAP=false for this brand set"
        )
    slot = slot_modules(pipe)
    max_rank = settings.speed.lora_max_rank
    scaled = {}
    for key, tensor in state_dict.items():
        module = key[len("transformer."):].split(".lora_")[0]
        if ".lora_" in key and module not in slot:
            raise ConfigError(
                f"{label} adapts {module}, outside the hot-swap slot (every linear layer of the "
                "transformer); set PACKSHOT_GENERATIVE__SPEED__LORA_HOTSWAP=false to load it as its own "
                "adapter"
            )
        if ".lora_A." in key and tensor.shape[0] > max_rank:
            raise ConfigError(
                f"{label} has rank {tensor.shape[0]} at {module}, above the hot-swap slot's "
                f"PACKSHOT_GENERATIVE__SPEED__LORA_MAX_RANK={max_rank}; raise that setting"
            )
        scaled[key] = tensor * brand.lora.scale if ".lora_B." in key else tensor
    return scaled


def check_lora_fits(state_dict: dict, transformer: Any, label: str) -> None:
    """Raise :class:`ConfigError` unless every transformer LoRA matrix matches a Fill layer's shape.

    ``state_dict`` is in diffusers' format (``transformer.<module>.lora_A.weight``), as returned by
    ``FluxFillPipeline.lora_state_dict``, which converts kohya/xlabs/other trainers' files.
    """
    problems: list[str] = []
    for key, tensor in state_dict.items():
        if not key.startswith("transformer."):
            continue  # text-encoder LoRAs are checked by diffusers
        body = key[len("transformer."):]
        if ".lora_A." in body:
            module_name, dim, attr = body.split(".lora_A.")[0], 1, "in_features"
        elif ".lora_B." in body:
            module_name, dim, attr = body.split(".lora_B.")[0], 0, "out_features"
        elif body.endswith(".alpha"):
            continue
        else:
            problems.append(f"{body} is a full weight, not a LoRA matrix (a Control LoRA or another model)")
            continue
        try:
            module = transformer.get_submodule(module_name)
        except AttributeError:
            problems.append(f"{module_name} does not exist in the FLUX Fill transformer")
            continue
        expected = getattr(module, attr, None)
        if expected is not None and tensor.shape[dim] != expected:
            problems.append(
                f"{module_name} has {attr}={expected} in FLUX Fill but the LoRA expects {tensor.shape[dim]}"
            )
    if problems:
        hint = (
            " LoRAs that touch x_embedder were trained on FLUX.1 [dev] (64 input channels) and cannot "
            "apply to FLUX Fill (384); retrain on Fill or drop the x_embedder weights."
            if any("x_embedder" in p for p in problems) else ""
        )
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ConfigError(f"{label} cannot apply to the FLUX Fill transformer: {shown}.{hint}")


def resolve_lora_source(
    spec: LoraSpec, brand_file: Path | None, cache_dir: Path, where: str
) -> tuple[str, str | None]:
    """(what to pass to ``load_lora_weights``, weight_name). Local paths resolve against the brand
    file's folder; ``s3://`` keys are downloaded once into ``cache_dir``; anything else is a hub id."""
    if spec.source.startswith("s3://"):
        return str(_download_s3(spec.source, Path(cache_dir), where)), None
    path = Path(spec.source).expanduser()
    if not path.is_absolute() and brand_file is not None:
        path = brand_file.parent / path
    if path.exists():
        if path.is_dir() and not spec.weight_name:
            files = sorted(path.glob("*.safetensors"))
            if len(files) != 1:
                raise ConfigError(
                    f"{where}: folder {path} holds {len(files)} .safetensors files; set lora.weight_name"
                )
            return str(files[0]), None
        return str(path), spec.weight_name
    source = spec.source
    if source.startswith(("/", ".", "~")) or source.count("/") != 1 or source.endswith(".safetensors"):
        raise ModelUnavailableError(f"{where}: LoRA file {path} does not exist")
    return spec.source, spec.weight_name


def _download_s3(url: str, cache_dir: Path, where: str) -> Path:
    """Fetch ``s3://bucket/key`` once, through the one S3 client factory (PACKSHOT_STORAGE__S3_ENDPOINT_URL,
    path-style addressing, SigV4), written atomically into the LoRA cache."""
    bucket, _, key = url[len("s3://"):].partition("/")
    if not bucket or not key:
        raise ConfigError(f"{where}: {url} is not s3://bucket/key")
    target = cache_dir / bucket / key
    if target.is_file():
        return target
    from botocore.exceptions import BotoCoreError, ClientError

    from packshot.storage import S3Storage

    try:
        return S3Storage(f"s3://{bucket}").download_file(key, target)
    except (BotoCoreError, ClientError) as exc:
        raise ModelUnavailableError(f"{where}: cannot download LoRA {url}: {exc}") from exc


def _loaded_adapters(pipe: Any) -> list[str]:
    try:
        return [a for names in pipe.get_list_adapters().values() for a in names]
    except (ValueError, AttributeError):  # no PEFT layers yet
        return []
