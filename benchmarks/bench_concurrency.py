"""Throughput of OpenAIBackend against a fixed-latency loopback server, and cache reruns.

The client's CPU time per request is printed too: the event loop is one thread, so
1000 / (ms per request) is the client's own ceiling in requests/s on an idle core.

A separate process runs a minimal HTTP/1.1 server that answers every chat or text
completion after exactly ``--latency`` seconds (a latency instrument, not a model). With
concurrency C the best possible rate is C / latency requests per second; the benchmark
reports the measured rate and its share of that bound at C = 1, 16 and 64
(goal: >= 90% at 64). The bound is a steady-state rate, so each run is ``--rounds`` x C
requests (default 32 rounds, ~7 s); a short 8-round batch at 64 is reported too, because
its first wave is sent and its last wave drained one request at a time by the client's
single event-loop thread, a fixed cost of roughly 2 x 64 x (client CPU per request).

Then it runs MUSIC over MT-Bench rows through ``CachedBackend(OpenAIBackend)`` twice: the
second run, over the finished cache, must make zero server calls; it reports pairs/s.

Run by hand:  .venv/bin/python benchmarks/bench_concurrency.py [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MT_BENCH = ROOT.parent / "shared" / "data" / "mt_bench_extended.jsonl"


def _answer(payload: dict[str, Any]) -> bytes:
    source = payload.get("prompt") or json.dumps(payload.get("messages"))
    digest = hashlib.sha256(f"{source}|{payload.get('seed')}".encode()).hexdigest()[:8]
    text = f"reply {digest} with a handful of distinct words"
    if "messages" in payload:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
    else:
        choice = {"index": 0, "text": text}
    choice["finish_reason"] = "stop"
    usage = {"prompt_tokens": 10, "completion_tokens": 8}
    body = {"id": digest, "object": "chat.completion", "created": 0, "model": "bench",
            "choices": [choice], "usage": usage}  # fmt: skip
    return json.dumps(body).encode()


def _serve(port_queue: Any, latency: float, counter: Any) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b"{}"
                await asyncio.sleep(latency)
                with counter.get_lock():
                    counter.value += 1
                payload = _answer(json.loads(body))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_queue.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def throughput(
    url: str, concurrency: int, latency: float, requests: int, transport: str
) -> dict[str, float]:
    from music_aug.backends import ChatRequest, OpenAIBackend

    backend = OpenAIBackend(
        "bench", base_url=url, max_concurrency=concurrency, timeout=30, http_transport=transport
    )
    warm = [ChatRequest.chat([{"role": "user", "content": f"warm {i}"}], max_tokens=8)
            for i in range(concurrency)]  # fmt: skip
    backend.generate(warm)  # open the connections first
    batch = [ChatRequest.chat([{"role": "user", "content": f"q {i}"}], max_tokens=8, seed=i)
             for i in range(requests)]  # fmt: skip
    start, cpu = time.perf_counter(), time.process_time()
    results = backend.generate(batch)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    backend.close()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    rate = requests / elapsed
    bound = concurrency / latency
    return {"concurrency": concurrency, "requests": requests, "seconds": elapsed,
            "req_per_s": rate, "bound": bound, "share": rate / bound,
            "cpu_ms_per_request": 1000 * cpu / requests}  # fmt: skip


def cache_rerun(url: str, counter: Any, rows: int) -> dict[str, float]:
    from music_aug.augmenter import MusicAugmenter
    from music_aug.backends import create_backend
    from music_aug.config import MusicConfig

    records = [json.loads(line) for line in MT_BENCH.read_text().splitlines()[:rows]]
    config = MusicConfig(max_turns=3, user_turns="simulate", seed=0)
    out: dict[str, float] = {"rows": rows}
    with tempfile.TemporaryDirectory() as folder:
        cache = str(Path(folder) / "cache.sqlite")
        for label in ("first", "rerun"):
            backend = create_backend("openai", model="bench", base_url=url, concurrency=64,
                                     cache=cache)  # fmt: skip
            before = counter.value
            start = time.perf_counter()
            augmenter = MusicAugmenter(config, backend)
            pairs = augmenter.augment_records(records)
            elapsed = time.perf_counter() - start
            backend.close()
            ok = sum(row["music_metadata"]["status"] == "ok" for row in pairs)
            out[f"{label}_server_calls"] = counter.value - before
            out[f"{label}_pairs"] = ok
            out[f"{label}_seconds"] = elapsed
            out[f"{label}_pairs_per_s"] = ok / elapsed
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=32, help="requests = rounds x concurrency")
    parser.add_argument(
        "--transport", default="auto", choices=["auto", "aiohttp", "httpx"],
        help="OpenAIBackend(http_transport=...)",
    )  # fmt: skip
    parser.add_argument("--rows", type=int, default=80, help="MT-Bench rows for the cache rerun")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    ports, counter = ctx.Queue(), ctx.Value("i", 0)
    server = ctx.Process(target=_serve, args=(ports, args.latency, counter), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{ports.get(timeout=30)}/v1"
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"transport {args.transport}")  # fmt: skip
    try:
        runs = [(c, max(20, args.rounds * c)) for c in (1, 16, 64)] + [(64, 8 * 64)]
        for concurrency, requests in runs:
            row = throughput(url, concurrency, args.latency, requests, args.transport)
            print(f"concurrency {concurrency:>3}: {row['requests']:>4} requests in "
                  f"{row['seconds']:.2f} s = {row['req_per_s']:.1f} req/s; bound "
                  f"{row['bound']:.1f} req/s; {row['share']:.1%} of bound; client CPU "
                  f"{row['cpu_ms_per_request']:.2f} ms/request")  # fmt: skip
        rerun = cache_rerun(url, counter, args.rows)
        print(f"MUSIC over {args.rows} rows (max_turns=3, simulated users), concurrency 64:")
        for label in ("first", "rerun"):
            print(f"  {label:>5}: {rerun[f'{label}_pairs']:.0f} pairs in "
                  f"{rerun[f'{label}_seconds']:.2f} s = {rerun[f'{label}_pairs_per_s']:.1f} "
                  f"pairs/s; server calls {rerun[f'{label}_server_calls']:.0f}")  # fmt: skip
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
