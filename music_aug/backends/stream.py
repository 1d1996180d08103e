"""The streaming side of the backend contract: submit requests any time, get results as they end.

A ``RequestStream`` takes ``(ticket, request)`` pairs while earlier ones are still running
and hands back ``(ticket, result)`` pairs in completion order. The augmenter's scheduler
keeps one open per run, so a branch sends its next request the moment its last result
arrives and a long answer holds up nobody else.

* A backend with a ``stream()`` method makes its own (``OpenAIBackend``: its async client;
  ``VLLMBackend``: vLLM's async engine; ``CachedBackend``: hits at once, misses through the
  wrapped backend's stream).
* Any other backend, one with only ``generate(list)``, gets a ``BatchStream``: every
  request that is ready when the scheduler waits goes into ONE ``generate`` call, so a
  simple backend is still called once per step, not once per row.
* ``AsyncStream`` serves backends built on an ``async`` call per request, running them on
  a ``LoopThread``.

Results never raise for one failed request (that result carries ``error``); an exception
out of ``wait`` means the backend itself broke. This module knows nothing about MUSIC.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from music_aug.backends.aloop import LoopThread
from music_aug.backends.base import Backend, ChatRequest, ChatResult
from music_aug.errors import BackendError

__all__ = ["AsyncStream", "BatchStream", "RequestStream", "iter_results", "open_stream"]

Item = tuple[int, ChatRequest]
Done = tuple[int, ChatResult]
# How often a waiting caller checks that the loop thread is still alive.
_POLL_S = 0.5


@runtime_checkable
class RequestStream(Protocol):
    """Requests in, results out in completion order.

    Attributes:
        capacity: how many requests the backend runs at once (``None``: it runs one
            ``generate`` call at a time, over everything submitted). The scheduler keeps
            about this many submitted to keep the backend full.
        calls: backend invocations so far (``generate`` calls, or ``submit`` batches).
    """

    capacity: int | None
    calls: int

    def submit(self, items: Sequence[Item]) -> None:
        """Start these requests; tickets are the caller's and must be unique in flight."""
        ...

    def wait(self) -> list[Done]:
        """Block until at least one submitted request has a result; return all that do.

        Returns ``[]`` when nothing is in flight.
        """
        ...

    def close(self) -> None:
        """Cancel what is still in flight. The backend stays open. Safe to call twice."""
        ...


def open_stream(backend: Backend) -> RequestStream:
    """The backend's own stream if it has one, else a ``BatchStream`` over ``generate``."""
    make = getattr(backend, "stream", None)
    if callable(make):
        stream: RequestStream = make()
        return stream
    return BatchStream(backend)


class BatchStream:
    """A stream over a backend without ``stream()``: one backend call per step.

    Everything submitted since the last call goes into one ``generate`` call, so a caller
    that submits all its ready requests before waiting gets the wave batching a simple
    backend expects. A backend that also offers ``iter_generate`` (results one by one, as
    ``LlamaCppBackend`` does) is called through it instead, and each ``wait`` returns the
    next result as soon as it exists, so a cache above commits every result as it comes.
    """

    capacity: int | None = None

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.calls = 0
        self._pending: list[Item] = []
        self._running: Iterator[tuple[int, ChatResult]] | None = None  # an iter_generate call
        self._tickets: list[int] = []  # of the running call, by request index

    def submit(self, items: Sequence[Item]) -> None:
        self._pending.extend(items)

    def wait(self) -> list[Done]:
        if self._running is not None:
            index_result = next(self._running, None)
            if index_result is not None:
                index, result = index_result
                return [(self._tickets[index], result)]
            self._running = None
        if not self._pending:
            return []
        batch, self._pending = self._pending, []
        self.calls += 1
        requests = [request for _, request in batch]
        one_by_one = getattr(self.backend, "iter_generate", None)
        if one_by_one is not None:
            self._running, self._tickets = iter(one_by_one(requests)), [t for t, _ in batch]
            return self.wait()
        results = self.backend.generate(requests)
        if len(results) != len(batch):
            name = getattr(self.backend, "name", type(self.backend).__name__)
            raise BackendError(
                f"backend {name!r} returned {len(results)} results for {len(batch)} requests; "
                "a Backend must return one result per request"
            )
        return [(ticket, result) for (ticket, _), result in zip(batch, results, strict=True)]

    def close(self) -> None:
        self._pending = []
        self._running = None


def iter_results(
    backend: Backend, requests: Sequence[ChatRequest]
) -> Iterator[tuple[int, ChatResult]]:
    """Yield ``(index, result)`` for every request, as early as the backend allows.

    Runs the requests through ``open_stream(backend)``: completion order for a streaming
    backend, one by one for one with ``iter_generate``, else one ``generate`` call.
    """
    if not requests:
        return
    stream = open_stream(backend)
    try:
        stream.submit(list(enumerate(requests)))
        left = len(requests)
        while left:
            done = stream.wait()
            if not done:
                raise BackendError(f"the backend's stream ended with {left} request(s) unanswered")
            left -= len(done)
            yield from done
    finally:
        stream.close()


class AsyncStream:
    """A stream over an ``async`` function per request, run on a ``LoopThread``.

    Args:
        loop: the event loop thread the coroutines run on (owned by the backend).
        run_one: ``request -> awaitable result``; it should turn failures into results, and
            anything it raises still becomes an error result for that request.
        capacity: how many requests the backend runs at once (for the scheduler's window).
    """

    def __init__(
        self,
        loop: LoopThread,
        run_one: Callable[[ChatRequest], Awaitable[ChatResult]],
        capacity: int | None,
    ) -> None:
        self.loop = loop
        self.run_one = run_one
        self.capacity = capacity
        self.calls = 0
        self._done: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0

    async def _one(self, ticket: int, request: ChatRequest) -> None:
        try:
            result = await self.run_one(request)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug costs one request, never a hang
            result = ChatResult.failure(f"error: {type(error).__name__}: {error}")
        self._done.put((ticket, result))

    def _start(self, items: Sequence[Item]) -> None:  # runs on the loop thread
        for ticket, request in items:
            task = asyncio.ensure_future(self._one(ticket, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def submit(self, items: Sequence[Item]) -> None:
        if not items:
            return
        if not self.loop.current:
            raise BackendError("the backend's event loop is not running (closed backend?)")
        self.calls += 1
        self._in_flight += len(items)
        self.loop.loop.call_soon_threadsafe(self._start, list(items))

    def wait(self) -> list[Done]:
        if self._in_flight == 0:
            return []
        while True:
            try:
                first = self._done.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if not self.loop.current:
                    raise BackendError(
                        f"the backend's event loop stopped with {self._in_flight} request(s) "
                        "in flight"
                    ) from None
        done = [first]
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                break
        self._in_flight -= len(done)
        return done

    def close(self) -> None:
        if self._in_flight and self.loop.current:

            def cancel() -> None:
                for task in list(self._tasks):
                    task.cancel()

            self.loop.loop.call_soon_threadsafe(cancel)
        self._in_flight = 0
