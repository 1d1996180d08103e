"""Mixed-precision checks: bf16 needs a device that has it, and small updates to bf16 or
fp16 weights that the optimizer steps in place are rounded away.

A bfloat16 number keeps 8 significant bits, so adding anything below about 1/512 of a
weight's magnitude leaves it unchanged. AdamW moves every weight by about the learning
rate per step, so with Gemma-2-9B-like weights (|w| ~ 0.02) and the paper's lr 2e-6
almost no weight moves when the optimizer updates bf16 weights directly: one process,
or DDP, with a model loaded in bf16. FSDP under accelerate (which upcasts the shards to
float32 when mixed precision is on) and DeepSpeed (whose optimizer holds float32 master
weights) do not have the problem, nor do float32 weights under ``bf16=True`` autocast.

This module measures and reports; it does not change dtypes or create master weights.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from music_aug.errors import ConfigError

__all__ = ["frozen_update_fraction", "require_bf16_device", "warn_if_updates_vanish"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 22  # elements per comparison, so a 9B model's embedding needs no full copy
WARN_ABOVE = 0.01  # fraction of weights a step cannot change, above which we warn


def _half_precision(parameters: Iterable[Any]) -> list[Any]:
    """The trainable bfloat16 and float16 tensors among ``parameters``."""
    import torch

    half = (torch.bfloat16, torch.float16)
    return [p for p in parameters if p.requires_grad and p.dtype in half]


def frozen_update_fraction(parameters: Iterable[Any], step: float) -> tuple[float, int]:
    """Of the trainable bf16/fp16 weights, the fraction a change of ``step`` rounds away.

    Args:
        parameters: tensors (the optimizer's); float32 and frozen ones are skipped.
        step: the change per optimizer step (AdamW: about the learning rate).

    Returns:
        ``(fraction, count)``: the fraction of the half-precision elements ``w`` with
        ``|w| + step == |w|`` in their own dtype, and how many elements were checked
        (of a sharded ``DTensor``, this process's shard).
    """
    import torch

    unchanged, total = 0, 0
    with torch.no_grad():
        for parameter in _half_precision(parameters):
            local = parameter.to_local() if hasattr(parameter, "to_local") else parameter
            flat = local.detach().reshape(-1)  # a DTensor (FSDP2): this process's shard
            for start in range(0, flat.numel(), _CHUNK):
                part = flat[start : start + _CHUNK].abs()
                unchanged += int(torch.eq(part + step, part).sum())
            total += flat.numel()
    return (unchanged / total if total else 0.0), total


def warn_if_updates_vanish(optimizer: Any, learning_rate: float) -> float | None:
    """Log a warning when ``optimizer`` steps half-precision weights that its learning rate
    cannot change; return the measured fraction (``None``: no half-precision weights)."""
    parameters = _half_precision(p for group in optimizer.param_groups for p in group["params"])
    if not parameters:
        return None
    fraction, count = frozen_update_fraction(parameters, learning_rate)
    if fraction > WARN_ABOVE:
        dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in parameters})
        logger.warning(
            "the optimizer updates %d %s weights in place (no float32 master copy): a step "
            "of lr=%g cannot change %.1f%% of them, so they will barely train. Load the model "
            "in float32 (dtype='float32' / --dtype float32; bf16=True still computes in "
            "bfloat16), train with FSDP or DeepSpeed (both keep float32 weights for the "
            "optimizer), or use LoRA",
            count,
            "/".join(dtypes),
            learning_rate,
            100 * fraction,
        )
    return fraction


def require_bf16_device() -> None:
    """Raise ``ConfigError`` unless a device here can train in bfloat16 (the same test as
    ``transformers.TrainingArguments``, whose own error does not say what to change)."""
    from transformers.utils import is_torch_bf16_gpu_available, is_torch_xla_available

    if is_torch_bf16_gpu_available() or is_torch_xla_available():
        return
    raise ConfigError(
        "bf16=True (bfloat16 mixed precision, as in the gemma2-9b preset) needs a GPU with "
        "bfloat16 and none is available here: train in float32 with bf16=False "
        "(--no-bf16, and --dtype float32 for float32 weights), or use the "
        "smollm2-135m-cpu preset"
    )
