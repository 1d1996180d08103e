"""The attention ``music-aug train --model X`` picks on its own (issue 14)."""

from __future__ import annotations

import importlib.util

import pytest

from music_aug.reward.autotune import default_attention, flash_attention_usable


@pytest.mark.parametrize("model_type", ["llama", "gemma2"])
def test_cpu_default_is_padding_free_segmented_varlen(model_type: str) -> None:
    assert default_attention(model_type, "cpu") == "segmented_varlen"
    assert default_attention(model_type, "cpu", "torch.bfloat16") == "segmented_varlen"


def test_cuda_uses_flash_attention_only_when_installed_and_half_precision() -> None:
    installed = importlib.util.find_spec("flash_attn") is not None
    expected = "flash_attention_2" if installed else "segmented_varlen"
    assert flash_attention_usable("llama") is installed
    assert default_attention("llama", "cuda", "torch.bfloat16") == expected
    # flash-attention kernels have no fp32 path
    assert default_attention("llama", "cuda", "torch.float32") == "segmented_varlen"
