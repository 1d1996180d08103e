"""Hardware-dependent training defaults: which attention runs when the user names none.

``music-aug train --model X`` (no ``--attn-implementation``) gets the fastest correct
layout for the machine it runs on; presets only add hyper-parameters on top. The rule
comes from measurements (``benchmarks/RESULTS.md``, issue 14), not from rules of thumb:

* CUDA with ``flash-attn`` installed (>= 2.6 for Gemma-2's soft-capping):
  ``flash_attention_2``, one packed row per batch through its varlen kernels.
* Otherwise (CPU at 1 and 2 threads, GPUs without flash-attn): ``segmented_varlen``,
  padding-free packed batches with one causal SDPA call per sequence
  (``music_aug.reward.varlen``), each pair's shared prefix computed once. On the 2-core CPU
  it beat padded ``sdpa`` batches per real token at both thread counts, because a reward
  model's cost is the linear layers and packing removes every padded position from them;
  holding shared prefixes once removed another ~40% of the positions on HH-RLHF pairs
  (2.65x TRL's tokens/s on the default path). Whether flash-attention without prefix
  sharing still beats it on a GPU is not measured yet
  (``benchmarks/gpu/bench_gemma2.py --attn flash_attention_2,segmented_varlen``), nor
  whether ``segmented_flex`` (the same layout in one FlexAttention call) does without
  flash-attn.

A model passed in memory keeps the attention it was built with. This module does not set
thread counts (torch's default, one thread per core, is what was measured) and does not
load models.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any

from music_aug.reward.varlen import VARLEN_ATTENTION

__all__ = ["default_attention", "flash_attention_usable"]

FLASH_ATTENTION = "flash_attention_2"


def flash_attention_usable(model_type: str) -> bool:
    """Whether ``flash-attn`` is installed and new enough for ``model_type``."""
    if importlib.util.find_spec("flash_attn") is None:
        return False
    if model_type != "gemma2":
        return True
    try:  # logit soft-capping arrived in flash-attn 2.6
        major, minor = (
            int(part) for part in importlib.metadata.version("flash_attn").split(".")[:2]
        )
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (2, 6)


def default_attention(model_type: str, device_type: str, dtype: Any = None) -> str:
    """The attention implementation training uses when the config names none.

    Args:
        model_type: the model config's ``model_type`` ("llama", "gemma2", ...).
        device_type: "cuda", "cpu", "mps", ...
        dtype: the weights' torch dtype; flash-attention needs bf16 or fp16.
    """
    half = dtype is None or str(dtype).rsplit(".", 1)[-1] in ("bfloat16", "float16")
    if device_type == "cuda" and half and flash_attention_usable(model_type):
        return FLASH_ATTENTION
    return VARLEN_ATTENTION
