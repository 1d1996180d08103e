"""Running against API providers (issue 15): prompt style, fail fast, provider quirks, CLI.

Real ``OpenAIBackend`` over loopback HTTP to ``ProviderServer`` (a chat-only provider, a
completions-only server, bad keys, unknown models, models that reject ``max_tokens``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from provider_server import ProviderServer

from music_aug.augmenter import MusicAugmenter
from music_aug.backends.openai import OpenAIBackend
from music_aug.cli import main
from music_aug.config import MusicConfig
from music_aug.errors import BackendUnusableError

pytestmark = pytest.mark.integration
Make = Callable[..., ProviderServer]


@pytest.fixture
def provider() -> Iterator[Make]:
    servers: list[ProviderServer] = []

    def make(mode: str = "chat_only", **options: Any) -> ProviderServer:
        server = ProviderServer(mode, **options)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def _backend(server: ProviderServer, **options: Any) -> OpenAIBackend:
    options.setdefault("max_retries", 0)
    return OpenAIBackend("gpt-test", base_url=server.url, max_concurrency=8, **options)


def _run(config: MusicConfig, backend: OpenAIBackend, rows: list[dict[str, Any]]) -> Any:
    try:
        return MusicAugmenter(config, backend).augment_records(rows)
    finally:
        backend.close()


def test_auto_style_works_against_a_chat_only_provider(
    provider: Make, mt_bench_records: list[dict[str, Any]]
) -> None:
    server = provider("chat_only")
    out = _run(MusicConfig(max_turns=2), _backend(server), mt_bench_records[:4])
    assert [row["music_metadata"]["status"] for row in out] == ["ok"] * 4
    assert {row["music_metadata"]["prompt_style"] for row in out} == {"chat"}
    assert set(server.paths()) == {"/v1/chat/completions"} and set(server.statuses()) == {200}


def test_completion_style_against_a_chat_only_provider_stops_in_the_first_wave(
    provider: Make, mt_bench_records: list[dict[str, Any]]
) -> None:
    """The issue's reproduction: completion prompts to gpt-4o-mini. One wave, then stop."""
    server = provider("chat_only")
    rows = mt_bench_records[:16]
    with pytest.raises(BackendUnusableError) as caught:
        _run(MusicConfig(max_turns=3, prompt_style="completion"), _backend(server), rows)
    error = caught.value
    assert error.status == 404 and error.endpoint == f"{server.url}/completions"
    assert "--prompt-style chat" in str(error) and "This is a chat model" in str(error)
    # it stops inside the first step of the pairs (each pair's chosen answer and rejected
    # rewrite, 8 on the wire at once): the requests still in flight are cancelled
    seen = Counter(server.paths())
    assert set(seen) <= {"/v1/chat/completions", "/v1/completions"}
    assert seen["/v1/chat/completions"] <= 16 and seen["/v1/completions"] <= 16
    assert sum(seen.values()) < 32
    assert error.rows == []  # nothing had finished


def test_completions_only_server_stops_with_the_fix_and_the_fix_works(
    provider: Make, mt_bench_records: list[dict[str, Any]]
) -> None:
    server = provider("completions_only")
    rows = mt_bench_records[:4]
    with pytest.raises(BackendUnusableError) as caught:
        _run(MusicConfig(max_turns=2), _backend(server), rows)
    assert caught.value.status == 404 and caught.value.endpoint.endswith("/chat/completions")
    assert "--prompt-style completion --assistant-template assistant_fewshot" in str(caught.value)
    assert len(server.log) <= 2 * len(rows)
    # a fresh server for the fix: requests of the stopped run that were already on the
    # wire can still reach the first one after the stop (the client cancelled them)
    fixed = provider("completions_only")
    config = MusicConfig(
        max_turns=2, prompt_style="completion", assistant_template="assistant_fewshot"
    )
    out = _run(config, _backend(fixed), rows)
    assert [row["music_metadata"]["status"] for row in out] == ["ok"] * 4
    assert {row["music_metadata"]["prompt_style"] for row in out} == {"completion"}
    assert set(fixed.paths()) == {"/v1/completions"}


def test_bad_key_stops_naming_the_variable_never_the_key(
    provider: Make, mt_bench_records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = provider("chat_only", api_key="sk-right")
    monkeypatch.setenv("MY_PROVIDER_KEY", "sk-WRONG-0123456789")
    backend = _backend(server, api_key_env="MY_PROVIDER_KEY")
    with pytest.raises(BackendUnusableError) as caught:
        _run(MusicConfig(max_turns=2), backend, mt_bench_records[:8])
    text = str(caught.value)
    assert caught.value.status == 401 and "MY_PROVIDER_KEY" in text
    assert "sk-WRONG" not in text  # the server echoed it; the error does not
    assert len(server.log) <= 16


def test_unknown_model_stops_with_a_models_hint(
    provider: Make, mt_bench_records: list[dict[str, Any]]
) -> None:
    server = provider("chat_only", models=("gpt-real",))
    with pytest.raises(BackendUnusableError, match=r"check --model 'gpt-test' against GET"):
        _run(MusicConfig(max_turns=2), _backend(server), mt_bench_records[:4])


def test_max_completion_tokens_auto_switch_and_the_explicit_400_stop(
    provider: Make, mt_bench_records: list[dict[str, Any]]
) -> None:
    server = provider("chat_only", reject_max_tokens=True)
    rows = mt_bench_records[:8]
    backend = _backend(server)
    out = _run(MusicConfig(max_turns=2), backend, rows)
    assert [row["music_metadata"]["status"] for row in out] == ["ok"] * 8
    assert backend.token_param == "max_completion_tokens"
    rejected = [entry for entry in server.log if entry.status == 400]
    assert 1 <= len(rejected) <= 16  # only first-wave requests built before the switch
    assert all("max_completion_tokens" in e.body for e in server.log if e.status == 200)
    server.log.clear()
    with pytest.raises(BackendUnusableError) as caught:
        _run(MusicConfig(max_turns=2), _backend(server, token_param="max_tokens"), rows)
    assert caught.value.status == 400 and "--token-param max_completion_tokens" in str(caught.value)
    # the stop comes with the 8th 400; the first wave (8 chosen answers + 8 rewrites) was
    # submitted at once, so 8-16 of it reached the server by then (timing), nothing after
    assert 8 <= len(server.log) <= 16


def test_a_400_on_some_requests_only_is_a_row_failure_not_a_stop(
    provider: Make, mt_bench_records: list[dict[str, Any]]
) -> None:
    server = provider("chat_only")
    original = server.answer

    def answer(path: str, body: dict[str, Any], auth: str) -> tuple[int, dict[str, Any]]:
        if "Ontario" in json.dumps(body):  # one row's content only
            return 400, {"error": {"message": "content rejected"}}
        return original(path, body, auth)

    server.answer = answer  # type: ignore[method-assign]
    texts = [f"Tell me about place {k}." for k in range(9)] + ["Ontario?"]
    rows = [{"messages": [{"role": "user", "content": text}]} for text in texts]
    out = _run(MusicConfig(max_turns=1), _backend(server), rows)
    statuses = Counter(row["music_metadata"]["status"] for row in out)
    assert statuses == {"ok": 9, "failed": 1}


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cli(source: Path, out: Path, server: ProviderServer, *extra: str) -> int:
    return main([
        "augment", str(source), "-o", str(out), "--backend", "openai", "--model", "gpt-test",
        "--base-url", server.url, "--max-turns", "2", "--batch-size", "2", "--max-retries", "0",
        *extra,
    ])  # fmt: skip


def test_cli_keeps_finished_rows_on_a_stop_and_a_cached_rerun_resumes(
    provider: Make,
    mt_bench_records: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = _write(tmp_path / "in.jsonl", mt_bench_records[:16])
    narrow = ("--concurrency", "2")  # rows start one after another, in input order
    healthy = provider("chat_only")
    assert _cli(source, tmp_path / "clean.jsonl", healthy, *narrow) == 0
    clean = _read(tmp_path / "clean.jsonl")
    total = len(healthy.log)
    assert len(clean) == 16 and total > 32

    stop_at = total * 3 // 4
    revoked = provider("chat_only", fail_after=stop_at)
    cache = tmp_path / "cache.sqlite"
    status = _cli(source, tmp_path / "out.jsonl", revoked, "--cache", str(cache), *narrow)
    assert status == 2 and "HTTP 401" in capsys.readouterr().err
    kept = _read(tmp_path / "out.jsonl")
    assert 1 <= len(kept) < 16 and kept == clean[: len(kept)]  # finished rows are written

    assert _cli(source, tmp_path / "out.jsonl", healthy, "--cache", str(cache), *narrow) == 0
    assert _read(tmp_path / "out.jsonl") == clean
    # the rerun paid only for what the stopped run had not received (the stopped run's
    # in-flight requests, at most 2, were cut off and are sent again)
    resent = len(healthy.log) - total - (total - stop_at)
    assert 0 <= resent <= 2


def test_cli_dry_run_sends_nothing_and_a_real_run_prints_its_cost(
    provider: Make,
    mt_bench_records: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = _write(tmp_path / "in.jsonl", mt_bench_records[:4])
    server = provider("chat_only")
    prices = ("--price-in", "0.15", "--price-out", "0.6")
    out = tmp_path / "out.jsonl"
    assert _cli(source, out, server, "--dry-run", *prices) == 0
    printed = capsys.readouterr().out
    assert server.log == [] and not out.exists()
    assert "dry run: 4 rows" in printed and "prompt style chat" in printed
    assert "$0.15 in / $0.6 out per 1M tokens" in printed and "assumptions:" in printed
    assert _cli(source, out, server, *prices, "--system-prompt", "Be terse.") == 0
    printed = capsys.readouterr().out
    assert "cost:               $" in printed
    answers = [e.body["messages"] for e in server.log if e.body["max_tokens"] == 256]
    assert answers and all(m[0] == {"role": "system", "content": "Be terse."} for m in answers)


def test_cli_auto_style_falls_back_to_completion_prompts_on_a_completions_only_server(
    provider: Make,
    mt_bench_records: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = _write(tmp_path / "in.jsonl", mt_bench_records[:3])
    server = provider("completions_only")
    assert _cli(source, tmp_path / "out.jsonl", server) == 0
    rows = _read(tmp_path / "out.jsonl")
    assert [row["music_metadata"]["status"] for row in rows] == ["ok"] * 3
    assert {row["music_metadata"]["prompt_style"] for row in rows} == {"completion"}
    assert "retrying with --prompt-style completion" in capsys.readouterr().err
    # the first attempt stopped at once: only a few chat requests before the fallback
    assert server.paths().count("/v1/chat/completions") <= 2 * 3
    # an explicit style is never second-guessed
    assert _cli(source, tmp_path / "chat.jsonl", server, "--prompt-style", "chat") == 2
