"""The event-driven request loop: keep the backend full, hand results back, emit rows in order.

Each input row is a ``Work``: it says which requests it needs now (``ready``), takes results
in any order (``receive``) and says when it is ``finished``. The loop submits every ready
request to a ``RequestStream`` at once, and whenever results come back hands each to its
row and submits whatever that row needs next, so up to the stream's capacity requests stay
in flight across all rows; no step waits for the slowest request of a wave. New rows are
admitted as others finish (a bounded window), and finished rows leave in input order.

With a ``BatchStream`` (a backend that only has ``generate(list)``) every request that is
ready when the loop waits goes into one call: rows admitted together advance together.

This module knows nothing about MUSIC; policy (retries, validation) lives in the rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from music_aug.backends.base import ChatRequest, ChatResult
from music_aug.backends.stream import RequestStream
from music_aug.errors import BackendError, MusicAugError

__all__ = ["Window", "Work", "run"]


class Work(Protocol):
    """One input row's share of the run."""

    row: int
    # how long the row's longest dependency chain is expected to be (any unit): at the end
    # of the input, longer rows start first, so the run does not end on a long row
    weight: int

    def ready(self) -> list[tuple[object, ChatRequest]]:
        """Requests needed now, each with a handle that comes back with its result."""
        ...

    def receive(self, handle: object, result: ChatResult) -> None:
        """Take the result of the request sent with ``handle``."""
        ...

    @property
    def finished(self) -> bool:
        """Nothing in flight and nothing more to send."""
        ...


W = TypeVar("W", bound=Work)


@dataclass(frozen=True)
class Window:
    """How much the loop admits.

    Attributes:
        rows: most unfinished rows at once (``None``: no limit of its own).
        requests: admit rows while fewer requests than this are submitted and unanswered
            (``None``: no limit of its own).
        buffered: most rows held at once, finished or not (a slow row at the head of the
            input holds later finished rows back, since rows leave in input order).
        lookahead: rows read ahead of those started. Rows start in input order; once the
            whole input is read, the heaviest of the rows left starts first: for the last
            rows this is longest-chain-first scheduling, which keeps the backend full while
            they drain (0: always input order).
    """

    rows: int | None = None
    requests: int | None = None
    buffered: int | None = None
    lookahead: int = 0

    @classmethod
    def for_stream(cls, stream: RequestStream, rows: int) -> Window:
        """Keep a streaming backend full; give a batch backend ``rows`` rows a call."""
        capacity = stream.capacity
        if capacity is None:
            return cls(rows=rows, buffered=max(4 * rows, 256))
        # A little more than capacity is submitted so a freed slot is refilled by the
        # backend itself, without a round trip through this loop.
        target = capacity + max(4, capacity // 4)
        return cls(requests=target, buffered=max(8 * target, 1024), lookahead=target)


def run(works: Iterable[W], stream: RequestStream, window: Window) -> Iterator[W]:
    """Drive ``works`` through ``stream``; yield each once it is finished, in input order.

    Raises:
        BackendError: the backend raised (named with the rows in flight), or a row was
            left with nothing in flight and nothing to send.
        MusicAugError: what a row's ``receive`` raised (e.g. ``on_error="raise"``); any
            other exception from a row is wrapped in one naming that row.
    """
    source = iter(works)
    exhausted = False
    order: deque[W] = deque()  # rows read, input order
    ahead: list[W] = []  # rows read but not started, input order
    in_flight: dict[int, tuple[W, object]] = {}
    batch: list[tuple[int, ChatRequest]] = []
    unfinished = 0
    ticket = 0

    def take(work: W) -> None:
        nonlocal ticket
        for handle, request in _guarded(work, work.ready):
            ticket += 1
            in_flight[ticket] = (work, handle)
            batch.append((ticket, request))

    def read_ahead() -> None:
        nonlocal exhausted
        while (
            not exhausted
            and len(ahead) <= window.lookahead
            and (window.buffered is None or len(order) < window.buffered)
        ):
            try:
                work = next(source)
            except StopIteration:
                exhausted = True
                return
            order.append(work)
            ahead.append(work)

    try:
        while True:
            read_ahead()
            while ahead and _room(window, unfinished, len(in_flight)):
                # in input order; once the input is all read, the heaviest row first
                pick = max(range(len(ahead)), key=lambda k: ahead[k].weight) if exhausted else 0
                work = ahead.pop(pick)
                take(work)
                if not work.finished:
                    unfinished += 1
                read_ahead()
            if batch:
                stream.submit(batch)
                batch.clear()
            while order and order[0].finished:
                yield order.popleft()
            if not in_flight:
                if unfinished:
                    waiting = {id(entry) for entry in ahead}
                    stuck = next(w for w in order if not w.finished and id(w) not in waiting)
                    raise BackendError(f"row {stuck.row}: nothing in flight and nothing to send")
                if exhausted and not order and not ahead:
                    return
                continue
            done = _wait(stream, in_flight)
            touched: dict[int, W] = {}
            for number, result in done:
                work, handle = in_flight.pop(number)
                _guarded(work, work.receive, handle, result)
                touched[id(work)] = work
            for work in touched.values():
                take(work)
                if work.finished:
                    unfinished -= 1
    finally:
        stream.close()


def _wait(
    stream: RequestStream, in_flight: dict[int, tuple[W, object]]
) -> list[tuple[int, ChatResult]]:
    try:
        done = stream.wait()
    except MusicAugError:
        raise
    except Exception as error:
        rows = sorted({work.row for work, _ in in_flight.values()})
        shown = ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")
        raise BackendError(
            f"the backend raised {type(error).__name__}: {error} (rows in flight: {shown}); "
            "a backend should return failed results, not raise"
        ) from error
    if not done:
        raise BackendError(f"the backend's stream returned nothing with {len(in_flight)} "
                           "request(s) in flight")  # fmt: skip
    return done


def _room(window: Window, unfinished: int, submitted: int) -> bool:
    if window.rows is not None and unfinished >= window.rows:
        return False
    return window.requests is None or submitted < window.requests


def _guarded(work: Work, method, *args):  # type: ignore[no-untyped-def]
    """Call a row's method; a bug in it becomes a ``MusicAugError`` naming the row."""
    try:
        return method(*args)
    except MusicAugError:
        raise
    except Exception as error:
        raise MusicAugError(
            f"row {work.row}: internal error in {getattr(method, '__name__', 'a row')}: "
            f"{type(error).__name__}: {error}"
        ) from error
