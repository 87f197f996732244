"""Out of GPU memory during a model call: one retry with a lighter memory plan, then a clean stop.

:func:`on_gpu` runs a model call under the card lock. On ``torch.OutOfMemoryError`` it empties the
CUDA cache, reloads the image models with the next lighter plan (:meth:`RunContext.use_lighter_image_plan`)
and calls once more; later products keep the lighter plan. When there is no lighter plan, or the retry
runs out of memory too, it raises :class:`RunStopped`: the run ends with a message naming the setting
to change, and the products finished so far keep their files and ``.done.json`` for the resume.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from packshot.errors import PackshotError
from packshot.extras import loaded
from packshot.memory import PLAN_SETTING, lighter_plan

if TYPE_CHECKING:
    from orchestrator.context import RunContext

log = logging.getLogger(__name__)
T = TypeVar("T")


class RunStopped(PackshotError):
    """Stop the whole run (not one product): retrying the next product would fail the same way."""


def _is_oom(exc: BaseException) -> bool:
    torch = loaded("torch")  # no torch imported, no torch out-of-memory (and a lean install has none)
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


def empty_cache() -> None:
    gc.collect()
    torch = loaded("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def advice(ctx: RunContext, plan: str) -> str:
    """What to change after running out of memory with ``plan``."""
    setting = PLAN_SETTING["image"]
    lighter = lighter_plan(plan)
    if lighter and getattr(ctx.generator, "generated", False):
        return f"set {setting}={lighter}, or run this card alone (no other process on it)"
    from stages.segment.settings import embed_batch_size

    batch = embed_batch_size(ctx.settings.segment, ctx.device)
    sam = (f"lower PACKSHOT_SEGMENT__BATCH_SIZE (now {batch}) or PACKSHOT_SEGMENT__SAM_MODEL_TYPE; "
           if batch > 1 and getattr(ctx.segmenter, "name", "") == "sam" else "")
    return (f"{sam}use a card with more free memory, or stop the other processes on it "
            f"(`packshot plan` shows what each plan needs; {setting}={plan} was the lightest tried)")


def on_gpu(ctx: RunContext, call: Callable[[], T], *, shared_state: bool = False,
           what: str = "model call") -> T:
    """``call()`` under the card lock, retried once with a lighter memory plan after running out of memory."""
    plan = ctx.image_plan
    try:
        with ctx.gpu(shared_state=shared_state):
            return call()
    except Exception as exc:
        if not _is_oom(exc):
            raise
        log.warning("%s ran out of GPU memory with memory plan %s", what, plan)
    empty_cache()
    with ctx.gpu(shared_state=shared_state):
        lighter = ctx.use_lighter_image_plan()
        if lighter is None:
            raise RunStopped(f"out of GPU memory in the {what} with memory plan {plan}, and no lighter plan "
                             f"applies: {advice(ctx, plan)}. Finished products are kept; run again to resume")
        try:
            return call()
        except Exception as exc:
            if not _is_oom(exc):
                raise
    empty_cache()
    raise RunStopped(f"out of GPU memory in the {what} again after switching to memory plan {lighter}: "
                     f"{advice(ctx, lighter)}. Finished products are kept; run again to resume")
