"""`music-aug train` under a launcher: two real processes (torchrun, gloo on the CPU).

One process per GPU is how the trainer runs at scale (docs/training.md, "Launching on
GPUs"); here the two processes are CPU ranks of a real ``torch.distributed`` group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from music_aug.conversation import PreferencePair
from music_aug.reward.data import tokenize_pairs

from .conftest import tiny_model


def _train(argv: list[str], processes: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += [f"--nproc_per_node={processes}", "-m", "music_aug.cli", "train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*launcher, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_two_processes_split_the_data_and_report_the_tokens_of_both(
    tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path
) -> None:
    base = tmp_path / "base"
    tiny_model("llama", tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    rows = [pair.to_trl() for pair in hh_pairs]  # 16 pairs
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    features, _ = tokenize_pairs(rows, tokenizer, max_length=256)
    every_token = sum(len(f.chosen_ids) + len(f.rejected_ids) for f in features)

    common = ["--model", str(base), "--data", str(data), "--max-length", "256"]
    common += ["--epochs", "1", "--learning-rate", "1e-3", "--no-progress", "--seed", "3"]
    common += ["--logging-steps", "1", "--eval-data", str(data)]
    # one epoch: 2 processes x 2 pairs x 4 steps, or 1 process x 4 pairs x 4 steps
    two = _train([*common, "--batch-size", "2", "--output", "two"], 2, tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    one = _train([*common, "--batch-size", "4", "--output", "one"], 1, tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]

    runs = {
        name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("two", "one")
    }
    for run in runs.values():
        metrics = run["metrics"]
        # every pair once, both sides in full, counted over all processes
        assert metrics["train_real_tokens"] == every_token
        assert metrics["epoch"] == pytest.approx(1.0)
        steps = [entry for entry in run["log_history"] if "loss" in entry]
        assert len(steps) == 4 and steps[-1]["tokens_seen"] == every_token
    assert two.stdout.count("saved to") == 1  # the main process writes and reports
    assert runs["two"]["metrics"]["eval_loss"] > 0


@pytest.mark.slow
def test_random_batches_train_the_same_on_one_and_two_processes(
    tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path
) -> None:
    """Without length grouping, each of 2 processes takes half of each 1-process batch and
    DDP averages the two halves' gradients: the same steps, losses and eval metrics."""
    base = tmp_path / "base"
    tiny_model("llama", tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p.to_trl()) + "\n" for p in hh_pairs), encoding="utf-8")
    common = ["--model", str(base), "--data", str(data), "--eval-data", str(data)]
    common += ["--max-length", "256", "--epochs", "1", "--learning-rate", "1e-3", "--seed", "3"]
    common += ["--logging-steps", "1", "--no-progress", "--no-group-by-length"]
    two = _train([*common, "--batch-size", "2", "--output", "two"], 2, tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    one = _train([*common, "--batch-size", "4", "--output", "one"], 1, tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    runs = {
        name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("two", "one")
    }
    losses = {
        name: [entry["loss"] for entry in run["log_history"] if "loss" in entry]
        for name, run in runs.items()
    }
    assert len(losses["one"]) == 4 and losses["two"] == pytest.approx(losses["one"], abs=1e-5)
    for key in ("eval_loss", "eval_accuracy", "eval_margin", "train_real_tokens"):
        assert runs["two"]["metrics"][key] == pytest.approx(runs["one"]["metrics"][key], abs=1e-5)
