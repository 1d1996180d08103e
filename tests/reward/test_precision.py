"""Half-precision weights that an optimizer steps in place, and bf16 without a bf16 device."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from music_aug.conversation import PreferencePair  # noqa: E402
from music_aug.errors import ConfigError  # noqa: E402
from music_aug.reward.config import RewardTrainingConfig  # noqa: E402
from music_aug.reward.precision import frozen_update_fraction  # noqa: E402
from music_aug.reward.training import train_reward_model  # noqa: E402

from .conftest import tiny_model  # noqa: E402


def _weights(dtype: Any) -> Any:
    """Gemma-2-like weights: normal with std 0.02."""
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(512, 256, generator=generator) * 0.02).to(dtype).requires_grad_()


@pytest.mark.parametrize(("lr", "low", "high"), [(2e-6, 0.9, 1.0), (1e-3, 0.0, 0.01)])
def test_the_fraction_predicts_what_one_adamw_step_leaves_unchanged(
    lr: float, low: float, high: float
) -> None:
    weights = _weights(torch.bfloat16)
    before = weights.detach().clone()
    predicted, count = frozen_update_fraction([weights], lr)
    assert count == weights.numel() and low <= predicted <= high

    weights.grad = torch.randn(weights.shape, generator=torch.Generator().manual_seed(1)).to(
        torch.bfloat16
    )
    torch.optim.AdamW([weights], lr=lr, weight_decay=0.0).step()  # first step: lr * sign(g)
    observed = torch.eq(weights.detach(), before).float().mean().item()
    assert observed == pytest.approx(predicted, abs=0.03)


def test_float32_and_frozen_weights_are_not_counted() -> None:
    frozen = _weights(torch.bfloat16).requires_grad_(False)
    assert frozen_update_fraction([_weights(torch.float32), frozen], 2e-6) == (0.0, 0)
    fraction, count = frozen_update_fraction([_weights(torch.float16)], 2e-6)
    assert count == 512 * 256 and fraction > 0.5  # fp16 keeps 11 bits: still most


def _config(output: Path, **overrides: Any) -> RewardTrainingConfig:
    values: dict[str, Any] = {
        "model": "tiny", "output_dir": str(output), "max_length": 256,
        "per_device_batch_size": 2, "max_steps": 1, "warmup_ratio": 0.0,
        "lr_scheduler": "constant", "disable_tqdm": True,
    }  # fmt: skip
    values.update(overrides)
    return RewardTrainingConfig(**values)


@pytest.mark.parametrize(
    ("dtype", "lr", "warns"),
    [(torch.bfloat16, 2e-6, True), (torch.bfloat16, 3e-2, False), (torch.float32, 2e-6, False)],
    ids=["bf16-paper-lr", "bf16-large-lr", "float32"],
)
def test_training_half_precision_weights_warns_when_steps_vanish(
    dtype: Any, lr: float, warns: bool, tokenizer: Any, hh_pairs: list[PreferencePair],
    tmp_path: Path, caplog: Any,
) -> None:  # fmt: skip
    model = tiny_model("llama", tokenizer).to(dtype)
    config = _config(tmp_path / "rm", learning_rate=lr)
    with caplog.at_level(logging.WARNING, logger="music_aug.reward.precision"):
        result = train_reward_model(
            config, hh_pairs[:2], model=model, tokenizer=tokenizer, save=False
        )
    warnings = [r.getMessage() for r in caplog.records if r.name == "music_aug.reward.precision"]
    fraction = result.metrics.get("train_frozen_update_fraction")
    if dtype == torch.float32:
        assert fraction is None and not warnings
        return
    assert fraction is not None and (fraction > 0.5) is warns
    assert bool(warnings) is warns
    if warns:
        assert "bfloat16" in warnings[0] and f"lr={lr:g}" in warnings[0]
        assert "--dtype float32" in warnings[0] and "LoRA" in warnings[0]


def test_bf16_without_a_bf16_device_is_a_config_error(
    tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path
) -> None:
    from transformers.utils import is_torch_bf16_gpu_available

    if is_torch_bf16_gpu_available():
        pytest.skip("this machine trains in bf16")
    with pytest.raises(ConfigError, match=r"bf16=True.*--no-bf16"):
        train_reward_model(_config(tmp_path / "rm", bf16=True), hh_pairs[:2],
                           model=tiny_model("llama", tokenizer), tokenizer=tokenizer)  # fmt: skip


def test_a_sharded_dtensor_is_read_as_its_local_shard(tmp_path: Path) -> None:
    """FSDP2 hands the optimizer DTensors; the check reads this process's shard."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    if dist.is_initialized():
        pytest.skip("a process group is already running")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)  # fmt: skip
    try:
        mesh = init_device_mesh("cpu", (1,))
        weights = _weights(torch.bfloat16)
        sharded = torch.nn.Parameter(distribute_tensor(weights.detach(), mesh, [Shard(0)]))
        assert frozen_update_fraction([sharded], 2e-6) == frozen_update_fraction([weights], 2e-6)
    finally:
        dist.destroy_process_group()
