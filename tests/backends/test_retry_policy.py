"""Retry classification, Retry-After parsing and the token bucket (no network)."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import openai
import pytest

try:  # the HTTP library the installed openai client is built on
    import httpx2 as httpx
except ImportError:  # pragma: no cover - openai < 3 uses httpx
    import httpx  # type: ignore[no-redef]

from music_aug.backends.ratelimit import TokenBucket
from music_aug.backends.retry import (
    RequestFailure,
    classify,
    parse_retry_after,
    retrying,
    wait_seconds,
)
from music_aug.errors import ConfigError


def _status_error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, headers=headers or {}, request=request)
    return openai.APIStatusError(f"status {status}", response=response, body=None)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    failure = classify(_status_error(status, {"retry-after": "2"}))
    assert failure.transient and failure.reason.startswith(f"http_{status}")
    assert failure.retry_after == 2.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_final(status: int) -> None:
    failure = classify(_status_error(status, {"retry-after": "2"}))
    assert not failure.transient and failure.retry_after is None


def test_timeouts_connections_and_unknown_errors() -> None:
    request = httpx.Request("POST", "http://127.0.0.1/")
    assert classify(openai.APITimeoutError(request)).reason == "timeout"
    assert classify(openai.APIConnectionError(request=request)).transient
    bug = classify(ZeroDivisionError("x"))
    assert not bug.transient and bug.reason == "error: ZeroDivisionError: x"


def _raised_from(cause: BaseException, request: object) -> openai.APITimeoutError:
    """An ``APITimeoutError`` chained over ``ConnectTimeout`` over ``cause``, as raised."""
    try:
        try:
            raise httpx.ConnectTimeout(str(cause)) from cause
        except httpx.ConnectTimeout as mapped:
            raise openai.APITimeoutError(request) from mapped  # type: ignore[arg-type]
    except openai.APITimeoutError as error:
        return error


def test_a_dropped_connection_behind_an_aiohttp_timeout_is_a_connection_error() -> None:
    aiohttp = pytest.importorskip("aiohttp")
    request = httpx.Request("POST", "http://127.0.0.1/")
    dropped = classify(_raised_from(aiohttp.ServerDisconnectedError(), request))
    assert dropped.transient and dropped.reason.startswith("connection_error: ")
    assert "Server disconnected" in dropped.reason
    read_timeout = classify(_raised_from(aiohttp.SocketTimeoutError("read"), request))
    assert read_timeout.reason == "timeout"


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "10000"}) == 120.0  # capped
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after({"retry-after": date}) or 0) <= 31


def test_retrying_backs_off_exponentially_and_stops() -> None:
    waits: list[float] = []
    assert _attempts_until_reraise(retrying(3, initial=0.01, maximum=0.03), waits) == 4
    assert len(waits) == 3
    assert 0.01 <= waits[0] <= 0.02 and 0.02 <= waits[1] <= 0.03 and 0.03 <= waits[2] <= 0.04


def test_retrying_continues_after_attempts_made_outside_it() -> None:
    # OpenAIBackend makes the first attempt itself and hands over after a failure: the
    # attempt budget and the backoff exponent carry on from attempt 2.
    waits: list[float] = []
    controller = retrying(3, initial=0.01, maximum=1.0, attempts_made=1)
    assert _attempts_until_reraise(controller, waits) == 3  # 1 + 3 = 4 attempts in all
    assert len(waits) == 2
    assert 0.02 <= waits[0] <= 0.03 and 0.04 <= waits[1] <= 0.05
    told = RequestFailure("http_429: x", transient=True, retry_after=1.5)
    assert wait_seconds(told, 1, initial=0.01, maximum=1.0) == 1.5


def _attempts_until_reraise(controller: Any, waits: list[float]) -> int:
    """Attempts ``controller`` makes on a request that always fails transiently."""

    async def run() -> int:
        attempts = 0
        controller.sleep = _recording_sleep(waits)
        try:
            async for attempt in controller:
                with attempt:
                    attempts += 1
                    raise RequestFailure("http_500: x", transient=True)
        except RequestFailure:
            return attempts
        return -1

    return asyncio.run(run())


def _recording_sleep(waits: list[float]):  # type: ignore[no-untyped-def]
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return sleep


def test_token_bucket_with_a_fake_clock() -> None:
    now = [0.0]
    bucket = TokenBucket(120, clock=lambda: now[0])  # 2/s, capacity 2
    assert bucket.wait_time(1) == 0
    bucket.take(1)
    bucket.take(1)
    assert bucket.wait_time(1) == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.wait_time(1) == 0
    bucket.take(5)  # larger than the bucket: allowed when full enough, leaves a debt
    assert bucket.wait_time(1) == pytest.approx(2.5)
    bucket.adjust(-10)  # refund
    assert bucket.wait_time(2) == 0
    with pytest.raises(ConfigError):
        TokenBucket(0)
