"""Deterministic fake backends for tests, yours and ours.

* ``FunctionBackend(fn)``: every request's text is ``fn(request)`` (a ``str`` or a full
  ``ChatResult``). Counts ``generate`` calls and requests, so tests can check batching.
* ``EchoBackend(seed)``: answers with a short deterministic text derived from the request
  and seed, always different from the last message, so MUSIC's validity checks pass.
* ``ShuffledBackend(inner, seed)``: a streaming wrapper that completes the requests in
  flight in a seeded random order and in random-sized groups, like a serving engine whose
  answers differ in length. Use it to check that a pipeline's output does not depend on
  completion order.

Neither sleeps, does I/O or imports a model library.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable, Sequence

from music_aug.backends.base import Backend, ChatRequest, ChatResult, Usage

__all__ = ["EchoBackend", "FunctionBackend", "ShuffledBackend"]


def _last_text(request: ChatRequest) -> str:
    if request.messages is not None:
        return request.messages[-1]["content"] if request.messages else ""
    return request.prompt or ""


class FunctionBackend:
    """A backend whose answers come from a Python function.

    Example:
        >>> backend = FunctionBackend(lambda req: "ok")
        >>> backend.generate([ChatRequest.completion("hi")])[0].text
        'ok'
    """

    name = "fake"

    def __init__(
        self, fn: Callable[[ChatRequest], str | ChatResult], *, model: str = "fake-function"
    ) -> None:
        self.fn = fn
        self.model = model
        self.calls = 0
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        with self._lock:
            self.calls += 1
            self.requests.extend(requests)
        results = []
        for request in requests:
            out = self.fn(request)
            if isinstance(out, ChatResult):
                results.append(out)
            else:
                usage = Usage(len(_last_text(request).split()), len(out.split()))
                results.append(ChatResult(text=out, finish_reason="stop", usage=usage))
        return results

    def close(self) -> None:
        pass

    def __getstate__(self) -> dict[str, object]:
        # Counters are per-process run state, not identity: a pickled copy starts at zero,
        # so a backend's pickle (and a datasets fingerprint over it) does not change with use.
        state = self.__dict__.copy()
        del state["_lock"]
        state["calls"] = 0
        state["requests"] = []
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class EchoBackend(FunctionBackend):
    """Deterministic, seed-dependent answers that differ from the request text.

    The text is ``"<kind> reply <hash8>: <first words of the last message>"`` where the hash
    covers the whole request (messages or prompt, sampling seed) and ``seed``; the same
    request always gives the same answer.
    """

    def __init__(self, seed: int = 0, *, model: str = "fake-echo") -> None:
        self.seed = seed
        super().__init__(self._answer, model=model)

    def _answer(self, request: ChatRequest) -> str:
        digest = hashlib.sha256(f"{self.seed}|{request.key(self.model)}".encode()).hexdigest()
        words = " ".join(_last_text(request).split()[:8])
        return f"{request.kind} reply {digest[:8]}: {words}"


class ShuffledBackend:
    """Complete requests out of order: a ``stream()`` over ``inner`` with seeded shuffling.

    Each ``wait`` answers a random non-empty subset of what is in flight (through one
    ``inner.generate`` call) and returns it in random order; the rest stay in flight.

    Args:
        inner: the backend that computes the answers.
        seed: seed of the completion order.
        capacity: the capacity the stream reports to the scheduler.
    """

    def __init__(self, inner: Backend, seed: int = 0, *, capacity: int = 8) -> None:
        self.inner = inner
        self.seed = seed
        self.capacity = capacity
        self.name = inner.name
        self.model = inner.model

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return self.inner.generate(requests)

    def stream(self) -> _ShuffledStream:
        return _ShuffledStream(self.inner, random.Random(self.seed), self.capacity)

    def close(self) -> None:
        self.inner.close()


class _ShuffledStream:
    def __init__(self, inner: Backend, rng: random.Random, capacity: int) -> None:
        self.inner = inner
        self.rng = rng
        self.capacity: int | None = capacity
        self.calls = 0
        self._pending: list[tuple[int, ChatRequest]] = []

    def submit(self, items: Sequence[tuple[int, ChatRequest]]) -> None:
        self.calls += 1
        self._pending.extend(items)

    def wait(self) -> list[tuple[int, ChatResult]]:
        if not self._pending:
            return []
        self.rng.shuffle(self._pending)
        count = self.rng.randint(1, len(self._pending))
        now, self._pending = self._pending[:count], self._pending[count:]
        results = self.inner.generate([request for _, request in now])
        return [(ticket, result) for (ticket, _), result in zip(now, results, strict=True)]

    def close(self) -> None:
        self._pending = []
