"""`music-aug inspect PAIRS`: what a pairs file teaches (lengths, truncation, contrast, duplicates).

Thin: reads the file and an optional run summary, calls ``music_aug.quality`` and prints
the text summary or the JSON report; ``--plot`` draws the histograms (matplotlib).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from music_aug.errors import InvalidConversationError, UserInputError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="what a preference-pairs file teaches: length bias, truncation, contrast, duplicates",
        description="Report token-length differences chosen - rejected, the length-only "
        "baseline ('longer wins' accuracy), truncation, contrast-instruction similarity, "
        "turn structure and duplicates of a pairs file (music-aug output or any TRL/HH file).",
    )
    parser.add_argument("pairs", help="pairs file (.jsonl, .json, .gz, .parquet)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--plot", help="write histograms of length differences here (PNG)")
    parser.add_argument(
        "--summary", help="run summary JSON (`music-aug augment --summary-json`) for refusals"
    )
    parser.add_argument("--format", default="auto", help="preference layout (default: auto)")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="merge consecutive same-role messages and drop empty ones instead of failing",
    )
    parser.add_argument(
        "--tokenizer",
        help="count tokens with this Hugging Face tokenizer (local path) instead of regex tokens",
    )
    parser.set_defaults(handler=run_inspect)


def read_summary(path: str) -> dict[str, Any]:
    """The run summary JSON written by ``music-aug augment --summary-json``."""
    file = Path(path)
    if not file.is_file():
        raise UserInputError(f"--summary {path!r} does not exist; pass the --summary-json file")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserInputError(f"--summary {path!r} is not valid JSON ({error.msg})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"--summary {path!r} must hold a JSON object (a run summary)")
    return data


def run_inspect(args: argparse.Namespace) -> int:
    from music_aug.evaluation.data import dataset_label, read_records
    from music_aug.quality import TokenizerCounter, format_report, inspect_pairs, plot_report

    rows = read_records(args.pairs)
    try:
        report = inspect_pairs(
            rows,
            format=args.format,
            repair=args.repair,
            counter=TokenizerCounter(args.tokenizer) if args.tokenizer else None,
            summary=read_summary(args.summary) if args.summary else None,
        )
    except InvalidConversationError as error:
        hint = " (here: pass --repair)" if "repair=True" in str(error) else ""
        raise InvalidConversationError(f"{args.pairs}: {error}{hint}") from None
    name = dataset_label(args.pairs)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print(format_report(report, name=name))
    if args.plot:
        out = plot_report(report, args.plot, title=name)
        if not args.json:
            print(f"wrote {out}")
    return 0
