"""A loopback OpenAI-compatible server whose latency follows real answer lengths.

Not a model: a latency instrument for scheduling benchmarks. Each request is answered
after ``base + per_token x n`` seconds (default 30 ms + 4 ms per generated token, about a
9B model on one GPU slot), where ``n = min(max_tokens, L)`` and ``L`` is drawn, by a hash
of the request body (so the same request always costs the same), from the token lengths
of real MT-Bench turns in ``../shared/data/mt_bench_extended.jsonl`` (tokens ~ chars / 4):

* chat requests (assistant answers) draw from the assistant answers (median ~263 tokens,
  51% longer than the default 256-token budget, so they are cut there as a real engine
  would);
* completion requests (MUSIC's contrast rewrites and simulated user turns) draw from the
  user turns (median ~42 tokens, capped by their 64-token budget).

The reply is ``n`` three-letter words on one line (valid for MUSIC's parsers) with
``usage.completion_tokens = n`` and ``finish_reason = "length"`` when capped. The server
counts busy slot-seconds (the sum of every request's service time), requests and the
most requests in service at once; ``GET /stats`` returns them, ``POST /reset`` zeroes
them. It runs in its own process (``start``) so its CPU is not the client's.

Run alone:  python benchmarks/latency_server.py --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MT_BENCH = ROOT.parent / "shared" / "data" / "mt_bench_extended.jsonl"

__all__ = ["LatencyModel", "start"]


class LatencyModel:
    """Service time of a request from the real length distribution (see module docstring)."""

    def __init__(self, base_s: float = 0.030, per_token_s: float = 0.004) -> None:
        self.base_s = base_s
        self.per_token_s = per_token_s
        answers: list[int] = []
        users: list[int] = []
        with MT_BENCH.open(encoding="utf-8") as handle:
            for line in handle:
                for message in json.loads(line)["messages"]:
                    tokens = max(1, round(len(message["content"]) / 4))
                    (answers if message["role"] == "assistant" else users).append(tokens)
        self.lengths = {"chat": sorted(answers), "completion": sorted(users)}

    def tokens(self, kind: str, body: bytes, max_tokens: int) -> int:
        """Generated tokens of a request: a quantile picked by the body's hash, capped."""
        lengths = self.lengths[kind]
        u = int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "big") / 2**64
        drawn = lengths[min(len(lengths) - 1, int(u * len(lengths)))]
        return max(1, min(max_tokens, drawn))

    def seconds(self, tokens: int) -> float:
        return self.base_s + self.per_token_s * tokens


def _reply(payload: dict[str, Any], kind: str, tokens: int, capped: bool) -> bytes:
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    # about 4 characters a token, as in English text
    words = " ".join(digest[(5 * i) % 61 : (5 * i) % 61 + 3] for i in range(tokens))
    text = f"Reply {digest[:8]} {words}"
    finish = "length" if capped else "stop"
    if kind == "chat":
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
    else:
        choice = {"index": 0, "text": text}
    choice["finish_reason"] = finish
    prompt = payload.get("prompt") or json.dumps(payload.get("messages"))
    usage = {"prompt_tokens": len(str(prompt)) // 4, "completion_tokens": tokens}
    body = {"id": digest[:12], "object": "completion", "created": 0, "model": "latency",
            "choices": [choice], "usage": usage}  # fmt: skip
    return json.dumps(body).encode()


def _serve(port_queue: Any, port: int, base_s: float, per_token_s: float) -> None:
    model = LatencyModel(base_s, per_token_s)
    stats = {"busy_s": 0.0, "requests": 0, "in_service": 0, "max_in_service": 0,
             "first_start": 0.0, "last_end": 0.0}  # fmt: skip

    def respond(writer: asyncio.StreamWriter, payload: bytes, status: str = "200 OK") -> None:
        head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        writer.write(head % (status.encode(), len(payload)) + payload)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                method, path = head.split(" ", 2)[:2]
                length = 0
                for line in head.split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                if path.endswith("/stats"):
                    respond(writer, json.dumps(stats).encode())
                elif path.endswith("/reset"):
                    stats.update(busy_s=0.0, requests=0, in_service=0, max_in_service=0,
                                 first_start=0.0, last_end=0.0)  # fmt: skip
                    respond(writer, b"{}")
                elif method == "POST" and path.endswith("completions"):
                    payload = json.loads(body)
                    kind = "chat" if path.endswith("chat/completions") else "completion"
                    limit = int(payload.get("max_tokens") or 256)
                    tokens = model.tokens(kind, body, limit)
                    service = model.seconds(tokens)
                    started = time.monotonic()
                    stats["first_start"] = stats["first_start"] or started
                    stats["in_service"] += 1
                    stats["max_in_service"] = max(stats["max_in_service"], stats["in_service"])
                    await asyncio.sleep(service)
                    stats["in_service"] -= 1
                    stats["busy_s"] += service
                    stats["requests"] += 1
                    stats["last_end"] = time.monotonic()
                    respond(writer, _reply(payload, kind, tokens, tokens == limit))
                else:
                    respond(writer, b'{"data": [{"id": "latency"}]}')
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        port_queue.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def start(base_s: float = 0.030, per_token_s: float = 0.004) -> tuple[str, Any]:
    """Start the server in a child process; returns (``http://127.0.0.1:PORT/v1``, process)."""
    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    process = ctx.Process(target=_serve, args=(ports, 0, base_s, per_token_s), daemon=True)
    process.start()
    return f"http://127.0.0.1:{ports.get(timeout=60)}/v1", process


def stats(url: str, *, reset: bool = False) -> dict[str, float]:
    """The server's counters (and zero them with ``reset=True``)."""
    import urllib.request

    request = urllib.request.Request(f"{url}/reset" if reset else f"{url}/stats",
                                     data=b"{}" if reset else None)  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--base-ms", type=float, default=30.0)
    parser.add_argument("--per-token-ms", type=float, default=4.0)
    options = parser.parse_args()
    queue: Any = multiprocessing.Queue()
    _serve(queue, options.port, options.base_ms / 1000, options.per_token_ms / 1000)
