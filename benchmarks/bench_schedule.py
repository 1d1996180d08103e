"""End-to-end MUSIC scheduling: the old lock-step waves vs the event-driven scheduler.

Both schedules run the same MUSIC job (MT-Bench rows, CLI defaults: max_turns 5, random
branch, contrast on every turn, simulated users, 256-token answers) against
``latency_server.py``: a loopback OpenAI-compatible server answering after 30 ms + 4 ms
per generated token, with lengths drawn from real MT-Bench turn lengths (long-tailed:
half the answers run into the 256-token budget, user turns are short).

* ``wave``: the schedule of music-aug 0.1.0's CLI: batches of ``--batch-size`` rows,
  every step of a batch one ``generate`` call that returns when its slowest request is
  done (reproduced exactly by hiding the backend's stream, which makes the augmenter
  batch every ready request per call).
* ``event``: ``music-aug augment --backend openai --concurrency C`` as shipped (in this
  process, through ``music_aug.cli.main``).

Reported per schedule and concurrency C: pairs/s; utilization = the server's busy
slot-seconds / (C x wall time); the lower bound max(total work / C, longest dependency
chain) where a chain is one branch's service times end to end; wall / bound; the client's
CPU per request and per pair; the most requests in service at once. The wave schedule
runs on the first ``--wave-rows`` rows only (it is slow; its rate is steady batch after
batch), the event schedule on all ``--rows``.

Run by hand on an idle machine:  .venv/bin/python benchmarks/bench_schedule.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latency_server

from music_aug.augmenter import MusicAugmenter
from music_aug.backends import ChatRequest, ChatResult, OpenAIBackend
from music_aug.cli import main as cli_main
from music_aug.config import MusicConfig
from music_aug.steps import PairStepper


def make_rows(n: int) -> list[dict[str, Any]]:
    """``n`` MT-Bench rows; copies past the 80 real ones get a variant tag (new content)."""
    base = [json.loads(line) for line in latency_server.MT_BENCH.read_text().splitlines()]
    rows = []
    for i in range(n):
        row = json.loads(json.dumps(base[i % len(base)]))
        copy = i // len(base)
        if copy:
            row["id"] = f"{row['id']}-v{copy}"
            row["messages"][0]["content"] += f" (variant {copy})"
        rows.append(row)
    return rows


class Chains:
    """Adds up each branch's service times, from every result a branch receives."""

    def __init__(self, model: latency_server.LatencyModel) -> None:
        self.model = model
        self.seconds: dict[tuple[str, int, str], float] = defaultdict(float)
        original = PairStepper.receive
        chains = self

        def receive(stepper: PairStepper, job: Any, branch: Any, result: ChatResult) -> None:
            tokens = result.usage.completion_tokens
            key = (job.source_id, job.seed, branch.side)  # id(job) is reused once freed
            chains.seconds[key] += model.seconds(tokens) if tokens else 0.0
            original(stepper, job, branch, result)

        PairStepper.receive = receive  # type: ignore[method-assign]

    def longest(self) -> float:
        return max(self.seconds.values(), default=0.0)

    def reset(self) -> None:
        self.seconds.clear()


class GenerateOnly:
    """The backend with its stream hidden: the augmenter falls back to one call per step."""

    def __init__(self, backend: OpenAIBackend) -> None:
        self.backend = backend
        self.name, self.model = backend.name, backend.model

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return self.backend.generate(requests)

    def close(self) -> None:
        self.backend.close()


def run_wave(url: str, rows: list[dict[str, Any]], concurrency: int, batch_size: int) -> int:
    backend = OpenAIBackend("latency", base_url=url, max_concurrency=concurrency)
    augmenter = MusicAugmenter(MusicConfig(), GenerateOnly(backend))
    pairs = 0
    for start in range(0, len(rows), batch_size):
        out = augmenter.augment_records(rows[start : start + batch_size])
        pairs += sum(r["music_metadata"]["status"] == "ok" for r in out)
    backend.close()
    return pairs


def run_event(url: str, rows: list[dict[str, Any]], concurrency: int, folder: Path) -> int:
    source, output = folder / f"in{concurrency}.jsonl", folder / f"out{concurrency}.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    summary = folder / f"summary{concurrency}.json"
    code = cli_main(["augment", str(source), "-o", str(output), "--backend", "openai",
                     "--model", "latency", "--base-url", url, "--concurrency", str(concurrency),
                     "--summary-json", str(summary)])  # fmt: skip
    assert code == 0
    return int(json.loads(summary.read_text())["pairs_out"])


def measure(schedule: str, url: str, rows: list[dict[str, Any]], concurrency: int,
            chains: Chains, args: argparse.Namespace, folder: Path) -> dict[str, Any]:  # fmt: skip
    latency_server.stats(url, reset=True)
    chains.reset()
    started, cpu = time.perf_counter(), time.process_time()
    if schedule == "wave":
        pairs = run_wave(url, rows, concurrency, args.batch_size)
    else:
        pairs = run_event(url, rows, concurrency, folder)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    server = latency_server.stats(url)
    busy, requests = server["busy_s"], int(server["requests"])
    bound = max(busy / concurrency, chains.longest())
    return {
        "schedule": schedule, "concurrency": concurrency, "rows": len(rows), "pairs": pairs,
        "requests": requests, "wall_s": round(wall, 2), "pairs_per_s": round(pairs / wall, 2),
        "utilization": round(busy / (concurrency * wall), 4), "bound_s": round(bound, 2),
        "wall_over_bound": round(wall / bound, 3), "longest_chain_s": round(chains.longest(), 2),
        "client_cpu_ms_per_request": round(1000 * cpu / max(requests, 1), 3),
        "client_cpu_ms_per_pair": round(1000 * cpu / max(pairs, 1), 2),
        "max_in_service": int(server["max_in_service"]),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--wave-rows", type=int, default=128)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch-size", type=int, default=16, help="0.1.0's CLI default")
    parser.add_argument("--schedules", nargs="+", default=["wave", "event"])
    parser.add_argument("--json", help="also write the rows of the table here")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    url, server = latency_server.start()
    chains = Chains(latency_server.LatencyModel())
    rows = make_rows(args.rows)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for concurrency in args.concurrency:
                for schedule in args.schedules:
                    subset = rows[: args.wave_rows] if schedule == "wave" else rows
                    result = measure(schedule, url, subset, concurrency, chains, args, Path(tmp))
                    results.append(result)
                    print(json.dumps(result), flush=True)
    finally:
        server.terminate()
    print(f"load average at end: {os.getloadavg()}")
    by = {(r["schedule"], r["concurrency"]): r for r in results}
    for concurrency in args.concurrency:
        wave, event = by.get(("wave", concurrency)), by.get(("event", concurrency))
        if wave and event:
            ratio = event["pairs_per_s"] / wave["pairs_per_s"]
            print(f"c={concurrency}: event/wave pairs/s = {ratio:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
