"""FailFast (issue 15): which results stop a run, and the fix each stop names."""

from __future__ import annotations

from typing import Any

import pytest

from music_aug import MusicAugmenter, MusicConfig
from music_aug.backends.base import ChatRequest, ChatResult
from music_aug.backends.fake import EchoBackend, FunctionBackend
from music_aug.backends.info import BackendInfo
from music_aug.errors import BackendUnusableError, MusicAugError
from music_aug.failfast import FailFast

INFO = BackendInfo("openai", "gpt-x", base_url="http://h:1/v1", api_key_env="PROVIDER_KEY")
CHAT = ChatRequest.chat([{"role": "user", "content": "hi"}])
COMPLETION = ChatRequest.completion("Original: hi\nDifferent:")
OK = ChatResult(text="fine")


def _stop(request: ChatRequest, error: str) -> BackendUnusableError:
    with pytest.raises(BackendUnusableError) as caught:
        FailFast(INFO).observe(request, ChatResult.failure(error))
    assert isinstance(caught.value, MusicAugError)
    return caught.value


def test_chat_only_provider_404_says_use_chat_prompts() -> None:
    error = _stop(COMPLETION, "http_404: This is a chat model and not supported in the "
                  "v1/completions endpoint. Did you mean to use v1/chat/completions?")  # fmt: skip
    assert (error.status, error.endpoint) == (404, "http://h:1/v1/completions")
    assert "--prompt-style chat" in error.fix and "gpt-x" in str(error)


def test_other_404s_and_credentials() -> None:
    assert (
        "check --model 'gpt-x' against GET http://h:1/v1/models"
        in _stop(CHAT, "http_404: The model `gpt-x` does not exist").fix
    )
    assert "--prompt-style completion" in _stop(CHAT, "http_404: Not Found").fix
    for status in (401, 403):
        error = _stop(CHAT, f"http_{status}: credentials rejected")
        assert error.status == status and "PROVIDER_KEY" in error.fix


def test_400_stops_only_when_each_of_the_first_k_got_it() -> None:
    detector = FailFast(INFO, first_k=4)
    bad = ChatResult.failure("http_400: Unsupported parameter: 'max_tokens'")
    for _ in range(3):
        detector.observe(CHAT, bad)
    with pytest.raises(BackendUnusableError, match="first 4 requests") as caught:
        detector.observe(CHAT, bad)
    assert "--token-param max_completion_tokens" in caught.value.fix
    mixed = FailFast(INFO, first_k=4)
    for result in (bad, OK, bad, bad, bad, bad, bad):
        mixed.observe(CHAT, result)  # one success among the first 4: a per-row problem


@pytest.mark.parametrize(
    "error", ["http_429: slow down", "http_503: busy", "timeout", "connection_error: reset",
              "bad_response: JSONDecodeError", "error: RuntimeError: llama.cpp"],
)  # fmt: skip
def test_transient_and_in_process_failures_never_stop(error: str) -> None:
    detector = FailFast(INFO, first_k=2)
    for _ in range(10):
        detector.observe(CHAT, ChatResult.failure(error))


def test_the_augmenter_stops_and_hands_back_the_pairs_that_finished(
    mt_bench_records: list[dict[str, Any]],
) -> None:
    rows = mt_bench_records[:12]
    config = MusicConfig(max_turns=3)
    clean = MusicAugmenter(config, EchoBackend()).augment_records(rows)
    echo = EchoBackend()
    waves = {"n": 0}

    class Revoked(FunctionBackend):
        def generate(self, requests: Any) -> list[ChatResult]:
            waves["n"] += 1
            if waves["n"] <= 3:
                return echo.generate(requests)
            return [ChatResult.failure("http_401: credentials rejected") for _ in requests]

    augmenter = MusicAugmenter(config, Revoked(lambda request: "", model="fake-echo"))
    with pytest.raises(BackendUnusableError) as caught:
        augmenter.augment_records(rows)
    finished = caught.value.rows
    assert waves["n"] == 4  # stopped at the first wave that failed
    assert 1 <= len(finished) < len(rows)  # pairs branching late finish in 3 waves
    by_id = {row["music_metadata"]["source_id"]: row for row in clean}
    for row in finished:
        assert row == by_id[row["music_metadata"]["source_id"]]
