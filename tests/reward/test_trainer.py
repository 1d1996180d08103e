"""Training tiny Llama and Gemma-2 reward models on real HH-RLHF pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from music_aug.conversation import PreferencePair  # noqa: E402
from music_aug.reward.config import RewardTrainingConfig  # noqa: E402
from music_aug.reward.scoring import RewardModel  # noqa: E402
from music_aug.reward.training import train_reward_model  # noqa: E402

from .conftest import tiny_model  # noqa: E402


def _config(output: Path, **overrides: Any) -> RewardTrainingConfig:
    values: dict[str, Any] = {
        "model": "tiny",
        "output_dir": str(output),
        "max_length": 384,
        "learning_rate": 3e-3,
        "per_device_batch_size": 4,
        "max_steps": 40,
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",
        "logging_steps": 10,
        "disable_tqdm": True,
    }
    values.update(overrides)
    return RewardTrainingConfig(**values)


@pytest.mark.parametrize(
    ("kind", "padding_free", "attn"),
    [("llama", False, None), ("gemma2", True, None), ("llama", "auto", "segmented_varlen")],
    ids=["llama-padded", "gemma2-packed-rows", "llama-segmented-varlen"],
)
def test_overfits_sixteen_real_pairs(
    kind: str,
    padding_free: bool | str,
    attn: str | None,
    tokenizer: Any,
    gemma_tokenizer: Any,
    hh_pairs: list[PreferencePair],
    tmp_path: Path,
) -> None:
    tok = gemma_tokenizer if kind == "gemma2" else tokenizer
    model = tiny_model(kind, tok)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = _config(tmp_path / "rm", padding_free=padding_free, attn_implementation=attn)
    result = train_reward_model(config, hh_pairs, model=model, tokenizer=tok)

    changed = [n for n, p in result.model.named_parameters() if not torch.equal(p, before[n])]
    assert "score.weight" in changed
    assert len(changed) == len(before)  # every parameter moved
    losses = [entry["loss"] for entry in result.log_history if "loss" in entry]
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.5
    padding = [e["padding_fraction"] for e in result.log_history if "loss" in e]
    assert all(0.0 <= fraction < 1.0 for fraction in padding)
    if attn == "segmented_varlen":
        assert padding == [0.0] * 4  # one packed row per batch, no padding at all
        shared = [e["shared_prefix_fraction"] for e in result.log_history if "loss" in e]
        assert all(0.0 < fraction < 1.0 for fraction in shared)  # prefixes held once
    else:
        assert all("shared_prefix_fraction" not in e for e in result.log_history)
    assert result.metrics["train_real_tokens"] > 0

    scorer = RewardModel(result.model, tok, max_length=config.max_length)
    chosen, rejected = scorer.score_pairs(hh_pairs)
    accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(hh_pairs)
    assert accuracy > 0.9

    # save -> load -> identical scores; the directory is a plain transformers checkpoint
    reloaded = RewardModel.from_pretrained(tmp_path / "rm", device="cpu")
    assert reloaded.max_length == 384
    chosen2, rejected2 = reloaded.score_pairs(hh_pairs)
    assert chosen2 == pytest.approx(chosen, abs=1e-5)
    assert rejected2 == pytest.approx(rejected, abs=1e-5)
    metrics = json.loads((tmp_path / "rm" / "metrics.json").read_text())
    assert metrics["truncation"]["pairs_out"] == 16
    saved = json.loads((tmp_path / "rm" / "training_config.json").read_text())
    assert saved["padding_free"] == padding_free

    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    assert plain.config.num_labels == 1


def test_eval_set_and_margin_centering(
    tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path
) -> None:
    rows = [{**pair.to_trl(), "m": 0.5} for pair in hh_pairs[:8]]
    config = _config(
        tmp_path / "rm",
        max_steps=4,
        margin_column="m",
        center_rewards_coefficient=0.01,
        logging_steps=2,
    )
    model = tiny_model("llama", tokenizer)
    result = train_reward_model(
        config, rows, rows[:4], model=model, tokenizer=tokenizer, save=False
    )
    assert result.output_dir is None and not (tmp_path / "rm" / "metrics.json").exists()
    for key in ("eval_loss", "eval_accuracy", "eval_margin", "eval_reward_mean", "eval_reward_std"):
        assert key in result.metrics
    assert result.eval_truncation is not None and result.eval_truncation.pairs_out == 4


def test_length_grouped_sampler_is_deterministic_and_groups() -> None:
    from music_aug.reward.trainer import LengthGroupedPairSampler

    lengths = [((i * 37) % 101) + 1 for i in range(400)]
    first = list(LengthGroupedPairSampler(lengths, 8, 10, seed=3))
    assert sorted(first) == list(range(400))
    assert first == list(LengthGroupedPairSampler(lengths, 8, 10, seed=3))
    sampler = LengthGroupedPairSampler(lengths, 8, 10, seed=3)
    assert list(sampler) != list(sampler)  # a new permutation every epoch

    def padding(order: list[int]) -> float:
        batches = [order[i : i + 8] for i in range(0, len(order), 8)]
        total = sum(max(lengths[i] for i in b) * len(b) for b in batches)
        return 1 - sum(lengths) / total

    random_order = torch.randperm(400, generator=torch.Generator().manual_seed(0)).tolist()
    assert padding(first) < 0.1 < padding(random_order)


def test_presets() -> None:
    from music_aug.errors import ConfigError
    from music_aug.reward.presets import preset_config

    gemma = preset_config("gemma2-9b", output_dir="x")
    assert gemma.model == "google/gemma-2-9b-it" and gemma.bf16 and gemma.gradient_checkpointing
    assert gemma.learning_rate == 2e-6 and gemma.max_length == 2048
    assert gemma.effective_batch_size() == 64
    assert preset_config("gemma2-9b", world_size=8).effective_batch_size(8) == 64
    smol = preset_config("smollm2-135m-cpu", max_steps=5)
    assert smol.resolved_padding_free() and smol.max_steps == 5 and smol.dtype == "float32"
    assert preset_config(None, model="some/model").preset is None
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("gpt-5")
    with pytest.raises(ConfigError, match="learning_rate"):
        preset_config(None, model="m", learning_rate=-1.0)


def test_lora_trains_adapters_and_head_and_saves_merged(
    tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    model = tiny_model("llama", tokenizer)
    base = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = _config(tmp_path / "rm", lora=True, lora_r=4, max_steps=6, learning_rate=1e-2)
    result = train_reward_model(config, hh_pairs[:8], model=model, tokenizer=tokenizer)
    merged = dict(result.model.named_parameters())
    assert set(merged) == set(base)  # adapters merged away: a plain model again
    assert not torch.equal(merged["score.weight"], base["score.weight"])  # head trained
    assert not torch.equal(
        merged["model.layers.0.self_attn.q_proj.weight"],
        base["model.layers.0.self_attn.q_proj.weight"],
    )
    assert torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    scores = RewardModel(result.model, tokenizer).score_pairs(hh_pairs[:4])
    reloaded = RewardModel.from_pretrained(tmp_path / "rm", device="cpu").score_pairs(hh_pairs[:4])
    assert reloaded[0] == pytest.approx(scores[0], abs=1e-5)


def test_sampler_seed_matters_when_everything_fits_in_one_mega_batch() -> None:
    """Regression: 130 pairs, batch 8, factor 50 -> one mega-batch; the seed must still count."""
    from music_aug.reward.trainer import LengthGroupedPairSampler

    lengths = [((i * 37) % 101) + 10 for i in range(130)]  # 16 full batches + a partial one
    orders = [list(LengthGroupedPairSampler(lengths, 8, 50, seed=s)) for s in (0, 1)]
    assert orders[0] != orders[1]
    for order in orders:
        assert sorted(order) == list(range(130))
        batches = [order[k : k + 8] for k in range(0, 130, 8)]
        assert max(lengths[i] for i in batches[0]) == max(lengths)  # longest batch first
        assert len(batches[-1]) == 2  # the one partial batch is last
        spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
        assert max(spans) <= 8  # batches are cut from the sorted mega-batch


@pytest.mark.parametrize(
    ("attn", "share_prefix", "expected"),
    [
        ("segmented_varlen", True, True),
        ("segmented_varlen", False, False),
        ("segmented_flex", True, True),  # the same layout in one flex call (CUDA)
        ("flash_attention_2", True, False),  # cu_seqlens from position restarts at 0 only
        ("flex_attention", True, False),  # its block mask splits at every restart
        ("sdpa", True, False),
    ],
)
def test_shared_prefix_only_under_the_segmented_attentions(
    attn: str, share_prefix: bool, expected: bool, tmp_path: Path
) -> None:
    from music_aug.reward.trainer import make_collator

    config = _config(tmp_path, attn_implementation=attn, share_prefix=share_prefix)
    assert make_collator(config, 0).share_prefix is expected


@pytest.mark.parametrize("attn", ["segmented_flex", "flex_attention"])
def test_flex_attentions_refuse_to_train_without_cuda(
    attn: str, tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path
) -> None:
    from music_aug.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("on CUDA the flex attentions train")
    config = _config(tmp_path / "rm", attn_implementation=attn)
    with pytest.raises(ConfigError, match=r"CUDA only.*segmented_varlen"):
        train_reward_model(config, hh_pairs[:4], model=tiny_model("llama", tokenizer),
                           tokenizer=tokenizer)  # fmt: skip


@pytest.mark.parametrize("kind", ["llama", "gemma2"])
def test_gradient_checkpointing_trains_the_shared_prefix_layout_the_same(
    kind: str, tokenizer: Any, gemma_tokenizer: Any, hh_pairs: list[PreferencePair],
    tmp_path: Path,
) -> None:  # fmt: skip
    """The gemma2-9b preset checkpoints activations: the recomputed forward must read the
    same packed layout (cached on ``position_ids``), so losses and weights match a run
    that keeps its activations."""
    tok = gemma_tokenizer if kind == "gemma2" else tokenizer
    runs, forwards = {}, {}
    for checkpointing in (False, True):
        config = _config(
            tmp_path / str(checkpointing), attn_implementation="segmented_varlen",
            gradient_checkpointing=checkpointing, max_steps=3, logging_steps=1,
            learning_rate=1e-3,
        )  # fmt: skip
        model = tiny_model(kind, tok)
        calls: list[int] = []  # the first attention's forwards: twice a step if recomputed
        model.model.layers[0].self_attn.register_forward_hook(lambda *_, seen=calls: seen.append(1))
        result = train_reward_model(config, hh_pairs[:12], model=model, tokenizer=tok, save=False)
        assert result.metrics["train_shared_prefix_fraction"] > 0
        runs[checkpointing], forwards[checkpointing] = result, len(calls)
    assert forwards == {False: 3, True: 6}
    losses = {k: [e["loss"] for e in r.log_history if "loss" in e] for k, r in runs.items()}
    assert len(losses[True]) == 3 and losses[True] == pytest.approx(losses[False], abs=1e-5)
    plain = dict(runs[False].model.named_parameters())
    for name, parameter in runs[True].model.named_parameters():
        torch.testing.assert_close(parameter, plain[name], atol=1e-5, rtol=1e-4)
