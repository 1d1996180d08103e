"""``music-aug show``: print one MUSIC output pair turn by turn, contrast turns marked.

Reads the file with the same reader as ``augment``; prints, changes nothing.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

from music_aug.errors import UserInputError
from music_aug.records import read_records

__all__ = ["format_pair", "register"]


def register(subparsers: Any) -> None:
    """Add the ``show`` subcommand."""
    show = subparsers.add_parser(
        "show", help="print one MUSIC pair turn by turn", description="Print one output pair."
    )
    show.add_argument("file", help="a music-aug augment output (.jsonl or .parquet)")
    show.add_argument("--row", type=int, default=0, help="0-based row index (default 0)")
    show.add_argument("--width", type=int, default=100, help="wrap text at this many columns")
    show.add_argument(
        "--full", action="store_true", help="do not shorten the shared turns before the branch"
    )
    show.set_defaults(handler=run_show)


def _block(label: str, text: str, width: int) -> str:
    body = "\n".join(
        textwrap.fill(line, width=width, initial_indent="    ", subsequent_indent="    ")
        if line.strip()
        else ""
        for line in text.splitlines()
    )
    return f"  {label}\n{body}"


def _shorten(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()} [... {len(text) - limit} more characters]"


def format_pair(row: dict[str, Any], *, width: int = 100, shared_limit: int | None = 400) -> str:
    """One output row, turn by turn, with the branch and contrast turns marked.

    Messages of turns both sides share are cut to ``shared_limit`` characters (``None``:
    print everything).
    """
    meta = row.get("music_metadata") or {}
    chosen, rejected = row.get("chosen") or [], row.get("rejected") or []
    contrast = list(meta.get("contrast_turns") or [])
    rewrites = dict(zip(contrast, meta.get("contrast_instructions") or [], strict=False))
    lines = [
        f"source {meta.get('source_id')}  status {meta.get('status')}  branch turn "
        f"{meta.get('branch_turn')}  contrast turns {contrast}  user turns "
        f"{meta.get('user_turns')}  model {meta.get('model')}"
    ]
    if meta.get("error"):
        lines.append(f"error: {meta['error']}")
    system = [m for m in chosen if m["role"] == "system"]
    if system:
        lines.append(_block("SYSTEM", system[0]["content"], width))

    def turns(messages: list[dict[str, str]]) -> list[tuple[str, str | None]]:
        body = [m for m in messages if m["role"] != "system"]
        return [
            (body[k]["content"], body[k + 1]["content"] if k + 1 < len(body) else None)
            for k in range(0, len(body), 2)
        ]

    chosen_turns, rejected_turns = turns(chosen), turns(rejected)
    for index in range(max(len(chosen_turns), len(rejected_turns))):
        c = chosen_turns[index] if index < len(chosen_turns) else None
        r = rejected_turns[index] if index < len(rejected_turns) else None
        marker = " *** CONTRAST" if index in rewrites else ""
        branch = " (branch)" if index == meta.get("branch_turn") else ""
        lines.append(f"\n=== turn {index}{branch}{marker} " + "=" * 20)
        if r is None or (c is not None and c == r):
            if c is not None:
                lines.append(_block("USER (both)", _shorten(c[0], shared_limit), width))
                lines.append(_block("ASSISTANT (both)", _shorten(c[1] or "", shared_limit), width))
            continue
        if c is not None and c[0] == r[0]:
            lines.append(_block("USER (both)", c[0], width))
        else:
            if c is not None:
                lines.append(_block("USER (chosen)", c[0], width))
            lines.append(_block("USER (rejected)", r[0], width))
        if index in rewrites:
            note = "(rejected answer was written for the contrast instruction:)"
            lines.append(_block(note, rewrites[index], width))
        if c is not None:
            lines.append(_block("ASSISTANT (chosen)", c[1] or "", width))
        lines.append(_block("ASSISTANT (rejected)", r[1] or "", width))
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise UserInputError(f"{args.file!r} does not exist; run `music-aug augment` first")
    rows = read_records(str(path))
    if not 0 <= args.row < len(rows):
        raise UserInputError(f"--row {args.row} is out of range: {path} has {len(rows)} rows")
    limit = None if args.full else 400
    print(format_pair(rows[args.row], width=args.width, shared_limit=limit))
    return 0
