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

from .conftest import saved_tiny_model


def _train(argv: list[str], processes: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += [f"--nproc_per_node={processes}", "-m", "music_aug.cli", "train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*launcher, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _two_and_one(
    tokenizer: Any, pairs: list[PreferencePair], tmp_path: Path, *options: str
) -> dict[str, Any]:
    """One epoch over ``pairs`` (16) with the same total batch: 2 processes x 2 pairs
    ("two") and 1 process x 4 pairs ("one"); their ``metrics.json`` plus ``stdout``. The
    eval set is 15 of the pairs, which 2 processes cannot split evenly."""
    base = saved_tiny_model(tokenizer, tmp_path / "base")
    data, heldout = tmp_path / "pairs.jsonl", tmp_path / "heldout.jsonl"
    data.write_text("".join(json.dumps(p.to_trl()) + "\n" for p in pairs), encoding="utf-8")
    heldout.write_text("".join(json.dumps(p.to_trl()) + "\n" for p in pairs[1:]), "utf-8")
    common = ["--model", str(base), "--data", str(data), "--eval-data", str(heldout)]
    common += ["--max-length", "256", "--epochs", "1", "--learning-rate", "1e-3", "--seed", "3"]
    common += ["--logging-steps", "1", "--no-progress", *options]
    runs = {}
    for name, processes, batch in (("two", 2, "2"), ("one", 1, "4")):
        done = _train([*common, "--batch-size", batch, "--output", name], processes, tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
        runs[name]["stdout"] = done.stdout
    return runs


@pytest.mark.slow
def test_two_processes_split_the_data_and_report_the_tokens_of_both(
    tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path
) -> None:
    features, _ = tokenize_pairs(hh_pairs, tokenizer, max_length=256)
    every_token = sum(len(f.chosen_ids) + len(f.rejected_ids) for f in features)
    runs = _two_and_one(tokenizer, hh_pairs, tmp_path)
    for run in runs.values():
        metrics = run["metrics"]
        # every pair once, both sides in full, counted over all processes
        assert metrics["train_real_tokens"] == every_token
        assert metrics["epoch"] == pytest.approx(1.0)
        steps = [entry for entry in run["log_history"] if "loss" in entry]
        assert len(steps) == 4 and steps[-1]["tokens_seen"] == every_token
    assert runs["two"]["stdout"].count("saved to") == 1  # the main process reports
    assert runs["two"]["metrics"]["eval_loss"] > 0


@pytest.mark.slow
def test_random_batches_train_the_same_on_one_and_two_processes(
    tokenizer: Any, hh_pairs: list[PreferencePair], tmp_path: Path
) -> None:
    """Without length grouping, each of 2 processes takes half of each 1-process batch and
    DDP averages the two halves' gradients: the same steps, losses and eval metrics."""
    runs = _two_and_one(tokenizer, hh_pairs, tmp_path, "--no-group-by-length")
    losses = {
        name: [entry["loss"] for entry in run["log_history"] if "loss" in entry]
        for name, run in runs.items()
    }
    assert len(losses["one"]) == 4 and losses["two"] == pytest.approx(losses["one"], abs=1e-5)
    # the eval set gathered from both processes holds each of the 15 pairs once
    for key in ("eval_loss", "eval_accuracy", "eval_margin", "eval_reward_std"):
        assert runs["two"]["metrics"][key] == pytest.approx(runs["one"]["metrics"][key], abs=1e-5)
    assert (
        runs["two"]["metrics"]["train_real_tokens"] == runs["one"]["metrics"]["train_real_tokens"]
    )
