"""Gemma-2 reward-model training on one GPU: music_aug's RewardTrainer vs TRL's, with MFU.

A random-init ``Gemma2ForSequenceClassification`` with the Gemma-2-9B shapes (hidden 3584,
16 heads, 8 kv heads, head_dim 256, intermediate 14336, vocab 256000, soft-capping) and
``--layers`` decoder layers trains for ``--steps`` optimizer steps in bf16 on synthetic pairs
(random token ids; chosen and rejected share a prompt, lengths drawn uniformly from
``[--min-length, --max-length]``, seeded), once with each trainer. Printed per side: real
(non-padding) tokens/s, MFU and peak GPU memory, measured over the steps after
``--warmup``. Before training, the script checks that a padding-free (packed) batch and a
padded batch give the same rewards within ``--tolerance``.

MFU = model FLOPs of the real tokens / time / ``--peak-tflops``. Model FLOPs of one sequence
of ``s`` real tokens: ``6 * N * s + 12 * layers * heads * head_dim * s**2`` (the PaLM
convention: forward + backward = 3x the forward's 2 FLOPs per weight and token, plus the
attention score and value products, not discounted for causality), where ``N`` counts the
weights of every matrix multiply a token goes through (all parameters except the input
embedding table; a reward model has no LM head). Padding and activation recomputation
(``--checkpointing``) do not count as useful FLOPs.

Precision: by default the weights are bf16 and the optimizer steps them in place (one
process, no float32 master copy): the fast, memory-light setting, whose small updates are
rounded away at the paper's lr 2e-6 (our trainer warns; ``frozen_update_fraction`` in its
line). ``--weights float32`` keeps float32 weights under bf16 autocast, as FSDP and
DeepSpeed give the optimizer (more optimizer and weight memory; the paper's setting).

Needs torch, transformers and accelerate; music-aug and TRL (and their pure-Python
dependencies) come as wheels, see ``benchmarks/gpu/README.md``. ``--tiny`` shrinks the model
and the sequences so the script runs on a CPU in seconds (``tests/reward/test_gpu_bench.py``).

Usage:
    python benchmarks/gpu/bench_gemma2.py --layers 8 --steps 12 --warmup 2
    python benchmarks/gpu/bench_gemma2.py --tiny      # CPU smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

GEMMA2_9B = {
    "vocab_size": 256000,
    "hidden_size": 3584,
    "intermediate_size": 14336,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 256,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
}
TINY = {
    "vocab_size": 512,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "query_pre_attn_scalar": 16,
    "sliding_window": 48,
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
}
PAD, EOS, UNK = 0, 1, 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8, help="decoder layers (9B has 42)")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per trainer")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of timing")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--min-length", type=int, default=256)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="H200 bf16 dense")
    parser.add_argument("--sides", default="ours,trl", help="comma list of ours, trl")
    parser.add_argument(
        "--attn",
        default="auto",
        help="ours: comma list of attention implementations, one run each ('auto': our "
        "default; e.g. auto,flex_attention)",
    )
    parser.add_argument(
        "--no-group", action="store_true", help="ours: TRL's random sampler (identical batches)"
    )
    parser.add_argument(
        "--no-share-prefix", action="store_true", help="ours: compute shared prefixes twice"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        help="profile N steps after --warmup with torch.profiler and print the top ops to "
        "stderr (those steps' timing includes the profiler: use a separate run)",
    )
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default=None)
    parser.add_argument(
        "--weights",
        choices=("bfloat16", "float32"),
        default=None,
        help="dtype of the trained weights (default: --dtype; float32 with --dtype bfloat16 "
        "is autocast with float32 weights for the optimizer, as FSDP and DeepSpeed run)",
    )
    parser.add_argument("--tolerance", type=float, default=None, help="reward check tolerance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="tiny model and sequences (CPU)")
    parser.add_argument("--output-dir", default="/tmp/bench_gemma2_gpu")
    args = parser.parse_args(argv)
    if args.tiny:
        args.layers = min(args.layers, 2)
        args.max_length, args.min_length = min(args.max_length, 64), min(args.min_length, 16)
        args.steps, args.warmup = min(args.steps, 4), min(args.warmup, 1)
    if args.warmup >= args.steps:
        parser.error("--warmup must be smaller than --steps")
    return args


def device_and_dtype(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    return device, getattr(torch, name)


def build_model(args: argparse.Namespace, device: Any, dtype: Any) -> Any:
    import torch
    from transformers import Gemma2Config, Gemma2ForSequenceClassification

    shape = TINY if args.tiny else GEMMA2_9B
    config = Gemma2Config(
        **shape, num_hidden_layers=args.layers, num_labels=1, pad_token_id=PAD,
        eos_token_id=EOS, bos_token_id=EOS, dtype=dtype,
    )  # fmt: skip
    torch.manual_seed(args.seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Gemma2ForSequenceClassification(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def build_tokenizer(vocab_size: int) -> Any:
    """A minimal fast tokenizer (TRL wants a processing class; the data is pre-tokenised)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": PAD, "<eos>": EOS, "<unk>": UNK}
    vocab.update({f"t{i}": i for i in range(3, vocab_size)})
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


def synthetic_pairs(args: argparse.Namespace, vocab_size: int, count: int) -> list[Any]:
    """``count`` pairs of random ids: shared prompt, different answers, seeded lengths."""
    from music_aug.reward.data import PairFeatures

    rng = random.Random(args.seed)
    pairs = []
    for row in range(count):
        lengths = [rng.randint(args.min_length, args.max_length) for _ in range(2)]
        prompt = [rng.randrange(3, vocab_size) for _ in range(min(lengths) * 3 // 4)]
        sides = [
            prompt + [rng.randrange(3, vocab_size) for _ in range(n - len(prompt))] for n in lengths
        ]
        pairs.append(PairFeatures(chosen_ids=sides[0], rejected_ids=sides[1], row=row))
    return pairs


def matmul_params(model: Any) -> int:
    """Weights every token multiplies through: all parameters but the input embedding."""
    embedding = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p is not embedding)


class Meter:
    """Real tokens and model FLOPs of the training batches, snapshotted at step ends."""

    def __init__(self, params: int, layers: int, attn_width: int) -> None:
        self.params, self.layers, self.attn_width = params, layers, attn_width
        self.tokens = 0
        self.computed = 0
        self.flops = 0.0
        self.marks: list[tuple[float, int, float, int]] = []

    def add(self, lengths: list[int], shared: list[int] | None = None) -> None:
        """``lengths``: all chosen then all rejected sequences (real tokens, both sides in
        full); ``shared``: per pair, the prefix tokens computed once (a rejected branch of
        ``r`` tokens after a shared prefix ``p`` costs ``r - p`` tokens of weights and
        ``(r - p) * r`` attention products, i.e. only what is computed)."""
        self.tokens += sum(lengths)
        pairs = len(lengths) // 2
        saved = shared or []
        for index, s in enumerate(lengths):
            p = saved[index - pairs] if index >= pairs and saved else 0
            self.computed += s - p
            self.flops += (
                6.0 * self.params * (s - p) + 12.0 * self.layers * self.attn_width * (s - p) * s
            )

    def mark(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.marks.append((time.perf_counter(), self.tokens, self.flops, self.computed))


def metered(trainer_class: Any, meter: Meter) -> Any:
    """``trainer_class`` whose training ``compute_loss`` reports real sequence lengths."""
    from transformers import TrainerCallback

    class StepMarks(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            meter.mark()

    class Metered(trainer_class):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_callback(StepMarks())

        def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kw: Any) -> Any:
            if model.training:
                lengths = inputs.get("sequence_lengths")
                if lengths is None:
                    lengths = inputs["attention_mask"].sum(dim=1)
                shared = inputs.get("shared_lengths")
                meter.add(
                    [int(n) for n in lengths.tolist()],
                    None if shared is None else [int(n) for n in shared.tolist()],
                )
            return super().compute_loss(model, inputs, *args, **kw)

    return Metered


def profiled(trainer: Any, args: argparse.Namespace, device: Any) -> list[str]:
    """Profiles steps ``--warmup + 1 .. --warmup + --profile`` with ``torch.profiler``; the
    returned list receives the top-ops table when they are done (empty without --profile)."""
    tables: list[str] = []
    if not args.profile:
        return tables
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    activities = [ProfilerActivity.CPU]
    activities += [ProfilerActivity.CUDA] if device.type == "cuda" else []
    profiler = profile(activities=activities)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"

    class Window(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, _args: Any, state: Any, *_: Any, **__: Any) -> None:
            if state.global_step == args.warmup:
                profiler.start()
            elif state.global_step == args.warmup + args.profile:
                profiler.stop()
                tables.append(profiler.key_averages().table(sort_by=sort, row_limit=25))

    trainer.add_callback(Window())
    return tables


def our_attentions(args: argparse.Namespace, device: Any) -> list[str]:
    """The attentions our trainer runs, one run each (``auto``: what ``music-aug train`` picks)."""
    from music_aug.reward.autotune import default_attention

    names = [name.strip() for name in str(args.attn).split(",") if name.strip()]
    resolved = [default_attention("gemma2", device.type) if n == "auto" else n for n in names]
    return list(dict.fromkeys(resolved))


def our_config(args: argparse.Namespace, attn: str, *, output_dir: str, bf16: bool) -> Any:
    """Our trainer's config for one run (its collator is also what ``check_rewards`` packs)."""
    from music_aug.reward.config import RewardTrainingConfig

    return RewardTrainingConfig(
        model="random-gemma2", output_dir=output_dir, max_length=args.max_length,
        per_device_batch_size=args.batch_size, gradient_accumulation_steps=args.grad_accum,
        warmup_ratio=0.0, lr_scheduler="constant",
        learning_rate=2e-6, max_steps=args.steps, logging_steps=1, seed=args.seed,
        bf16=bf16, attn_implementation=attn, gradient_checkpointing=args.checkpointing,
        group_by_length=not args.no_group, share_prefix=not args.no_share_prefix,
        disable_tqdm=True,
    )  # fmt: skip


def error_line(error: BaseException) -> str:
    """One printable line for a failed run or check."""
    return f"{type(error).__name__}: {error}".splitlines()[0][:400]


def run_side(
    side: str, attn: str, args: argparse.Namespace, device: Any, dtype: Any
) -> dict[str, Any]:
    """One training run; a failure (out of memory, an attention that cannot train here) is
    returned as ``{"error": ...}`` so the other runs still happen and print."""
    import torch

    try:
        return _train(side, attn, args, device, dtype)
    except Exception as error:  # reported; the next run goes on
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"side": side, "attn": attn, "layers": args.layers, "error": error_line(error)}


def _train(
    side: str, attn: str, args: argparse.Namespace, device: Any, dtype: Any
) -> dict[str, Any]:
    import torch

    weights = getattr(torch, args.weights) if args.weights else dtype
    model = build_model(args, device, weights)
    vocab = model.config.vocab_size
    pairs = synthetic_pairs(args, vocab, args.steps * args.batch_size * args.grad_accum)
    cfg = model.config
    meter = Meter(
        matmul_params(model), cfg.num_hidden_layers, cfg.num_attention_heads * cfg.head_dim
    )
    bf16 = dtype == torch.bfloat16
    common = {
        "output_dir": f"{args.output_dir}/{side}", "learning_rate": 2e-6,
        "max_steps": args.steps, "logging_steps": 1, "report_to": "none",
        "seed": args.seed, "disable_tqdm": True, "save_strategy": "no",
        "lr_scheduler_type": "constant", "bf16": bf16,
        "per_device_train_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.grad_accum,
    }  # fmt: skip
    if side == "ours":
        from music_aug.reward.trainer import RewardTrainer, make_collator
        from music_aug.reward.training import training_arguments
        from music_aug.reward.varlen import register_varlen_attention

        register_varlen_attention()
        model.set_attn_implementation(attn)
        config = our_config(args, attn, output_dir=common["output_dir"], bf16=bf16)
        trainer = metered(RewardTrainer, meter)(
            model=model, args=training_arguments(config, False), train_dataset=pairs,
            data_collator=make_collator(config, PAD), processing_class=build_tokenizer(vocab),
            reward_config=config,
        )  # fmt: skip
    else:
        from datasets import Dataset
        from trl import RewardConfig
        from trl import RewardTrainer as TRLRewardTrainer

        attn = str(model.config._attn_implementation)
        trl_args = RewardConfig(
            max_length=args.max_length, gradient_checkpointing=args.checkpointing, **common
        )
        rows = {"chosen_ids": [p.chosen_ids for p in pairs]}
        rows["rejected_ids"] = [p.rejected_ids for p in pairs]
        trainer = metered(TRLRewardTrainer, meter)(
            model=model, args=trl_args, train_dataset=Dataset.from_dict(rows),
            processing_class=build_tokenizer(vocab),
        )  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tables = profiled(trainer, args, device)
    trainer.train()
    for table in tables:
        steps = f"{args.warmup + 1}..{args.warmup + args.profile}"
        print(f"profile: {side} {attn}, steps {steps}\n{table}", file=sys.stderr, flush=True)
    start, end = meter.marks[args.warmup - 1], meter.marks[-1]
    seconds = end[0] - start[0]
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    result = {
        "side": side, "attn": attn, "layers": args.layers, "dtype": str(dtype).split(".")[-1],
        "weights": str(weights).split(".")[-1],
        "pairs_per_step": args.batch_size * args.grad_accum,
        "checkpointing": args.checkpointing, "steps_timed": len(meter.marks) - args.warmup,
        "real_tokens": end[1] - start[1], "computed_tokens": end[3] - start[3],
        "seconds": round(seconds, 3),
        "real_tokens_per_s": round((end[1] - start[1]) / seconds, 1),
        "tflops_per_s": float(f"{(end[2] - start[2]) / seconds / 1e12:.4g}"),
        "mfu": float(f"{(end[2] - start[2]) / seconds / (args.peak_tflops * 1e12):.4g}"),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20)
        if device.type == "cuda" else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "losses": [round(loss, 4) for loss in losses],
        "matmul_params": meter.params,
    }  # fmt: skip
    if side == "ours":  # bf16/fp16 weights a step of the lr cannot change (None: float32)
        result["frozen_update_fraction"] = trainer.frozen_update_fraction
    del trainer, model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def check_rewards(args: argparse.Namespace, device: Any, dtype: Any) -> list[dict[str, Any]]:
    """Rewards of one batch packed (padding-free) under each of our attentions vs padded
    (eager: the reference for soft-capping), same weights, eval mode; one line each."""
    import torch

    from music_aug.reward.collate import PairCollator
    from music_aug.reward.pooling import sequence_rewards
    from music_aug.reward.trainer import make_collator
    from music_aug.reward.varlen import register_varlen_attention

    register_varlen_attention()
    model = build_model(args, device, dtype).eval()
    pairs = synthetic_pairs(args, model.config.vocab_size, args.batch_size)

    def rewards(model: Any, attn: str, collator: Any) -> Any:
        model.set_attn_implementation(attn)
        with torch.no_grad():
            return sequence_rewards(model, {k: v.to(device) for k, v in collator(pairs).items()})

    padded = rewards(model, "eager", PairCollator(PAD)).float().cpu()
    scale = padded.abs().max().item()
    tolerance = args.tolerance
    if tolerance is None:
        tolerance = 3e-2 * max(1.0, scale) if dtype == torch.bfloat16 else 1e-4 * max(1.0, scale)
    checks = []
    for attn in our_attentions(args, device):
        # the layout our trainer feeds this attention (packed, shared prefixes or not)
        collator = make_collator(our_config(args, attn, output_dir="-", bf16=False), PAD)
        check: dict[str, Any] = {"check": "packed_vs_padded_rewards", "packed_attn": attn}
        check["share_prefix"] = collator.share_prefix
        try:
            diff = (rewards(model, attn, collator).float().cpu() - padded).abs().max().item()
        except Exception as error:  # reported as a failed check
            check.update(error=error_line(error), ok=False)
        else:
            check.update(
                max_abs_diff=round(diff, 6), max_abs_reward=round(scale, 4),
                tolerance=tolerance, ok=diff <= tolerance,
            )  # fmt: skip
        checks.append(check)
    del model
    gc.collect()
    return checks


def environment(device: Any) -> dict[str, Any]:
    """Versions and the device: what a pasted result needs to be read again later."""
    import importlib.metadata

    import torch

    found: dict[str, Any] = {"device": str(device), "torch": torch.__version__}
    for package in ("transformers", "accelerate", "trl", "flash_attn"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    if device.type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(0)
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # a source checkout
    device, dtype = device_and_dtype(args)
    checks = check_rewards(args, device, dtype)
    for check in checks:
        print(json.dumps(check), flush=True)
    runs = [("ours", attn) for attn in our_attentions(args, device) if "ours" in args.sides]
    runs += [("trl", "default")] if "trl" in args.sides.split(",") else []
    results = []
    for side, attn in runs:  # each printed as soon as it ends: a later crash loses nothing
        results.append(run_side(side, attn, args, device, dtype))
        print(json.dumps(results[-1]), flush=True)
    summary: dict[str, Any] = {"summary": True, **environment(device)}
    summary["check_ok"] = all(check["ok"] for check in checks)
    summary["peak_tflops"] = args.peak_tflops
    done = [r for r in results if "error" not in r]
    trl = next((r for r in done if r["side"] == "trl"), None)
    ours = [r for r in done if r["side"] == "ours"]
    if ours and trl:  # the first of ours is the default (`--attn auto` comes first)
        summary["ours_vs_trl_tokens_per_s"] = round(
            ours[0]["real_tokens_per_s"] / trl["real_tokens_per_s"], 3
        )
    summary["mfu"] = {f"{r['side']}:{r['attn']}": r["mfu"] for r in done}
    summary["failed"] = [f"{r['side']}:{r['attn']}" for r in results if "error" in r]
    print(json.dumps(summary), flush=True)
    return 0 if summary["check_ok"] and not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
