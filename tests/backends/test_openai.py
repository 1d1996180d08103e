"""OpenAIBackend against a loopback fake server: requests, retries, limits, sync/async, secrets."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import time
from collections.abc import Callable

import pytest
from fault_proxy import FaultProxy

from music_aug.backends import ChatRequest, OpenAIBackend, create_backend
from music_aug.backends.cache import CachedBackend
from music_aug.errors import ConfigError

Make = Callable[..., FaultProxy]
SENTINEL = "sk-SENTINEL-5f1c0e9d-never-print-me"


def _backend(proxy: FaultProxy, **options: object) -> OpenAIBackend:
    defaults: dict[str, object] = {"timeout": 2.0, "retry_wait_initial": 0.01, "max_retries": 3}
    return OpenAIBackend("canned", base_url=proxy.url, **{**defaults, **options})  # type: ignore[arg-type]


def _chat(text: str, seed: int = 0) -> ChatRequest:
    return ChatRequest.chat([{"role": "user", "content": text}], seed=seed, max_tokens=8)


def test_chat_and_completion_use_their_endpoints_and_send_the_seed(make_proxy: Make) -> None:
    proxy = make_proxy()
    backend = _backend(proxy)
    results = backend.generate(
        [_chat("hi", 1), _chat("hi", 2), _chat("hi", 1), ChatRequest.completion("Once", seed=1)]
    )
    assert all(r.ok and r.text.startswith("canned answer") for r in results)
    assert results[0].text == results[2].text != results[1].text  # the seed reached the server
    paths = sorted(a.path for a in proxy.log)  # concurrent requests arrive in any order
    assert paths == ["/v1/chat/completions"] * 3 + ["/v1/completions"]
    assert backend.stats.usage.completion_tokens == 4 * 8
    assert (backend.stats.requests, backend.stats.attempts) == (4, 4)
    backend.close()
    backend.close()


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("fault", ["429", "500", "503", "stall", "drop", "malformed"])
def test_transient_faults_are_retried(make_proxy: Make, fault: str, transport: str) -> None:
    proxy = make_proxy(script=(fault, fault), stall_s=3.0, retry_after="0")
    backend = _backend(proxy, timeout=1.0, http_transport=transport)
    [result] = backend.generate([_chat("hello")])
    assert result.ok, result.error
    assert [a.kind for a in proxy.log] == [fault, fault, "ok"]
    assert backend.stats.retries == 2


def test_retry_after_is_honoured(make_proxy: Make) -> None:
    proxy = make_proxy(script=("429",), retry_after="1")
    backend = _backend(proxy, retry_wait_initial=0.01)
    start = time.monotonic()
    [result] = backend.generate([_chat("hello")])
    assert result.ok and time.monotonic() - start >= 0.95


def test_truncated_answers_are_results_with_finish_reason_length(make_proxy: Make) -> None:
    proxy = make_proxy(script=("truncate",))
    [result] = _backend(proxy).generate([_chat("hello")])
    assert result.ok and result.finish_reason == "length"
    assert result.text == proxy.log[0].text and len(proxy.log) == 1


def test_client_errors_are_not_retried_and_exhaustion_is_an_error_result(make_proxy: Make) -> None:
    proxy = make_proxy()
    backend = _backend(proxy, max_retries=2)
    bad, down, fine = backend.generate([_chat("ALWAYS_400"), _chat("ALWAYS_503"), _chat("ok")])
    assert bad.error is not None and bad.error.startswith("http_400")
    assert down.error is not None and down.error.startswith("http_503")
    assert fine.ok and bad.finish_reason is None
    assert [len(v) for v in proxy.by_body().values()] == [1, 3, 1]
    assert backend.stats.failures_by_reason == {"http_400": 1, "http_503": 1}


def test_timeouts_end_as_timeout_errors(make_proxy: Make) -> None:
    proxy = make_proxy(rate=1.0, faults=("stall",), stall_s=2.0)
    backend = _backend(proxy, timeout=0.3, max_retries=1)
    start = time.monotonic()
    [result] = backend.generate([_chat("hello")])
    assert result.error == "timeout" and len(proxy.log) == 2
    assert time.monotonic() - start < 1.9  # the client gave up, it did not wait for the stall


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_failure_reasons_are_right_on_both_transports(make_proxy: Make, transport: str) -> None:
    # openai's aiohttp transport reports a dropped connection as a connect timeout;
    # the reason must still say what happened.
    proxy = make_proxy(script=("drop", "stall"), stall_s=2.0)
    backend = _backend(proxy, timeout=0.5, max_retries=0, http_transport=transport)
    assert backend.http_transport == transport and transport in repr(backend)
    [dropped] = backend.generate([_chat("one")])
    [stalled] = backend.generate([_chat("two")])
    assert dropped.error is not None and dropped.error.startswith("connection_error"), dropped
    assert stalled.error == "timeout"


def test_unknown_transport_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="http_transport"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", http_transport="curl")


def test_concurrency_is_bounded_by_the_semaphore(make_proxy: Make) -> None:
    proxy = make_proxy(latency_s=0.2)
    results = _backend(proxy, max_concurrency=3).generate([_chat(str(i)) for i in range(9)])
    assert all(r.ok for r in results)
    assert proxy.max_in_flight == 3


def test_requests_per_minute_limit_spaces_requests(make_proxy: Make) -> None:
    proxy = make_proxy()
    backend = _backend(proxy, rpm=600)  # 10/s, bursts of at most 10
    start = time.monotonic()
    assert all(r.ok for r in backend.generate([_chat(str(i)) for i in range(25)]))
    assert time.monotonic() - start >= 1.4  # 15 requests beyond the burst at 10/s


def test_tokens_per_minute_limit_counts_tokens(make_proxy: Make) -> None:
    proxy = make_proxy()
    backend = _backend(proxy, tpm=60 * 40)  # 40 tokens/s; each request is estimated at ~8+
    start = time.monotonic()
    assert all(r.ok for r in backend.generate([_chat(str(i)) for i in range(12)]))
    assert time.monotonic() - start >= 1.5


def test_usable_inside_a_running_event_loop_and_awaitable(make_proxy: Make) -> None:
    proxy = make_proxy()
    backend = _backend(proxy)

    async def notebook_cell() -> tuple[str, str]:
        sync_result = backend.generate([_chat("sync")])[0]  # what a Jupyter user would write
        async_result = (await backend.agenerate([_chat("async")]))[0]
        return sync_result.text, async_result.text

    sync_text, async_text = asyncio.run(notebook_cell())
    assert sync_text.startswith("canned") and async_text.startswith("canned")


def _child(backend: OpenAIBackend, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(backend.generate([_chat("from the child")])[0].ok)


def test_works_after_pickling_and_in_a_forked_child(make_proxy: Make) -> None:
    proxy = make_proxy()
    backend = _backend(proxy)
    assert backend.generate([_chat("parent")])[0].ok  # parent has a live loop and client
    clone = pickle.loads(pickle.dumps(backend))
    assert clone._runtime is None and clone.stats.attempts == 0
    assert clone.generate([_chat("clone")])[0].ok
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(backend, queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and queue.get(timeout=5) is True


def test_api_key_comes_from_env_and_never_leaks(
    make_proxy: Make,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: pytest.TempPathFactory,
) -> None:
    monkeypatch.setenv("MY_LLM_KEY", SENTINEL)
    proxy = make_proxy(script=("429", "400"), retry_after="0")
    caplog.set_level(logging.DEBUG)
    backend = create_backend(
        "openai", model="canned", base_url=proxy.url, api_key_env="MY_LLM_KEY",
        cache=str(tmp_path / "c.sqlite"),  # type: ignore[operator]
    )  # fmt: skip
    results = backend.generate([_chat("a"), _chat("b")])
    assert proxy.auth_headers == {f"Bearer {SENTINEL}"}  # the key was used...
    assert isinstance(backend, CachedBackend)
    inner = backend.backend
    haystacks = [
        repr(backend), repr(inner), str(results), str(vars(inner)), caplog.text,
        pickle.dumps(backend).decode("latin-1"), pickle.dumps(inner).decode("latin-1"),
        (tmp_path / "c.sqlite").read_bytes().decode("latin-1"),  # type: ignore[operator]
    ]  # fmt: skip
    assert not [h for h in haystacks if SENTINEL in h]  # ...and appears nowhere else
    assert "MY_LLM_KEY" in str(vars(inner))  # only the variable's name is kept


def test_missing_key_for_the_public_api_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini")
    OpenAIBackend("local-model", base_url="http://127.0.0.1:9/v1")  # local servers need none
    with pytest.raises(ConfigError, match="max_concurrency"):
        OpenAIBackend("m", base_url="http://x", max_concurrency=0)
    with pytest.raises(ConfigError, match="needs a model"):
        create_backend("openai", base_url="http://x")
