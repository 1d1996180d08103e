"""Speed of the pair quality report (``music_aug.quality.inspect_pairs``, issue 13).

10,000 synthetic MUSIC-shaped rows (3 user turns, branch at turn 0 or 1, contrast on every
turn from the branch, answers of 20-120 words, ``music_metadata`` with contrast
instructions and ``answer_finish_reasons``; every 50th row a duplicate). Times reading the
pairs and building the report (regex tokens), then ``to_dict()`` for ``--json``.

Run: OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/bench_quality.py
Goal (issue 13): 10k pairs "in seconds". Wall and process CPU time are both printed; on a
shared machine CPU time is the fairer measure.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from music_aug.quality import inspect_pairs

WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "user",
    "turn",
    "red",
    "green",
    "fruit",
    "apple",
    "why",
    "because",
    "of",
    "in",
    "on",
    "it",
    "is",
]


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))) + "."


def synthetic_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` MUSIC-shaped output rows."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for index in range(n):
        if index and index % 50 == 0:
            rows.append(rows[-1])
            continue
        branch = rng.randint(0, 1)
        users = [_text(rng, 5, 20) for _ in range(3)]
        shared = [_text(rng, 20, 120) for _ in range(branch)]
        chosen: list[dict[str, str]] = []
        rejected: list[dict[str, str]] = []
        for turn, user in enumerate(users):
            answer = shared[turn] if turn < branch else None
            for side in (chosen, rejected):
                side.append({"role": "user", "content": user})
                side.append({"role": "assistant", "content": answer or _text(rng, 20, 120)})
        turns = list(range(branch, 3))
        reasons = [rng.choice(["stop", "stop", "length"]) for _ in turns]
        rows.append(
            {
                "chosen": chosen,
                "rejected": rejected,
                "music_metadata": {
                    "source_id": f"s{index // 2}",
                    "branch_turn": branch,
                    "contrast_turns": turns,
                    "original_instructions": [users[t] for t in turns],
                    "contrast_instructions": [_text(rng, 5, 20) for _ in turns],
                    "status": "ok",
                    "error": None,
                    "answer_finish_reasons": {"chosen": reasons, "rejected": reasons[::-1]},
                },
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    args = parser.parse_args()
    rows = synthetic_rows(args.pairs)
    wall, cpu = time.perf_counter(), time.process_time()
    report = inspect_pairs(rows)
    report_wall, report_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    report.to_dict()
    dict_wall, dict_cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{report.pairs} pairs ({report.duplicate_pairs} duplicates)")
    print(f"inspect_pairs: {report_wall:.2f} s wall, {report_cpu:.2f} s CPU")
    print(f"to_dict:       {dict_wall:.2f} s wall, {dict_cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
