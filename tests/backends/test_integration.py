"""MUSIC through OpenAIBackend against a real llama.cpp server, with and without injected faults.

The fault test sends 200+ requests with 20% of attempts faulted by ``FaultProxy`` and checks
the backend's and the augmenter's books against the proxy's own.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from fault_proxy import FAULTS, SUCCESS_KINDS, FaultProxy, request_label

from music_aug.augmenter import MusicAugmenter
from music_aug.backends import ChatRequest, ChatResult, OpenAIBackend
from music_aug.config import MusicConfig, default_sampling

pytestmark = pytest.mark.integration
Make = Callable[..., FaultProxy]

# what the backend reports for the proxy's last fault on an exhausted request
ERROR_PREFIX = {"429": "http_429", "500": "http_500", "503": "http_503", "stall": "timeout",
                "drop": "connection_error", "malformed": "bad_response"}  # fmt: skip


def _label(request: ChatRequest) -> str:
    content: Any = request.prompt
    if request.messages is not None:
        content = [dict(m) for m in request.messages]
    return request_label(content, request.sampling.seed)


class Recorder:
    """Wraps a backend and keeps every (request, result) it returned."""

    def __init__(self, backend: OpenAIBackend) -> None:
        self.backend = backend
        self.name, self.model = backend.name, backend.model
        self.seen: list[tuple[ChatRequest, ChatResult]] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        results = self.backend.generate(requests)
        self.seen.extend(zip(requests, results, strict=True))
        return results

    def close(self) -> None:
        self.backend.close()


class StreamRecorder(Recorder):
    """The same books over the backend's stream (the augmenter's event-driven path)."""

    def stream(self) -> Any:
        inner = self.backend.stream()
        seen, sent = self.seen, {}

        class Recording:
            capacity, calls = inner.capacity, 0

            def submit(self, items: Sequence[tuple[int, ChatRequest]]) -> None:
                sent.update(items)
                inner.submit(items)

            def wait(self) -> list[tuple[int, ChatResult]]:
                done = inner.wait()
                seen.extend((sent.pop(ticket), result) for ticket, result in done)
                return done

            def close(self) -> None:
                inner.close()

        return Recording()


def test_openai_backend_against_the_real_server(llama_server: str) -> None:
    backend = OpenAIBackend("smollm2", base_url=llama_server, max_concurrency=2, timeout=60)
    chat = ChatRequest.chat([{"role": "user", "content": "Say hello."}], max_tokens=8, seed=3)
    completion = ChatRequest.completion("Q: What is 2+2?\nA:", max_tokens=6, seed=3)
    first = backend.generate([chat, completion, chat])
    assert all(r.ok and r.text.strip() for r in first), first
    assert first[0].text == first[2].text  # llama.cpp honours the request seed
    assert first[1].usage.prompt_tokens < first[0].usage.prompt_tokens  # no chat template
    assert backend.stats.usage.completion_tokens == sum(r.usage.completion_tokens for r in first)
    backend.close()


def _check_backend_books(
    seen: list[tuple[ChatRequest, ChatResult]], proxy: FaultProxy, backend: OpenAIBackend
) -> Counter[str]:
    """Every request ended once, as the proxy's answer or an error result; counts agree."""
    attempts = [a for a in proxy.log if a.kind != "models"]
    by_label: dict[str, list[Any]] = {}
    for attempt in attempts:
        by_label.setdefault(attempt.label, []).append(attempt)
    kinds = Counter(a.kind for a in attempts)
    assert len(attempts) >= 200, kinds
    assert set(FAULTS) <= set(kinds), kinds  # every fault kind was exercised
    assert 0.1 <= sum(kinds[f] for f in FAULTS) / len(attempts) <= 0.3, kinds

    labels = [_label(request) for request, _ in seen]
    assert len(set(labels)) == len(labels), "requests must be distinct to be matched"
    assert set(by_label) == set(labels)  # nothing reached the server that was not asked
    for label, (request, result) in zip(labels, seen, strict=True):
        tries = by_label[label]
        successes = [a for a in tries if a.kind in SUCCESS_KINDS]
        assert len(tries) <= backend.max_retries + 1
        if result.ok:
            assert len(successes) == 1 and tries[-1] is successes[0], (request, tries)
            assert result.text == successes[0].text
            assert result.finish_reason == successes[0].finish_reason
        else:
            assert not successes and result.finish_reason is None
            assert result.error is not None
            assert result.error.startswith(ERROR_PREFIX[tries[-1].kind])
    failed = sum(not result.ok for _, result in seen)
    assert backend.stats.requests == len(seen) and backend.stats.attempts == len(attempts)
    assert backend.stats.failures == failed > 0
    retryable_faults = sum(kinds[f] for f in FAULTS if f != "truncate")
    # every retry answers one fault, and every exhausted request ends on one
    assert (len(attempts) - len(seen)) + failed == retryable_faults
    return kinds


def test_backend_survives_20_percent_faults_on_the_real_server(
    llama_server: str, make_proxy: Make
) -> None:
    proxy = make_proxy(llama_server, rate=0.2, faults=FAULTS, seed=7, stall_s=3.5, retry_after="1")
    backend = OpenAIBackend(
        "smollm2", base_url=proxy.url, max_concurrency=4, timeout=3.0, max_retries=1,
        retry_wait_initial=0.05,
    )  # fmt: skip
    recorder = Recorder(backend)
    requests = [ChatRequest.completion(f"{i}, {i + 1}, {i + 2},", max_tokens=6, seed=i)
                for i in range(200)]  # fmt: skip
    requests += [ChatRequest.chat([{"role": "user", "content": f"Hi {i}"}], max_tokens=6, seed=i)
                 for i in range(20)]  # fmt: skip
    results = recorder.generate(requests)
    backend.close()
    assert len(results) == len(requests)
    _check_backend_books(recorder.seen, proxy, backend)


def _small_config(seed: int = 1) -> MusicConfig:
    small = {role: replace(default_sampling(role), max_tokens=10)
             for role in ("contrast", "user", "assistant")}  # fmt: skip
    return MusicConfig(
        max_turns=2, user_turns="replay", seed=seed, contrast_sampling=small["contrast"],
        user_sampling=small["user"], assistant_sampling=small["assistant"],
    )  # fmt: skip


def _check_rows(out: list[dict[str, Any]], rows: list[dict[str, Any]], summary: Any) -> None:
    """Every row ends as a pair or a marked failure; none lost, none duplicated."""
    assert len(out) == len(rows)
    assert [row["music_metadata"]["source_id"] for row in out] == [r["id"] for r in rows]
    statuses = Counter(row["music_metadata"]["status"] for row in out)
    assert statuses == Counter({"ok": summary.pairs_out, "failed": summary.failed})
    assert summary.rows_in == len(rows)
    assert sum(summary.failures_by_reason.values()) == summary.failed
    for row in out:
        if row["music_metadata"]["status"] == "failed":
            assert row["music_metadata"]["error"]


@pytest.mark.parametrize("recorder_type", [Recorder, StreamRecorder])
def test_music_rows_survive_20_percent_faults(
    make_proxy: Make, mt_bench_records: list[dict[str, Any]], recorder_type: type[Recorder]
) -> None:
    proxy = make_proxy(rate=0.2, faults=FAULTS, seed=3, stall_s=1.5, retry_after="0.2")
    backend = OpenAIBackend(
        "canned", base_url=proxy.url, max_concurrency=16, timeout=1.0, max_retries=1,
        retry_wait_initial=0.01,
    )  # fmt: skip
    recorder = recorder_type(backend)
    rows = mt_bench_records[:40]
    augmenter = MusicAugmenter(_small_config(), recorder)  # type: ignore[arg-type]
    out = augmenter.augment_records(rows)
    backend.close()
    _check_backend_books(recorder.seen, proxy, backend)
    summary = augmenter.summary
    _check_rows(out, rows, summary)
    # the summary's books match the proxy's
    attempts = [a for a in proxy.log if a.kind != "models"]
    assert summary.usage["requests"] == len({a.label for a in attempts}) == len(recorder.seen)
    served = sum(a.completion_tokens for a in attempts if a.kind in SUCCESS_KINDS)
    assert summary.usage["completion_tokens"] == served
    failed_requests = [result.error for _, result in recorder.seen if not result.ok]
    errors = [row["music_metadata"]["error"] or "" for row in out]
    backend_errors = [error for error in errors if error.startswith("backend_error")]
    assert len(backend_errors) == summary.failures_by_reason.get("backend_error", 0)
    assert 0 < len(backend_errors) <= len(failed_requests)
    for error in backend_errors:
        assert any(reason in error for reason in failed_requests if reason)
    json.dumps(summary.to_dict())


def test_music_through_the_real_server(
    llama_server: str, make_proxy: Make, mt_bench_records: list[dict[str, Any]]
) -> None:
    proxy = make_proxy(llama_server)  # no faults: it only counts
    backend = OpenAIBackend("smollm2", base_url=proxy.url, max_concurrency=4, timeout=120)
    rows = mt_bench_records[:3]
    augmenter = MusicAugmenter(_small_config(), backend)
    out = augmenter.augment_records(rows)
    backend.close()
    _check_rows(out, rows, augmenter.summary)
    assert augmenter.summary.usage["requests"] == len(proxy.log) == backend.stats.requests
    assert any(row["music_metadata"]["status"] == "ok" for row in out), out
    for row in out:
        if row["music_metadata"]["status"] == "ok":
            assert row["chosen"] != row["rejected"]
            assert row["music_metadata"]["model"] == "smollm2"


def test_cli_keeps_concurrency_requests_in_flight_whatever_the_batch_size(
    make_proxy: Make, mt_bench_records: list[dict[str, Any]], tmp_path: Any
) -> None:
    from music_aug.cli import main

    proxy = make_proxy(latency_s=0.05)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in mt_bench_records[:12]))
    output = tmp_path / "out.jsonl"
    code = main(["augment", str(source), "-o", str(output), "--backend", "openai", "--model",
                 "canned", "--base-url", proxy.url, "--concurrency", "8", "--batch-size", "1",
                 "--max-turns", "3"])  # fmt: skip
    assert code == 0
    # the lock-step CLI kept <= 2 x batch-size requests in flight (2 here)
    assert proxy.max_in_flight == 8
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    ids = [row["music_metadata"]["source_id"] for row in rows]
    assert ids == [record["id"] for record in mt_bench_records[:12]]  # input order
