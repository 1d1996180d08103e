"""The event-driven scheduler: same pairs in any completion order, rows in order, no hangs."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from music_aug.augmenter import MusicAugmenter
from music_aug.backends.base import ChatRequest, ChatResult, Usage
from music_aug.backends.fake import EchoBackend, FunctionBackend, ShuffledBackend
from music_aug.config import MusicConfig
from music_aug.errors import AugmentationError, BackendError, MusicAugError


def _flaky(role_of: Any) -> Any:
    """Deterministic per request: backend errors, copied contrasts, empty answers, usage."""

    def answer(request: ChatRequest) -> str | ChatResult:
        h = int(hashlib.sha256(request.key("x").encode()).hexdigest()[:8], 16)
        role = role_of(request)
        if h % 13 == 0:
            return ChatResult.failure("http_500: boom")
        if role == "perturb" and h % 3 == 0:
            return "COPY"  # rejected by validation: a retry with a new seed
        if role == "assistant" and h % 17 == 0:
            return ""
        return ChatResult(text=f"text {h % 99991} for {role}", usage=Usage(h % 50, h % 7 + 1))

    return answer


def _dump(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, sort_keys=True, ensure_ascii=False)


CONFIGS = [
    {"max_turns": 4, "max_attempts": 2},
    {"max_turns": 3, "user_turns": "replay", "pairs_per_conversation": 2},
    {"max_turns": 3, "contrast_turns": 1, "on_error": "skip"},
]


@pytest.mark.parametrize("options", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_completion_order_gives_byte_identical_rows(
    options: dict[str, Any], seed: int, mt_bench_records: list[dict[str, Any]], fake_roles: Any
) -> None:
    role_of, _, _ = fake_roles
    records = mt_bench_records[:20]
    config = MusicConfig(seed=seed, **options)
    reference = MusicAugmenter(config, FunctionBackend(_flaky(role_of))).augment_records(records)
    statuses = {row["music_metadata"]["status"] for row in reference}
    assert "ok" in statuses and (statuses & {"failed"} or options.get("on_error") == "skip")
    for order_seed, capacity in ((seed, 3), (seed + 10, 64)):
        shuffled = ShuffledBackend(FunctionBackend(_flaky(role_of)), order_seed, capacity=capacity)
        augmenter = MusicAugmenter(config, shuffled)
        assert _dump(augmenter.augment_records(records)) == _dump(reference)
        streamed = MusicAugmenter(config, shuffled)
        rows = [row for out in streamed.iter_augment(iter(records)) for row in out]
        assert _dump(rows) == _dump(reference)


def test_iter_augment_yields_every_row_once_in_input_order(make_record: Any) -> None:
    records = [make_record(1 + i % 3, f"row{i}") for i in range(30)]
    records[7] = {"messages": [{"role": "assistant", "content": "no user turn"}]}  # bad row
    config = MusicConfig(max_turns=3, pairs_per_conversation=2)
    backend = ShuffledBackend(EchoBackend(), 5, capacity=4)
    outputs = list(MusicAugmenter(config, backend).iter_augment(records))
    assert len(outputs) == 30
    assert outputs[7][0]["music_metadata"]["status"] == "failed"
    assert outputs[7][0]["music_metadata"]["source_id"] == "row-7"
    for k, out in enumerate(outputs):
        if k != 7:
            ids = {row["music_metadata"]["source_id"] for row in out}
            assert len(out) == 2 and len(ids) == 1  # two pairs of one source, in place


class _CountingStreamBackend(ShuffledBackend):
    """Records how many requests were submitted and unanswered at most."""

    def stream(self) -> Any:
        stream = super().stream()
        outer = self
        outer.peak = 0
        submit, wait = stream.submit, stream.wait

        def counting_submit(items: Sequence[tuple[int, ChatRequest]]) -> None:
            submit(items)
            outer.peak = max(outer.peak, len(stream._pending))

        stream.submit, stream.wait = counting_submit, wait  # type: ignore[method-assign]
        return stream


def test_streaming_backend_is_kept_full_and_rows_are_read_lazily(make_record: Any) -> None:
    pulled = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield make_record(2, f"r{i}")

    backend = _CountingStreamBackend(EchoBackend(), 1, capacity=16)
    augmenter = MusicAugmenter(MusicConfig(max_turns=3), backend)
    stream = augmenter.iter_augment(rows())
    first = next(stream)
    assert first and pulled < 200  # the window, not the whole input, was read
    assert len(list(stream)) == 199
    assert backend.peak >= 16  # at least capacity submitted at once
    assert augmenter.summary.rows_in == 200 and augmenter.summary.pairs_out == 200


def test_batch_backend_gets_batch_size_rows_per_call(make_record: Any) -> None:
    backend = FunctionBackend(lambda r: f"some new text {r.sampling.seed} here")
    augmenter = MusicAugmenter(MusicConfig(max_turns=2, branch="first"), backend)
    records = [make_record(1, f"row{i}") for i in range(12)]
    list(augmenter.iter_augment(records, batch_size=4))
    # 4 rows x 2 branches at most per call: never the whole input at once
    assert max(len(batch) for batch in _batches(backend)) <= 8
    with pytest.raises(MusicAugError, match="batch_size"):
        augmenter.iter_augment(records, batch_size=0)


def _batches(backend: FunctionBackend) -> list[list[ChatRequest]]:
    return backend.batches  # type: ignore[attr-defined, no-any-return]


@pytest.fixture(autouse=True)
def _record_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    original = FunctionBackend.generate

    def generate(self: FunctionBackend, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        self.__dict__.setdefault("batches", []).append(list(requests))
        return original(self, requests)

    monkeypatch.setattr(FunctionBackend, "generate", generate)


def _run_with_deadline(fn: Any, seconds: float = 20.0) -> BaseException | None:
    caught: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as error:
            caught.append(error)

    thread = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the run hung for {time.monotonic() - started:.0f} s"
    return caught[0] if caught else None


def test_a_raising_backend_ends_the_run_promptly_naming_the_rows(make_record: Any) -> None:
    def explode(request: ChatRequest) -> str:
        raise RuntimeError("GPU fell off the bus")

    for backend in (FunctionBackend(explode), ShuffledBackend(FunctionBackend(explode), 0)):
        augmenter = MusicAugmenter(MusicConfig(), backend)
        records = [make_record(2, f"r{i}") for i in range(5)]
        error = _run_with_deadline(lambda a=augmenter, r=records: a.augment_records(r))
        assert isinstance(error, BackendError)
        assert "GPU fell off the bus" in str(error)
        assert "rows in flight: 0, 1, 2, 3, 4" in str(error)


def test_a_bug_in_a_row_callback_is_a_typed_error_naming_the_row(
    make_record: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    augmenter = MusicAugmenter(MusicConfig(), ShuffledBackend(EchoBackend(), 0))

    def broken(job: Any, branch: Any, result: ChatResult) -> None:
        if job.row == 3:
            raise KeyError("oops")

    monkeypatch.setattr(augmenter.stepper, "receive", broken)
    records = [make_record(2, f"r{i}") for i in range(6)]
    error = _run_with_deadline(lambda: list(augmenter.iter_augment(records)))
    assert isinstance(error, MusicAugError) and not isinstance(error, BackendError)
    assert str(error).startswith("row 3: internal error in receive: KeyError")


def test_on_error_raise_stops_the_stream_at_the_first_failure(make_record: Any) -> None:
    closed: list[bool] = []
    backend = ShuffledBackend(FunctionBackend(lambda r: ChatResult.failure("http_500: x")), 0)
    make = backend.stream

    def stream() -> Any:
        made = make()
        close = made.close
        made.close = lambda: (closed.append(True), close())  # type: ignore[method-assign]
        return made

    backend.stream = stream  # type: ignore[method-assign]
    augmenter = MusicAugmenter(MusicConfig(on_error="raise"), backend)
    with pytest.raises(AugmentationError, match="http_500") as caught:
        list(augmenter.iter_augment([make_record(2, f"r{i}") for i in range(4)]))
    assert caught.value.reason == "backend_error"
    assert closed == [True]


class _OneRequest:
    """A minimal ``Work``: one request, finished when its result is in."""

    def __init__(self, row: int, weight: int, started: list[int]) -> None:
        self.row, self.weight, self.started = row, weight, started
        self.sent = self.done = False

    def ready(self) -> list[tuple[object, ChatRequest]]:
        if self.sent:
            return []
        self.sent = True
        self.started.append(self.row)
        return [(None, ChatRequest.completion(f"row {self.row}"))]

    def receive(self, handle: object, result: ChatResult) -> None:
        self.done = True

    @property
    def finished(self) -> bool:
        return self.done


def test_the_last_rows_start_heaviest_first_and_all_leave_in_input_order() -> None:
    from music_aug import scheduler

    weights = [1, 5, 2, 9, 3, 7, 4, 8, 6, 0, 2, 2]
    started: list[int] = []
    works = [_OneRequest(i, w, started) for i, w in enumerate(weights)]
    stream = ShuffledBackend(EchoBackend(), 3, capacity=2).stream()
    window = scheduler.Window.for_stream(stream, rows=16)
    assert (window.requests, window.lookahead) == (6, 6)
    finished = [work.row for work in scheduler.run(works, stream, window)]
    assert finished == list(range(12))  # input order out
    assert sorted(started) == list(range(12))
    # rows start in input order until the input is all read (the window reads 7 ahead of
    # the 6 it starts first), then the heaviest of the rest go first
    assert started[:6] == [0, 1, 2, 3, 4, 5]
    rest = started[6:]
    assert [weights[k] for k in rest[:3]] == sorted((weights[k] for k in rest), reverse=True)[:3]
