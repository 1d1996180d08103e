"""CachedBackend: hits, misses, error policy, per-result commits, several processes."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from music_aug.backends import ChatRequest, ChatResult, EchoBackend, FunctionBackend
from music_aug.backends.cache import CachedBackend, cache_stats
from music_aug.cli import main
from music_aug.errors import ConfigError


def _requests(n: int, seed: int = 0) -> list[ChatRequest]:
    return [ChatRequest.completion(f"prompt {i}", seed=seed, max_tokens=8) for i in range(n)]


def test_second_run_is_served_from_the_cache(tmp_path: Path) -> None:
    inner = EchoBackend(seed=1)
    cached = CachedBackend(inner, tmp_path / "c.sqlite")
    first = cached.generate(_requests(5))
    assert inner.calls == 1 and len(inner.requests) == 5
    assert not any(r.cached for r in first)

    again = CachedBackend(EchoBackend(seed=1), tmp_path / "c.sqlite")  # a new process, say
    second = again.generate(_requests(5))
    assert again.backend.calls == 0  # type: ignore[attr-defined]
    assert all(r.cached for r in second)
    assert [r.text for r in second] == [r.text for r in first]
    assert [r.usage for r in second] == [r.usage for r in first]
    assert (again.hits, again.misses) == (5, 0)


def test_mixed_hits_and_misses_keep_request_order(tmp_path: Path) -> None:
    cached = CachedBackend(EchoBackend(), tmp_path / "c.sqlite")
    requests = _requests(6)
    cached.generate(requests[::2])
    results = cached.generate(requests)
    assert [r.cached for r in results] == [True, False] * 3
    assert [r.text for r in results] == [r.text for r in EchoBackend().generate(requests)]


def test_key_covers_seed_prompt_and_model(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    CachedBackend(EchoBackend(model="m1"), path).generate(_requests(2, seed=0))
    assert (
        CachedBackend(EchoBackend(model="m1"), path).generate(_requests(2, seed=1))[0].cached
        is False
    )
    assert (
        CachedBackend(EchoBackend(model="m2"), path).generate(_requests(2, seed=0))[0].cached
        is False
    )
    assert CachedBackend(EchoBackend(model="m1"), path).generate(_requests(2, seed=0))[0].cached


def test_errors_are_not_cached_and_are_retried_next_run(tmp_path: Path) -> None:
    attempts: dict[str, int] = {}

    def flaky(request: ChatRequest) -> str | ChatResult:
        attempts[request.prompt or ""] = attempts.get(request.prompt or "", 0) + 1
        if request.prompt == "prompt 1" and attempts["prompt 1"] == 1:
            return ChatResult.failure("http_503: unavailable")
        return f"answer to {request.prompt}"

    path = tmp_path / "c.sqlite"
    first = CachedBackend(FunctionBackend(flaky), path).generate(_requests(3))
    assert [r.ok for r in first] == [True, False, True]
    second_backend = FunctionBackend(flaky)
    second = CachedBackend(second_backend, path).generate(_requests(3))
    assert [r.ok for r in second] == [True, True, True]
    assert [r.prompt for r in second_backend.requests] == ["prompt 1"]  # only the failure resent
    assert [r.cached for r in second] == [True, False, True]


def test_identical_requests_in_one_batch_are_sent_once(tmp_path: Path) -> None:
    inner = EchoBackend()
    request = _requests(1)[0]
    results = CachedBackend(inner, tmp_path / "c.sqlite").generate([request, request, request])
    assert len(inner.requests) == 1
    assert len({r.text for r in results}) == 1 and len(results) == 3


class _StreamingThenCrash:
    """Yields two results one by one, then dies as a killed process would."""

    name = "stream"
    model = "stream-model"

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        raise AssertionError("iter_generate must be preferred")

    def iter_generate(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, ChatResult]]:
        for index in (1, 0):
            yield index, ChatResult(text=f"r{index}")
        raise KeyboardInterrupt  # the rest is lost, as after kill -9

    def close(self) -> None:
        pass


def test_each_result_is_committed_as_it_arrives(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cached = CachedBackend(_StreamingThenCrash(), path)  # type: ignore[arg-type]
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for index, _ in cached.iter_generate(_requests(4)):
            seen.append(index)
            # another connection (another process) already sees every yielded result
            rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM results").fetchone()[0]
            assert rows == len(seen)
    assert seen == [1, 0]
    assert cache_stats(path)["entries"] == 2


def _worker(path: str, offset: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    backend = CachedBackend(EchoBackend(), path)
    results = []
    for start in range(0, 40, 4):  # many small batches: many interleaved transactions
        requests = _requests(40)[start + offset : start + offset + 4]
        results.extend(backend.generate(requests))
    queue.put(sum(r.ok for r in results))


def test_several_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    parent = CachedBackend(EchoBackend(), path)
    parent.generate(_requests(1))  # parent holds an open connection before fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(path), k % 2, queue)) for k in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert sorted(queue.get() for _ in procs) == [39, 39, 40, 40]
    stats = cache_stats(path)
    assert stats["entries"] == 40
    assert stats["hits"] + stats["misses"] == 1 + 2 * 40 + 2 * 39
    assert all(r.cached for r in parent.generate(_requests(40)))


def test_pickle_drops_the_connection_and_keeps_working(tmp_path: Path) -> None:
    cached = CachedBackend(EchoBackend(), tmp_path / "c.sqlite")
    cached.generate(_requests(2))
    clone = pickle.loads(pickle.dumps(cached))
    assert clone._conn is None and clone.hits == 0
    assert pickle.dumps(clone) == pickle.dumps(pickle.loads(pickle.dumps(cached)))
    assert all(r.cached for r in clone.generate(_requests(2)))
    cached.close()
    cached.close()


def test_cache_stats_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.sqlite"
    cached = CachedBackend(EchoBackend(), path)
    cached.generate(_requests(3))
    cached.generate(_requests(4))
    stats = cache_stats(path)
    assert (stats["entries"], stats["hits"], stats["misses"]) == (4, 3, 4)
    assert stats["by_model"] == {"fake-echo": 4} and stats["size_bytes"] > 0

    assert main(["cache", "stats", str(path)]) == 0
    out = capsys.readouterr().out
    assert "entries: 4" in out and "hits:    3 (42.9% of lookups)" in out and "misses:  4" in out
    assert main(["cache", "stats", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 4


def test_cache_stats_bad_paths_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        cache_stats(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database, just text " * 100)
    with pytest.raises(ConfigError, match="not a music_aug request cache"):
        cache_stats(junk)
    assert main(["cache", "stats", str(tmp_path / "missing.sqlite")]) == 2


def _drain(stream: object, count: int) -> dict[int, ChatResult]:
    done: dict[int, ChatResult] = {}
    while len(done) < count:
        batch = stream.wait()  # type: ignore[attr-defined]
        assert batch, "the stream returned nothing with requests in flight"
        done.update(batch)
    return done


def test_stream_serves_hits_at_once_sends_duplicates_once_and_commits_each_result(
    tmp_path: Path,
) -> None:
    def answer(request: ChatRequest) -> str | ChatResult:
        if request.prompt == "prompt 3":
            return ChatResult.failure("http_500: down")
        return f"ok {request.prompt}"

    inner = FunctionBackend(answer)
    path = tmp_path / "c.sqlite"
    cached = CachedBackend(inner, path)
    cached.generate(_requests(2))  # prompts 0 and 1 are cached now
    stream = cached.stream()
    requests = _requests(5)
    stream.submit([(10 + i, r) for i, r in enumerate(requests)] + [(99, requests[4])])
    assert sorted(stream.wait()) == sorted((10 + i, cached.generate([requests[i]])[0])
                                           for i in range(2))  # fmt: skip
    done = _drain(stream, 4)
    assert sorted(done) == [12, 13, 14, 99] and done[14].text == done[99].text == "ok prompt 4"
    assert len(inner.requests) == 2 + 3  # prompt 4 was in flight once for two tickets
    assert not done[13].ok
    assert cache_stats(path)["entries"] == 4  # each success committed as it came back
    stream.close()


def test_stream_over_a_streaming_backend_keeps_its_capacity(tmp_path: Path) -> None:
    from music_aug.backends.fake import ShuffledBackend

    cached = CachedBackend(ShuffledBackend(EchoBackend(), 0, capacity=5), tmp_path / "c.sqlite")
    stream = cached.stream()
    assert stream.capacity == 5
    stream.submit(list(enumerate(_requests(6))))
    assert len(_drain(stream, 6)) == 6
    again = CachedBackend(ShuffledBackend(EchoBackend(), 1), tmp_path / "c.sqlite").stream()
    again.submit(list(enumerate(_requests(6))))
    assert all(result.cached for _, result in again.wait())
