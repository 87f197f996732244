"""Prompt text for a clip: the product, the brand's look, and a camera-motion template."""

from __future__ import annotations

from packshot.errors import ConfigError

CAMERA_MOTIONS: dict[str, str] = {
    "static": "Locked-off camera, no camera movement; only light and subtle product details change.",
    "slow-push-in": "Slow, smooth dolly push-in toward the product, steady framing, no cuts.",
    "pull-out": "Slow dolly pull-back revealing the product in its setting, steady, no cuts.",
    "orbit": "Smooth 30-degree orbit around the product at eye level, constant speed, no cuts.",
    "turntable": "The product rotates slowly on a turntable, camera fixed, even studio lighting.",
    "pan-left": "Slow lateral pan from right to left across the product, steady horizon.",
    "pan-right": "Slow lateral pan from left to right across the product, steady horizon.",
    "tilt-up": "Slow tilt up from the base of the product to its top, steady, no cuts.",
}

# Keeps the product itself as photographed: ads must show what the customer receives.
FIDELITY_CLAUSE = "Keep the product's shape, colors, text and logo exactly as in the first frame."


def build_prompt(product: str, brand_prompt: str, camera_motion: str, max_chars: int = 1000) -> str:
    """One prompt: product, brand look, camera motion, fidelity clause; cut to ``max_chars``."""
    if camera_motion not in CAMERA_MOTIONS:
        raise ConfigError(
            f"unknown camera_motion '{camera_motion}' (video.camera_motion or the brand's video: mapping); "
            f"use one of: {', '.join(CAMERA_MOTIONS)}"
        )
    parts = [p.strip().rstrip(".") + "." for p in (product, brand_prompt) if p and p.strip()]
    parts += [CAMERA_MOTIONS[camera_motion], FIDELITY_CLAUSE]
    text = " ".join(parts)
    if len(text) > max_chars:  # drop from the product/brand text, never the motion or fidelity clause
        tail = " " + CAMERA_MOTIONS[camera_motion] + " " + FIDELITY_CLAUSE
        text = text[: max_chars - len(tail)].rstrip() + tail
    return text
