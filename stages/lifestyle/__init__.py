"""Lifestyle scenes in a brand's style (scene prompts, palette, optional LoRA).

``plan_scenes(product, brand)`` returns one :class:`~packshot.schemas.scenes.ScenePlan` per scene; the
background stage renders each (``render_background(..., scene=plan)``, ``kind="scene"``). Brand styles
themselves are plumbing (:mod:`packshot.schemas.brand`), shared with the background and video stages.
"""

from stages.lifestyle.scenes import plan_scenes

__all__ = ["plan_scenes"]
