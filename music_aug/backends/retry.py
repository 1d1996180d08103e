"""Which HTTP failures are worth retrying, and how long to wait: the OpenAI backend's policy.

``classify(error)`` maps an exception from the ``openai`` client to a ``RequestFailure``
with a short machine-readable ``reason`` (``"http_429"``, ``"timeout"``,
``"connection_error"``, ``"bad_response"``...), whether it is transient, and the server's
``Retry-After`` when it sent one. ``retrying(...)`` builds the ``tenacity`` controller:
exponential backoff with jitter, ``Retry-After`` honoured, client errors (400, 401, 403,
404, 422) never retried.

This module does not send requests and holds no credentials; reasons never include headers.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import tenacity

__all__ = ["RETRYABLE_STATUS", "RequestFailure", "classify", "parse_retry_after", "retrying"]

#: Status codes retried: request timeout, conflict, rate limited, and every server error.
RETRYABLE_STATUS = frozenset({408, 409, 429})
_MAX_DETAIL = 160
_MAX_RETRY_AFTER_S = 120.0


@dataclass
class RequestFailure(Exception):
    """A failed attempt, classified.

    Attributes:
        reason: short reason stored in ``ChatResult.error`` (``"http_503: ..."``).
        transient: worth another attempt.
        retry_after: seconds the server asked us to wait, if it said.
    """

    reason: str
    transient: bool
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.reason


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date), capped."""
    if headers is None:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return min(_MAX_RETRY_AFTER_S, max(0.0, float(millis) / 1000.0))
        value = headers.get("retry-after")
    except (AttributeError, ValueError):
        return None
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:  # the HTTP-date form
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(_MAX_RETRY_AFTER_S, max(0.0, seconds))


def _short(text: object) -> str:
    flat = " ".join(str(text).split())
    return flat[:_MAX_DETAIL] + ("..." if len(flat) > _MAX_DETAIL else "")


def classify(error: BaseException) -> RequestFailure:
    """Turn an exception raised while sending one request into a ``RequestFailure``."""
    if isinstance(error, RequestFailure):
        return error
    import openai

    if isinstance(error, openai.APITimeoutError | asyncio.TimeoutError):
        dropped = _dropped_connection(error)
        if dropped is not None:
            return RequestFailure(f"connection_error: {_short(dropped)}", transient=True)
        return RequestFailure("timeout", transient=True)
    if isinstance(error, openai.APIConnectionError):
        return RequestFailure(f"connection_error: {_short(error.__cause__ or error)}", True)
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        transient = status in RETRYABLE_STATUS or status >= 500
        retry_after = parse_retry_after(error.response.headers) if transient else None
        # Some providers echo the rejected key in a 401/403 body: keep none of it (#15).
        detail = "credentials rejected" if status in (401, 403) else _short(error.message)
        return RequestFailure(f"http_{status}: {detail}", transient, retry_after)
    if isinstance(error, openai.APIResponseValidationError | json.JSONDecodeError):
        return RequestFailure(f"bad_response: {_short(error)}", transient=True)
    return RequestFailure(f"error: {type(error).__name__}: {_short(error)}", transient=False)


def _dropped_connection(error: BaseException) -> BaseException | None:
    """The aiohttp connection error behind a 'timeout' that was not one, else ``None``.

    openai's aiohttp transport maps every ``aiohttp.ClientConnectionError`` (a server that
    closed the connection, a reset) to ``httpx.ConnectTimeout``; the cause chain keeps the
    original, so the failure is reported as the dropped connection it was.
    """
    try:
        import aiohttp
    except ImportError:
        return None
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, TimeoutError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


_JITTER = random.Random()  # jitter only spreads load; it never changes results


def wait_seconds(
    failure: BaseException | None, attempt_number: int, *, initial: float, maximum: float
) -> float:
    """Seconds to wait after failed attempt ``attempt_number`` (1-based).

    What the server asked for (``Retry-After``) if it did, else ``initial x 2^(n-1)`` capped
    at ``maximum``, plus up to ``initial`` of jitter.
    """
    if isinstance(failure, RequestFailure) and failure.retry_after is not None:
        return failure.retry_after
    backoff = min(maximum, initial * 2.0 ** max(0, attempt_number - 1))
    return backoff + _JITTER.uniform(0, initial)


class _Wait(tenacity.wait.wait_base):
    """Tenacity adapter of ``wait_seconds``; ``offset`` counts attempts made before it."""

    def __init__(self, initial: float, maximum: float, offset: int = 0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.offset = offset

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        attempt = retry_state.attempt_number + self.offset
        return wait_seconds(error, attempt, initial=self.initial, maximum=self.maximum)


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, RequestFailure) and error.transient


def retrying(
    max_retries: int, *, initial: float = 0.5, maximum: float = 20.0, attempts_made: int = 0
) -> Any:
    """A ``tenacity.AsyncRetrying`` that retries transient ``RequestFailure`` s.

    The attempt function must raise ``RequestFailure`` (use ``classify``); after
    ``max_retries`` retries the last failure is re-raised. ``attempts_made`` continues a
    request whose first attempts ran outside tenacity (the caller has already waited
    ``wait_seconds`` after the last of them): the attempt budget and the backoff exponent
    carry on from there.
    """
    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(max_retries + 1 - attempts_made),
        wait=_Wait(initial, maximum, offset=attempts_made),
        retry=tenacity.retry_if_exception(_is_transient),
        reraise=True,
    )
