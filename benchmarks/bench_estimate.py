"""How close ``music-aug augment --dry-run``'s estimate is to real runs (issue 15).

Runs the augmenter over the first rows of MT-Bench-extended and compares its summary
(requests, prompt and completion tokens as the backend reported them) with
``estimate_run`` for the same rows and config:

* ``--backend fake``: the deterministic EchoBackend (its "tokens" are word counts, so only
  the request count is comparable);
* ``--backend llamacpp``: the real embedded SmolLM2-135M (llama.cpp's token counts).

Run by hand:  .venv/bin/python benchmarks/bench_estimate.py --backend llamacpp --rows 4
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from music_aug import MusicAugmenter, MusicConfig
from music_aug.backends.registry import create_backend
from music_aug.config import default_sampling
from music_aug.estimate import estimate_run

ROOT = Path(__file__).resolve().parents[1]
MT_BENCH = ROOT.parent / "shared" / "data" / "mt_bench_extended.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="fake", choices=["fake", "llamacpp"])
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--prompt-style", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = [json.loads(line) for line in MT_BENCH.read_text().splitlines()[: args.rows]]
    config = MusicConfig(
        max_turns=args.max_turns,
        prompt_style=args.prompt_style,
        assistant_sampling=replace(default_sampling("assistant"), max_tokens=args.max_new_tokens),
    )
    options = {"n_threads": args.threads} if args.backend == "llamacpp" else {}
    backend = create_backend(args.backend, **options)
    estimate = estimate_run(rows, config, backend_kind=args.backend)
    started = time.time()
    augmenter = MusicAugmenter(config, backend)
    augmenter.augment_records(rows)
    backend.close()
    summary = augmenter.summary
    actual = summary.usage
    print(estimate.format())
    print(f"actual: {actual} pairs {summary.pairs_out}/{len(rows)}, perturbation valid "
          f"{summary.perturbation_valid}/{summary.perturbation_attempts}")  # fmt: skip
    for key, value in (
        ("requests", estimate.requests),
        ("prompt_tokens", estimate.prompt_tokens),
        ("completion_tokens", estimate.completion_tokens),
    ):
        print(f"{key:<18} estimate {value:>10,.0f}  actual {actual[key]:>10,}  "
              f"estimate/actual {value / max(1, actual[key]):.2f}")  # fmt: skip
    print(f"wall {time.time() - started:.0f} s, load {os.getloadavg()}")


if __name__ == "__main__":
    main()
