"""`music-aug train` and `music-aug score` end to end on a tiny local model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from music_aug.cli import main
from music_aug.conversation import PreferencePair

from .conftest import saved_tiny_model


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_train_then_score(
    tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path, capsys: Any
) -> None:
    base = saved_tiny_model(tokenizer, tmp_path / "base")
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", [p.to_trl() for p in hh_pairs[:8]])
    status = main(
        [
            "train", "--model", str(base), "--data", str(pairs), "--eval-data", str(pairs),
            "--output", str(tmp_path / "rm"), "--max-steps", "3", "--batch-size", "4",
            "--learning-rate", "1e-3", "--max-length", "256", "--truncation", "truncate_left",
            "--seed", "1", "--no-progress",
        ]
    )  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    assert "truncation (train): 8/8 pairs kept" in out and "eval_accuracy" in out
    saved = json.loads((tmp_path / "rm" / "training_config.json").read_text())
    assert saved["truncation"] == "truncate_left" and saved["seed"] == 1
    assert saved["max_steps"] == 3 and saved["per_device_batch_size"] == 4
    # no --attn-implementation: the hardware default runs (packed, no padding on CPU)
    metrics = json.loads((tmp_path / "rm" / "metrics.json").read_text())["metrics"]
    assert metrics["attn_implementation"] == "segmented_varlen"
    assert metrics["train_padding_fraction"] == 0.0 and saved["attn_implementation"] is None
    assert 0.0 < metrics["train_shared_prefix_fraction"] < 1.0  # shared prefixes held once

    scored = tmp_path / "scored.jsonl"
    assert (
        main(["score", "--model", str(tmp_path / "rm"), "--data", str(pairs), "-o", str(scored)])
        == 0
    )
    rows = [json.loads(line) for line in scored.read_text().splitlines()]
    assert len(rows) == 8 and all({"reward_chosen", "reward_rejected"} <= set(r) for r in rows)

    conversations = _write_jsonl(
        tmp_path / "conv.jsonl", [{"messages": p.chosen.to_messages()} for p in hh_pairs[:3]]
    )
    assert (
        main(
            [
                "score",
                "--model",
                str(tmp_path / "rm"),
                "--data",
                str(conversations),
                "-o",
                str(scored),
            ]
        )
        == 0
    )
    rewards = [json.loads(line)["reward"] for line in scored.read_text().splitlines()]
    assert rewards == pytest.approx([r["reward_chosen"] for r in rows[:3]], abs=1e-5)


def test_train_without_model_or_preset_is_a_clean_error(tmp_path: Path, capsys: Any) -> None:
    pairs = _write_jsonl(tmp_path / "p.jsonl", [{"chosen": [], "rejected": []}])
    assert main(["train", "--data", str(pairs), "--output", str(tmp_path / "o")]) == 2
    assert "--model" in capsys.readouterr().err


def test_no_share_prefix_computes_both_sides_in_full(
    tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path
) -> None:
    base = saved_tiny_model(tokenizer, tmp_path / "base")
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", [p.to_trl() for p in hh_pairs[:4]])
    argv = ["train", "--model", str(base), "--data", str(pairs), "--max-steps", "1"]
    argv += ["--batch-size", "4", "--max-length", "256", "--no-progress"]
    assert main([*argv, "--output", str(tmp_path / "off"), "--no-share-prefix"]) == 0
    assert main([*argv, "--output", str(tmp_path / "on")]) == 0
    runs = {
        name: json.loads((tmp_path / name / "metrics.json").read_text())["metrics"]
        for name in ("off", "on")
    }
    saved = json.loads((tmp_path / "off" / "training_config.json").read_text())
    assert saved["share_prefix"] is False
    assert runs["off"]["train_shared_prefix_fraction"] == 0.0
    assert runs["on"]["train_shared_prefix_fraction"] > 0.0
    # the same pairs, the same loss: sharing changes what is computed, not the result
    assert runs["on"]["train_loss"] == pytest.approx(runs["off"]["train_loss"], abs=1e-5)
    assert runs["on"]["train_real_tokens"] == runs["off"]["train_real_tokens"]


def test_a_gpu_preset_on_cpu_stops_with_the_fix_and_the_fix_trains(
    tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path, capsys: Any
) -> None:
    from transformers.utils import is_torch_bf16_gpu_available

    if is_torch_bf16_gpu_available():
        pytest.skip("this machine trains the gemma2-9b preset in bf16")
    base = saved_tiny_model(tokenizer, tmp_path / "base")
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", [p.to_trl() for p in hh_pairs[:2]])
    argv = ["train", "--preset", "gemma2-9b", "--model", str(base), "--data", str(pairs)]
    argv += ["--max-steps", "1", "--batch-size", "2", "--grad-accum", "1"]
    argv += ["--max-length", "256", "--no-progress"]
    assert main([*argv, "--output", str(tmp_path / "bf16")]) == 2
    assert "--no-bf16" in capsys.readouterr().err
    assert not (tmp_path / "bf16").exists()

    fixed = tmp_path / "fp32"
    assert main([*argv, "--output", str(fixed), "--no-bf16", "--dtype", "float32"]) == 0
    saved = json.loads((fixed / "training_config.json").read_text())
    assert saved["preset"] == "gemma2-9b" and saved["bf16"] is False
    assert saved["dtype"] == "float32" and saved["learning_rate"] == 2e-6
    metrics = json.loads((fixed / "metrics.json").read_text())["metrics"]
    assert "train_frozen_update_fraction" not in metrics  # float32 weights: nothing rounds away

    # the preset's bfloat16 weights stepped in place at its lr 2e-6: measured and reported
    assert main([*argv, "--output", str(tmp_path / "bf16w"), "--no-bf16"]) == 0
    metrics = json.loads((tmp_path / "bf16w" / "metrics.json").read_text())["metrics"]
    assert metrics["train_frozen_update_fraction"] > 0.5
