"""MUSIC in one process vs on a local Ray Data pipeline with 2 actors (issue 12).

Every run sends the same MT-Bench rows through ``OpenAIBackend`` to ``latency_server.py``
(a loopback OpenAI-compatible server answering after 30 ms + 4 ms per generated token,
lengths drawn from real MT-Bench turns; a latency instrument, not a model):

* ``1 process, C``: ``MusicAugmenter.iter_augment`` with one backend of concurrency C
  (the event scheduler keeps C requests in flight across rows);
* ``ray 2 actors x C``: ``music_aug.ray.augment(..., concurrency=2)``: each actor builds
  its own backend of concurrency C and runs ``--batch-size`` rows per call;
* ``1 process, 2C``: the same in-flight budget as the two actors, in one process.

The scaling ratio is (ray 2 x C) / (1 process, C): what a second actor (on a real
cluster: a second GPU, node or server) adds. On one loopback server with unlimited slots
``1 process, 2C`` gets the same budget without Ray, so (ray) / (1 process, 2C) is Ray's
cost. The Ray wall time includes starting the actors; a 2-row run measures that fixed part, and
the actors' busy time (inside their batches) gives the rate once they are up.
All runs must give identical pairs (checked). Totals of requests and tokens are printed for
the cost example in docs/scaling.md.

Run by hand:  .venv/bin/python benchmarks/bench_ray.py [--rows 32] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latency_server
from bench_schedule import make_rows

from music_aug.augmenter import MusicAugmenter
from music_aug.backends import OpenAIBackend
from music_aug.config import MusicConfig
from music_aug.summary import RunSummary


def _by_id(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {r["music_metadata"]["source_id"]: r for r in rows}


def one_process(url: str, rows: list[dict[str, Any]], config: MusicConfig, c: int) -> Any:
    from music_aug.batches import OUTPUT_COLUMNS
    from music_aug.pairs import output_table

    backend = OpenAIBackend("latency", base_url=url, max_concurrency=c, timeout=120)
    augmenter = MusicAugmenter(config, backend)
    started = time.perf_counter()
    out = [row for group in augmenter.iter_augment(rows) for row in group]
    wall = time.perf_counter() - started
    backend.close()
    typed = output_table({n: [r[n] for r in out] for n in OUTPUT_COLUMNS}).to_pylist()
    return wall, typed, augmenter.summary


def on_ray(
    url: str, rows: list[dict[str, Any]], config: MusicConfig, c: int, batch_size: int
) -> Any:
    import pyarrow as pa
    import ray

    import music_aug.ray as music_ray

    summary = music_ray.RaySummary()
    spec = {"kind": "openai", "model": "latency", "base_url": url, "concurrency": c,
            "timeout": 120}  # fmt: skip
    started = time.perf_counter()
    dataset = music_ray.augment(
        ray.data.from_items(rows), config, spec, concurrency=2, num_cpus=0.5,
        batch_size=batch_size, summary=summary,
    )  # fmt: skip
    out = pa.concat_tables(ray.get(dataset.to_arrow_refs())).to_pylist()
    return time.perf_counter() - started, out, summary.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="in flight per backend")
    parser.add_argument("--batch-size", type=int, default=8, help="rows per Ray batch")
    args = parser.parse_args()
    import ray

    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}")
    url, server = latency_server.start()
    rows = make_rows(args.rows)
    config = MusicConfig(max_turns=args.max_turns)
    c = args.concurrency
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results: list[tuple[str, int, float, RunSummary, dict[str, Any]]] = []
    try:
        overhead, _, _ = on_ray(url, rows[:2], config, c, args.batch_size)
        for label, budget, run in (
            (f"1 process, C={c}", c, lambda: one_process(url, rows, config, c)),
            (f"ray 2 actors x C={c}", 2 * c,
             lambda: on_ray(url, rows, config, c, args.batch_size)),
            (f"1 process, C={2 * c}", 2 * c, lambda: one_process(url, rows, config, 2 * c)),
        ):  # fmt: skip
            latency_server.stats(url, reset=True)
            wall, out, summary = run()
            results.append((label, budget, wall, summary, latency_server.stats(url)))
            if len(results) == 1:
                reference = _by_id(out)
            assert _by_id(out) == reference, f"{label}: pairs differ from the first run"
            print(f"{label}: {wall:.1f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        ray.shutdown()
        server.terminate()

    print(f"\nrows {args.rows}, max_turns {args.max_turns}, Ray batch size {args.batch_size}; "
          f"Ray fixed cost (2-row run, actor start): {overhead:.1f} s")  # fmt: skip
    print("| run | wall s | pairs | pairs/s | server requests | utilization | max in service |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, budget, wall, summary, served in results:
        use = served["busy_s"] / (budget * wall)
        pairs = summary.pairs_out
        print(f"| {label} | {wall:.1f} | {pairs} | {pairs / wall:.2f} | {served['requests']} | "
              f"{use:.0%} | {served['max_in_service']} |")  # fmt: skip
    base, ray_run, wide = (r[2] for r in results)
    print(f"\nscaling ratio (ray 2 x C) / (1 process, C): {base / ray_run:.2f}")
    print(f"ray / (1 process, 2C): {wide / ray_run:.2f}")
    # Each actor's time inside its batches (RaySummary adds them up): the rate once the
    # actors are up, without their start and without Ray's scheduling gaps between batches.
    busy = results[1][3].wall_time_s / 2
    rate = results[1][3].pairs_out / busy
    print(f"ray actors busy {busy:.1f} s each on average: {rate:.2f} pairs/s while busy, "
          f"scaling ratio {base / busy:.2f}")  # fmt: skip
    total = results[0][3]
    pairs = max(total.pairs_out, 1)
    slot_s = results[0][4]["busy_s"] / pairs
    print(f"per pair: {slot_s:.2f} server slot-seconds, "
          f"{total.usage['requests'] / pairs:.1f} requests, "
          f"{total.usage['prompt_tokens'] / pairs:.0f} prompt + "
          f"{total.usage['completion_tokens'] / pairs:.0f} completion tokens; "
          f"failed rows {total.failed}")  # fmt: skip


if __name__ == "__main__":
    main()
