"""`music-aug train` and `music-aug score`: reward-model training and scoring.

Thin: parses arguments, reads rows with ``music_aug.evaluation.data.read_records`` and
calls ``music_aug.reward``; torch and transformers are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from music_aug.errors import UserInputError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    _register_train(subparsers)
    _register_score(subparsers)


def _register_train(subparsers: Any) -> None:
    from music_aug.reward.config import TRUNCATION_POLICIES
    from music_aug.reward.presets import PRESETS

    parser = subparsers.add_parser(
        "train",
        help="train a Bradley-Terry reward model on preference pairs",
        description="Train a reward model on preference pairs (TRL conversational pairs, "
        "HH-RLHF text, prompt/chosen/rejected...). Launch with `accelerate launch -m "
        "music_aug.cli train ...` for several GPUs (see docs/training.md).",
    )
    parser.add_argument("--data", required=True, help="training pairs (.jsonl/.json/.parquet)")
    parser.add_argument("--eval-data", default=None, help="held-out pairs evaluated at the end")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default=None, help="start from a preset"
    )
    parser.add_argument("--model", default=None, help="model name or path (overrides the preset)")
    parser.add_argument("--output", "-o", required=True, help="output directory")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="pairs per device step")
    parser.add_argument("--grad-accum", type=int, default=None, help="gradient accumulation")
    parser.add_argument("--max-steps", type=int, default=None, help="optimizer steps")
    parser.add_argument("--epochs", type=float, default=None, help="passes over the data")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per conversation")
    parser.add_argument("--truncation", choices=TRUNCATION_POLICIES, default=None)
    parser.add_argument(
        "--repair", action="store_true", default=None, help="drop empty / merge repeated messages"
    )
    parser.add_argument("--margin-column", default=None, help="column with per-pair margins")
    parser.add_argument("--center-rewards", type=float, default=None, help="centering weight")
    parser.add_argument("--lora", action="store_true", default=None, help="train LoRA adapters")
    parser.add_argument("--padding-free", choices=("auto", "on", "off"), default=None)
    parser.add_argument(
        "--no-share-prefix",
        dest="share_prefix",
        action="store_false",
        default=None,
        help="compute a pair's shared conversation prefix twice (default: once, under "
        "segmented_varlen and segmented_flex)",
    )
    parser.add_argument(
        "--no-group-by-length",
        dest="group_by_length",
        action="store_false",
        default=None,
        help="random batches instead of length-grouped ones (each process then gets its "
        "share of the one-process batches: the same training under any process count)",
    )
    parser.add_argument(
        "--attn-implementation",
        default=None,
        help="eager, sdpa, flash_attention_2, segmented_varlen, segmented_flex or "
        "flex_attention (the flex ones train on CUDA only) "
        "(default: the fastest for the hardware: flash_attention_2 on CUDA with flash-attn, "
        "else segmented_varlen)",
    )
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 mixed precision (needs a GPU with bf16; default: the preset's, else off)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16", "auto"),
        default=None,
        help="dtype the weights load in (default: the preset's, else float32); with "
        "bfloat16 weights, one process steps them without float32 master copies",
    )
    parser.add_argument("--logging-steps", type=int, default=None)
    parser.add_argument("--eval-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=_run_train)


def _register_score(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "score",
        help="add rewards to conversation or preference rows",
        description="Score rows with a trained reward model: conversation rows get `reward`, "
        "preference rows get `reward_chosen` and `reward_rejected`.",
    )
    parser.add_argument("--model", required=True, help="reward model directory (or hub id)")
    parser.add_argument("--data", required=True, help="rows to score (.jsonl/.json/.parquet)")
    parser.add_argument("--output", "-o", required=True, help="output .jsonl")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--max-length", type=int, default=None, help="default: as trained")
    parser.add_argument(
        "--repair", action="store_true", help="drop empty / merge repeated messages"
    )
    parser.set_defaults(handler=_run_score)


def _padding_free(value: str | None) -> bool | str | None:
    choices: dict[str, bool | str] = {"auto": "auto", "on": True, "off": False}
    return None if value is None else choices[value]


def _run_train(args: argparse.Namespace) -> int:
    from music_aug.evaluation.data import read_records
    from music_aug.reward.presets import preset_config
    from music_aug.reward.training import train_reward_model

    config = preset_config(
        args.preset,
        world_size=_world_size(),
        model=args.model,
        output_dir=args.output,
        learning_rate=args.learning_rate,
        per_device_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        max_steps=args.max_steps,
        num_epochs=args.epochs,
        max_length=args.max_length,
        truncation=args.truncation,
        margin_column=args.margin_column,
        repair=args.repair,
        center_rewards_coefficient=args.center_rewards,
        lora=args.lora,
        padding_free=_padding_free(args.padding_free),
        share_prefix=args.share_prefix,
        group_by_length=args.group_by_length,
        attn_implementation=args.attn_implementation,
        bf16=args.bf16,
        dtype=args.dtype,
        logging_steps=args.logging_steps,
        eval_steps=args.eval_steps,
        seed=args.seed,
        disable_tqdm=True if args.no_progress else None,
    )
    train_rows = read_records(args.data)
    eval_rows = read_records(args.eval_data) if args.eval_data else None
    result = train_reward_model(config, train_rows, eval_rows)
    if _rank() != 0:  # under a launcher, the main process reports (its metrics are global)
        return 0
    print(f"truncation (train): {result.truncation.format()}")
    if result.eval_truncation is not None:
        print(f"truncation (eval):  {result.eval_truncation.format()}")
    for key in sorted(result.metrics):
        value = result.metrics[key]
        print(f"  {key:<34} {value:.6g}" if isinstance(value, float) else f"  {key:<34} {value}")
    print(f"saved to {config.output_dir}")
    return 0


def _world_size() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


def _run_score(args: argparse.Namespace) -> int:
    from music_aug.conversation import Conversation, PreferencePair
    from music_aug.evaluation.data import read_records
    from music_aug.formats import detect_pair_format
    from music_aug.reward.scoring import RewardModel

    rows = read_records(args.data)
    model = RewardModel.from_pretrained(args.model, device=args.device, max_length=args.max_length)
    is_pair = _looks_like_pairs(rows[0], detect_pair_format)
    if is_pair:
        pairs = [
            PreferencePair.from_record(row, repair=args.repair, row=i) for i, row in enumerate(rows)
        ]
        chosen, rejected = model.score_pairs(pairs, batch_size=args.batch_size)
        out = [
            {**row, "reward_chosen": c, "reward_rejected": r}
            for row, c, r in zip(rows, chosen, rejected, strict=True)
        ]
    else:
        conversations = [
            Conversation.from_record(row, repair=args.repair, row=i) for i, row in enumerate(rows)
        ]
        rewards = model.score(conversations, batch_size=args.batch_size)
        out = [{**row, "reward": r} for row, r in zip(rows, rewards, strict=True)]
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in out:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    kind = "preference pairs" if is_pair else "conversations"
    print(f"scored {len(out)} {kind} -> {path}", file=sys.stderr)
    return 0


def _looks_like_pairs(row: dict[str, Any], detect: Any) -> bool:
    if "chosen" not in row and "rejected" not in row:
        return False
    try:
        detect(row, row=0)
    except UserInputError:
        return False
    return True
