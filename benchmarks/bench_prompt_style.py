"""SmolLM2-135M compliance with each prompt style: the share of outputs MUSIC's validation
accepts, for the contrast rewriter and the user simulator (issue 15).

For each of the first N MT-Bench-extended rows, one seeded random turn t: the rewriter gets
u_t with the turns before it (source answers), the user simulator gets the history through
the source's answer at t. Each style's package templates ("completion": contrast_fewshot /
user_fewshot; "chat": contrast_chat / user_chat) with the default sampling, first attempt
only, seed = row index, through the real embedded LlamaCppBackend. "Accepted" is
``InstructionPerturber.validate(...) is None`` and ``UserSimulator.parse(...) is not None``.

Run by hand:  .venv/bin/python benchmarks/bench_prompt_style.py [--rows 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections import Counter
from pathlib import Path

from music_aug.backends.llamacpp import LlamaCppBackend
from music_aug.conversation import Conversation
from music_aug.perturb import InstructionPerturber
from music_aug.prompt_style import DEFAULT_TEMPLATES
from music_aug.simulate import UserSimulator

ROOT = Path(__file__).resolve().parents[1]
MT_BENCH = ROOT.parent / "shared" / "data" / "mt_bench_extended.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--show", type=int, default=3, help="outputs printed per style/role")
    args = parser.parse_args()
    rows = [json.loads(line) for line in MT_BENCH.read_text().splitlines()[: args.rows]]
    backend = LlamaCppBackend(n_threads=args.threads, n_ctx=4096)
    started = time.time()
    report = {}
    for style, (contrast_name, user_name) in DEFAULT_TEMPLATES.items():
        perturber, user = InstructionPerturber(contrast_name), UserSimulator(user_name)
        contrast_requests, user_requests, cases = [], [], []
        for index, row in enumerate(rows):
            conversation = Conversation.from_record(row)
            turn = random.Random(index).randrange(conversation.num_turns)
            upto = conversation.upto_user(turn).to_messages()
            history, instruction = upto[:-1], upto[-1]["content"]
            answered = conversation.prefix(turn + 1).to_messages()
            contrast_requests.append(perturber.request(history, instruction, seed=index))
            user_requests.append(user.request(answered, seed=index))
            cases.append((history, instruction))
        contrast_results = backend.generate(contrast_requests)
        user_results = backend.generate(user_requests)
        reasons: Counter[str] = Counter()
        for (history, instruction), result in zip(cases, contrast_results, strict=True):
            reasons[perturber.validate(perturber.parse(result), instruction, history) or "ok"] += 1
        user_ok = sum(user.parse(result) is not None for result in user_results)
        report[style] = {
            "contrast_valid": reasons["ok"],
            "contrast_invalid": {k: v for k, v in reasons.items() if k != "ok"},
            "user_valid": user_ok,
            "n": len(rows),
            "contrast_examples": [
                (instruction, perturber.parse(result))
                for (_, instruction), result in zip(
                    cases[: args.show], contrast_results[: args.show], strict=True
                )
            ],
            "user_examples": [user.parse(r) for r in user_results[: args.show]],
        }
    backend.close()
    print(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"wall {time.time() - started:.0f} s, load {os.getloadavg()}")


if __name__ == "__main__":
    main()
