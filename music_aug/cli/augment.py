"""``music-aug augment``: run MUSIC over a file or hub dataset.

Thin: reads rows, builds a ``MusicConfig`` and a backend (``create_backend``), feeds
batches to ``MusicAugmenter`` with a progress bar, writes jsonl or parquet, prints the
run summary. ``music-aug show`` lives in ``music_aug.cli.show``.
Nothing MUSIC-specific is decided here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from music_aug.cli.ray_augment import add_ray_arguments, run_ray
from music_aug.cli.show import format_pair
from music_aug.errors import ConfigError

__all__ = ["format_pair", "read_rows", "register"]


def register(subparsers: Any) -> None:
    """Add the ``augment`` subcommand."""
    parser = subparsers.add_parser(
        "augment",
        help="build MUSIC preference pairs from conversations or preference rows",
        description="Run MUSIC (multi-step instruction contrast) over INPUT and write pairs.",
    )
    parser.add_argument("input", help="local .jsonl/.json(.gz)/.parquet file or a hub dataset name")
    parser.add_argument(
        "-o", "--output", required=True, help="output file (.jsonl or .parquet); --ray: a folder"
    )
    parser.add_argument("--format", default="auto", help="input format (default: auto-detect)")
    parser.add_argument("--split", default="train", help="split of a hub dataset (default: train)")
    parser.add_argument(
        "--backend",
        default="llamacpp",
        choices=["llamacpp", "openai", "vllm", "fake"],
        help="LLM backend (default: llamacpp, the embedded SmolLM2-135M)",
    )
    parser.add_argument("--model", help="model path / name for the backend")
    parser.add_argument("--base-url", help="server URL for --backend openai")
    parser.add_argument("--max-turns", type=int, default=5, help="user turns per output (5)")
    parser.add_argument("--contrast-turns", default="all", help="'all' (default) or an int k >= 1")
    parser.add_argument("--user-turns", default="simulate", choices=["simulate", "replay"])
    parser.add_argument("--branch", default="random", help="random|first|last or a 0-based turn")
    parser.add_argument("--pairs-per-conversation", type=int, default=1)
    parser.add_argument("--source-side", default="chosen", choices=["chosen", "prompt"])
    parser.add_argument("--limit", type=int, help="use only the first N input rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--concurrency",
        type=int,
        help="requests in flight at once (openai backend; default 64); rows enter as slots free",
    )
    parser.add_argument(
        "--api-key-env",
        help="environment variable holding the API key (openai backend; OPENAI_API_KEY)",
    )
    parser.add_argument("--timeout", type=float, help="seconds per request (openai backend)")
    parser.add_argument("--max-retries", type=int, help="retries per request (openai backend)")
    parser.add_argument("--rpm", type=float, help="requests-per-minute limit (openai backend)")
    parser.add_argument("--tpm", type=float, help="tokens-per-minute limit (openai backend)")
    parser.add_argument("--cache", help="SQLite request cache; a rerun reuses finished requests")
    parser.add_argument("--on-error", default="mark", choices=["raise", "mark", "skip"])
    parser.add_argument("--shard", help="I/N: process only the I-th of N contiguous shards")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="rows per generate call for backends without a stream (llamacpp, fake; 16); "
        "streaming backends (openai, vllm) are bounded by --concurrency alone",
    )
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, help="token budget of each answer (256)")
    parser.add_argument("--contrast-template", help="package template name or .jinja path")
    parser.add_argument("--user-template", help="package template name or .jinja path")
    parser.add_argument("--summary-json", help="also write the run summary as JSON here")
    quality = parser.add_argument_group("quality controls (opt-in; docs/quality.md)")
    quality.add_argument(
        "--length-ratio",
        type=float,
        help="at contrast turns, redraw a rejected answer more than R times longer or shorter "
        "than the chosen one (whitespace words)",
    )
    quality.add_argument(
        "--verify",
        default="off",
        choices=["off", "keep", "mark", "drop"],
        help="ask an order-swapped judge whether the chosen answer answers u_t better; keep "
        "(record), mark (status=unverified) or drop pairs it does not confirm",
    )
    quality.add_argument("--verify-turns", default="contrast", choices=["contrast", "last"])
    quality.add_argument("--judge-template", help="judge template name or path (verify_turn)")
    quality.add_argument("--judge-model", help="a separate judge: model name (else the simulator)")
    quality.add_argument("--judge-base-url", help="a separate judge: OpenAI-compatible server URL")
    provider = parser.add_argument_group("API providers (issue 15)")
    provider.add_argument(
        "--prompt-style",
        default="auto",
        choices=["auto", "chat", "completion"],
        help="chat or few-shot completion prompts for the rewriter and user simulator; auto: "
        "completion for llamacpp/fake, chat for openai/vllm",
    )
    provider.add_argument("--assistant-template", help="package template name or .jinja path")
    provider.add_argument("--system-prompt", help="system message of the assistant simulator")
    provider.add_argument(
        "--token-param",
        choices=["auto", "max_tokens", "max_completion_tokens"],
        help="openai backend: how the token budget is sent (auto: max_tokens, switching once "
        "to max_completion_tokens when the server rejects max_tokens)",
    )
    provider.add_argument(
        "--server-ignores-seed",
        action="store_true",
        help="openai backend: the server ignores seed; recorded in provenance",
    )
    provider.add_argument(
        "--dry-run",
        action="store_true",
        help="print the estimated requests, tokens and cost, and send nothing",
    )
    provider.add_argument("--price-in", type=float, help="USD per 1M prompt tokens")
    provider.add_argument("--price-out", type=float, help="USD per 1M completion tokens")
    add_ray_arguments(parser)
    parser.set_defaults(handler=run_augment)


# ----------------------------------------------------------------------------- input/output
def read_rows(source: str, *, split: str = "train") -> list[dict[str, Any]]:
    """Rows of a local jsonl/json(.gz)/parquet file, or of a hub dataset split.

    The same reader as every other command (``music_aug.records.read_records``).
    """
    from music_aug.records import read_records

    return read_records(source, split=split)


def _shard(rows: list[dict[str, Any]], spec: str | None) -> list[dict[str, Any]]:
    if not spec:
        return rows
    try:
        index, count = (int(part) for part in spec.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like I/N (e.g. 0/4), got {spec!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {spec}: need 0 <= I < N")
    size, extra = divmod(len(rows), count)
    start = index * size + min(index, extra)
    return rows[start : start + size + (1 if index < extra else 0)]


class _Writer:
    def __init__(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix not in (".jsonl", ".parquet"):
            raise ConfigError(f"output must end in .jsonl or .parquet, got {path.name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.parquet = suffix == ".parquet"
        self.rows: list[dict[str, Any]] = []
        self.handle = None if self.parquet else path.open("w", encoding="utf-8")

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.handle is None:
            self.rows.extend(rows)
            return
        for row in rows:
            self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            return
        import datasets

        from music_aug.pairs import output_features

        datasets.Dataset.from_list(self.rows, features=output_features()).to_parquet(self.path)


# ----------------------------------------------------------------------------- augment
def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """The backend flags the user set; create_backend rejects ones the backend lacks."""
    names = ("api_key_env", "timeout", "max_retries", "rpm", "tpm", "token_param")
    options = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.server_ignores_seed:
        options["honours_seed"] = False
    return options


def run_augment(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from music_aug.backends.registry import create_backend
    from music_aug.config import MusicConfig, default_sampling
    from music_aug.errors import BackendUnusableError
    from music_aug.summary import Prices

    options: dict[str, Any] = {
        "max_turns": args.max_turns,
        "contrast_turns": args.contrast_turns,
        "user_turns": args.user_turns,
        "branch": args.branch,
        "pairs_per_conversation": args.pairs_per_conversation,
        "seed": args.seed,
        "max_attempts": args.max_attempts,
        "on_error": args.on_error,
        "source_side": args.source_side,
        "input_format": args.format,
    }
    if args.max_new_tokens:
        options["assistant_sampling"] = replace(
            default_sampling("assistant"), max_tokens=args.max_new_tokens
        )
    if args.contrast_template:
        options["contrast_template"] = args.contrast_template
    if args.user_template:
        options["user_template"] = args.user_template
    options.update(length_ratio=args.length_ratio, verify=args.verify,
                   verify_turns=args.verify_turns, judge_template=args.judge_template)  # fmt: skip
    if args.assistant_template:
        options["assistant_template"] = args.assistant_template
    if args.system_prompt:
        options["assistant_system_prompt"] = args.system_prompt
    options["prompt_style"] = args.prompt_style
    config = MusicConfig(**options)
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    if args.ray is not None:  # issue 12: the same run on Ray Data
        return run_ray(args, config)
    rows = read_rows(args.input, split=args.split)
    if args.limit is not None:
        rows = rows[: args.limit]
    rows = _shard(rows, args.shard)
    prices = Prices(args.price_in, args.price_out)
    if args.dry_run:
        from music_aug.estimate import estimate_run

        print(estimate_run(rows, config, backend_kind=args.backend).format(prices))
        return 0
    backend = create_backend(
        args.backend,
        model=args.model,
        base_url=args.base_url,
        concurrency=args.concurrency,
        cache=args.cache,
        **_backend_options(args),
    )
    judge = None
    if args.judge_model or args.judge_base_url:
        judge = create_backend(
            "openai" if args.judge_base_url else args.backend,
            model=args.judge_model,
            base_url=args.judge_base_url,
            concurrency=args.concurrency,
            cache=f"{args.cache}.judge" if args.cache else None,
        )
    try:
        try:
            augmenter = _augment_to_file(args, rows, config, backend, judge)
        except BackendUnusableError as error:
            if not _completions_only(error, args):
                raise
            # prompt_style "auto" chose chat for an OpenAI-compatible server that has no
            # chat endpoint; nothing was written (every first request failed): go again
            # with completion prompts for every role, as the error's fix says.
            print(f"{error}\nretrying with --prompt-style completion --assistant-template "
                  "assistant_fewshot", file=sys.stderr)  # fmt: skip
            config = config.model_copy(
                update={"prompt_style": "completion", "assistant_template": "assistant_fewshot"}
            )
            augmenter = _augment_to_file(args, rows, config, backend, judge)
    finally:
        backend.close()
        if judge is not None:
            judge.close()
    print(f"wrote {augmenter.summary.pairs_out + augmenter.summary.failed} rows to {args.output}")
    print(augmenter.summary.format(prices))
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(augmenter.summary.to_dict(), indent=2))
    return 0


def _augment_to_file(
    args: argparse.Namespace, rows: list[dict[str, Any]], config: Any, backend: Any, judge: Any
) -> Any:
    """Stream ``rows`` through a new augmenter into ``args.output``; returns the augmenter."""
    from tqdm import tqdm

    from music_aug.augmenter import MusicAugmenter

    augmenter = MusicAugmenter(config, backend, judge_backend=judge)
    writer = _Writer(Path(args.output))
    try:
        with tqdm(total=len(rows), unit="row", desc="augment", file=sys.stderr) as bar:
            # Rows stream through a window that the backend keeps full; each row's output
            # is written in input order as soon as the rows before it are done.
            for outputs in augmenter.iter_augment(rows, batch_size=args.batch_size):
                writer.write(outputs)
                summary = augmenter.summary
                bar.update(1)
                bar.set_postfix(pairs=summary.pairs_out, failed=summary.failed + summary.skipped,
                                refresh=False)  # fmt: skip
    finally:
        writer.close()
    return augmenter


def _completions_only(error: Any, args: argparse.Namespace) -> bool:
    """A 404 from the chat endpoint under ``--prompt-style auto``, before any row was written."""
    return (
        args.prompt_style == "auto"
        and not args.assistant_template
        and getattr(error, "status", None) == 404
        and str(getattr(error, "endpoint", "")).endswith("/chat/completions")
        and not getattr(error, "rows", None)
        and "assistant_fewshot" in str(getattr(error, "fix", ""))
    )
