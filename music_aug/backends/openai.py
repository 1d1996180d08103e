"""``OpenAIBackend``: any OpenAI-compatible server (OpenAI, vLLM serve, llama.cpp server...).

Requests go out concurrently through ``openai.AsyncOpenAI`` (its generic ``post``, which
keeps the client's auth, timeouts and typed errors) with the client's own retries off;
``music_aug.backends.retry`` decides what to retry (429, 408, 409, 5xx, timeouts, dropped
connections, malformed bodies; never 400/401/403/404/422) and how long to wait
(``Retry-After`` first, else exponential backoff with jitter). A semaphore bounds requests
in flight; optional ``rpm`` / ``tpm`` token buckets bound the rate. Chat requests use
``/v1/chat/completions``; completion requests (raw ``prompt``) use ``/v1/completions``.
``stream()`` serves the augmenter's event-driven scheduler: requests go out the moment
they are submitted and results come back in completion order.

The async client lives on a private event loop thread, so ``generate`` works from sync
code, threads, and inside a running event loop (Jupyter); ``agenerate`` is the awaitable
form. The API key is read from an environment variable when the client is created and is
held only by that client: it is not an attribute, and never appears in ``repr``, pickles,
``datasets`` fingerprints, cache files or error texts.

This module does not stream tokens, call tools, or read provider rate-limit headers beyond
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from music_aug.backends.aloop import LoopThread
from music_aug.backends.base import ChatRequest, ChatResult, Usage
from music_aug.backends.quirks import check_token_param, rejects_max_tokens, token_field
from music_aug.backends.ratelimit import TokenBucket
from music_aug.backends.retry import RequestFailure, classify, retrying, wait_seconds
from music_aug.backends.stream import AsyncStream, iter_results
from music_aug.errors import ConfigError, MissingDependencyError

__all__ = ["OpenAIBackend", "RequestStats"]

# httpx scans its whole connection pool on every request and response, so one pool of
# hundreds of connections costs more CPU per request than the request itself; requests are
# spread round-robin over one client per this many concurrent slots instead.
_SLOTS_PER_CLIENT = 16
_TRANSPORTS = ("auto", "aiohttp", "httpx")
# Sent when a local server needs no key (llama.cpp, vLLM without --api-key): the client
# refuses to start without one.
_NO_KEY = "no-key-required"


@dataclass
class RequestStats:
    """Counters of one backend object in one process (reset when pickled)."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    failures: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)


@dataclass
class _Runtime:
    loop: LoopThread
    clients: list[Any]
    semaphore: asyncio.Semaphore
    rpm: TokenBucket | None
    tpm: TokenBucket | None


class OpenAIBackend:
    """Send requests to an OpenAI-compatible HTTP endpoint.

    Args:
        model: model name as the server knows it (``/v1/models``).
        base_url: e.g. ``http://127.0.0.1:8000/v1``; ``None`` means api.openai.com.
        api_key_env: name of the environment variable holding the key. Unset is fine for a
            local ``base_url``; for api.openai.com it is a ``ConfigError``.
        max_concurrency: requests in flight at once.
        timeout: seconds per attempt (connect + response).
        max_retries: retries after the first attempt for transient failures.
        rpm: optional requests-per-minute limit (attempts count).
        tpm: optional tokens-per-minute limit (prompt + completion tokens).
        retry_wait_initial: first backoff wait in seconds (doubles, plus jitter).
        retry_wait_max: longest backoff wait in seconds.
        http_transport: ``"aiohttp"`` (the client's ``DefaultAioHttpClient``, from the
            ``openai[aiohttp]`` extra that music-aug installs), ``"httpx"`` (the client's
            default transport) or ``"auto"``: aiohttp when it is importable, else httpx.
            aiohttp costs about half the client CPU per request, which is what limits
            throughput at high concurrency (benchmarks/bench_concurrency.py).
        token_param: how the token budget is sent: ``"max_tokens"``,
            ``"max_completion_tokens"`` (OpenAI's reasoning models reject ``max_tokens``), or
            ``"auto"``: ``max_tokens``, switching once for good to ``max_completion_tokens``
            when the server answers 400 naming ``max_tokens`` (``music_aug.backends.quirks``).
        honours_seed: ``False`` for a server known to ignore ``seed``; the seed is still
            sent, and every row's ``music_metadata.seed_honoured`` says so (reproducibility
            then rests on the request cache).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 64,
        timeout: float = 60.0,
        max_retries: int = 5,
        rpm: float | None = None,
        tpm: float | None = None,
        retry_wait_initial: float = 0.5,
        retry_wait_max: float = 20.0,
        http_transport: str = "auto",
        token_param: str = "auto",
        honours_seed: bool = True,
    ) -> None:
        if not model:
            raise ConfigError("OpenAIBackend needs model= (the name listed by /v1/models)")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if http_transport not in _TRANSPORTS:
            raise ConfigError(
                f"http_transport must be one of {', '.join(_TRANSPORTS)}, got {http_transport!r}"
            )
        for label, limit in (("rpm", rpm), ("tpm", tpm)):
            if limit is not None and limit <= 0:
                raise ConfigError(f"{label} must be > 0 (or None for no limit), got {limit}")
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.rpm = rpm
        self.tpm = tpm
        self.retry_wait_initial = retry_wait_initial
        self.retry_wait_max = retry_wait_max
        self.http_transport = _resolve_transport(http_transport)
        self.token_param = check_token_param(token_param)
        self._token_auto = token_param == "auto"
        self.honours_seed = honours_seed
        self._check_key()
        self.stats = RequestStats()
        self._runtime: _Runtime | None = None

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, "
            f"max_concurrency={self.max_concurrency}, timeout={self.timeout}, "
            f"http_transport={self.http_transport!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runtime"] = None
        state["stats"] = RequestStats()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- client ---------------------------------------------------------------------------
    def _check_key(self) -> str:
        key = os.environ.get(self.api_key_env, "")
        if not key and self.base_url is None:
            raise ConfigError(
                f"no API key: set the environment variable {self.api_key_env} (or pass "
                "api_key_env= naming another one), or pass base_url= for a local server"
            )
        return key or _NO_KEY

    def _ensure_runtime(self) -> _Runtime:
        if self._runtime is not None and self._runtime.loop.current:
            return self._runtime
        try:
            import openai
        except ImportError as error:  # a core dependency, but keep the message helpful
            raise MissingDependencyError("openai", "dev", "OpenAIBackend") from error
        loop = LoopThread(name="music-aug-openai")

        def client() -> Any:
            return openai.AsyncOpenAI(
                api_key=self._check_key(),
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=0,  # retries are ours (retry.py): Retry-After, no 4xx retries
                http_client=(
                    openai.DefaultAioHttpClient() if self.http_transport == "aiohttp" else None
                ),
            )

        async def build() -> list[Any]:
            if self.http_transport == "aiohttp":  # one aiohttp pool scales to any concurrency
                return [client()]
            return [client() for _ in range(-(-self.max_concurrency // _SLOTS_PER_CLIENT))]

        self._runtime = _Runtime(
            loop=loop,
            clients=loop.run(build()),
            semaphore=asyncio.Semaphore(self.max_concurrency),
            rpm=TokenBucket(self.rpm) if self.rpm else None,
            tpm=TokenBucket(self.tpm) if self.tpm else None,
        )
        return self._runtime

    # -- one request ------------------------------------------------------------------------
    @staticmethod
    def _estimate_tokens(request: ChatRequest) -> int:
        if request.messages is not None:
            chars = sum(len(m.get("content", "")) for m in request.messages)
        else:
            chars = len(request.prompt or "")
        return chars // 4 + request.sampling.max_tokens

    async def _attempt(self, rt: _Runtime, request: ChatRequest) -> ChatResult:
        sampling = request.sampling
        estimate = self._estimate_tokens(request)
        if rt.rpm is not None:
            await rt.rpm.acquire(1)
        if rt.tpm is not None:
            await rt.tpm.acquire(estimate)
        body: dict[str, Any] = {
            "model": self.model,
            token_field(self.token_param): sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if request.messages is not None:
            path, body["messages"] = "/chat/completions", [dict(m) for m in request.messages]
        else:
            path, body["prompt"] = "/completions", request.prompt
        async with rt.semaphore:
            self.stats.attempts += 1
            client = rt.clients[self.stats.attempts % len(rt.clients)]
            try:
                # The client's generic POST: same auth, timeouts and typed errors as
                # chat.completions.create, without building pydantic models both ways
                # (about 30% less CPU per request; see benchmarks/bench_concurrency.py).
                response = await client.post(
                    path, body=body, cast_to=dict, options={"timeout": self.timeout}
                )
            except Exception as error:
                raise classify(error) from error
        result = _parse(response, chat=request.messages is not None)
        if rt.tpm is not None:
            used = result.usage.prompt_tokens + result.usage.completion_tokens
            rt.tpm.adjust(used - estimate if used else 0)
        return result

    async def _one(self, rt: _Runtime, request: ChatRequest) -> ChatResult:
        self.stats.requests += 1
        try:
            try:  # the first attempt skips the retry machinery (~0.1 ms CPU a request)
                result = await self._attempt(rt, request)
            except RequestFailure as failure:
                if self._token_auto and rejects_max_tokens(failure.reason):
                    self.token_param = "max_completion_tokens"  # for good, the whole backend
                    result = await self._attempt(rt, request)
                elif not failure.transient or self.max_retries == 0:
                    raise
                else:
                    result = await self._retry(rt, request, failure)
        except RequestFailure as failure:
            result = ChatResult.failure(failure.reason)
        except Exception as error:  # a bug must cost one request, not the batch
            result = ChatResult.failure(f"error: {type(error).__name__}: {error}")
        if result.ok:
            self.stats.usage = self.stats.usage + result.usage
        else:
            self.stats.failures += 1
            reason = (result.error or "").split(":", 1)[0]
            self.stats.failures_by_reason[reason] = self.stats.failures_by_reason.get(reason, 0) + 1
        return result

    async def _retry(self, rt: _Runtime, request: ChatRequest, first: RequestFailure) -> ChatResult:
        """Retries after a transient first failure: tenacity, Retry-After, backoff, jitter."""
        initial, maximum = self.retry_wait_initial, self.retry_wait_max
        await asyncio.sleep(wait_seconds(first, 1, initial=initial, maximum=maximum))
        result: ChatResult | None = None
        controller = retrying(self.max_retries, initial=initial, maximum=maximum, attempts_made=1)
        async for attempt in controller:
            with attempt:
                self.stats.retries += 1
                result = await self._attempt(rt, request)
        if result is None:  # pragma: no cover - tenacity always runs one attempt
            raise RequestFailure("error: no attempt made", transient=False)
        return result

    # -- streams and batches -----------------------------------------------------------------
    def stream(self) -> AsyncStream:
        """A ``RequestStream``: submit requests any time, results in completion order.

        Up to ``max_concurrency`` requests are on the wire at once; more may be submitted
        (they wait for a slot on the backend's own loop, so a freed slot is refilled at once).
        """
        rt = self._ensure_runtime()

        def run_one(request: ChatRequest) -> Any:
            return self._one(rt, request)

        return AsyncStream(rt.loop, run_one, self.max_concurrency)

    def iter_generate(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, ChatResult]]:
        """Yield ``(index, result)`` as each request completes (through ``stream()``)."""
        yield from iter_results(self, requests)

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Run the requests concurrently; results in request order, failures as results."""
        results: list[ChatResult | None] = [None] * len(requests)
        for index, result in self.iter_generate(requests):
            results[index] = result
        return [r if r is not None else ChatResult.failure("error: lost") for r in results]

    async def agenerate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Awaitable ``generate`` for async callers (runs on the backend's own loop)."""
        rt = self._ensure_runtime()

        async def run_all() -> list[ChatResult]:
            return list(await asyncio.gather(*(self._one(rt, r) for r in requests)))

        return await asyncio.wrap_future(rt.loop.submit(run_all()))

    def close(self) -> None:
        """Close the HTTP clients and stop the loop thread. Safe to call twice."""
        rt, self._runtime = self._runtime, None
        if rt is None or not rt.loop.current:
            return
        try:
            for client in rt.clients:
                rt.loop.run(client.close())
        finally:
            rt.loop.stop()


def _resolve_transport(choice: str) -> str:
    """``"auto"`` -> ``"aiohttp"`` when the client's aiohttp transport imports, else ``"httpx"``."""
    if choice == "httpx":
        return choice
    try:
        import aiohttp  # noqa: F401
        from openai import DefaultAioHttpClient  # noqa: F401  (openai >= 1.86)
    except ImportError as error:
        if choice == "aiohttp":
            raise ConfigError(
                "http_transport='aiohttp' needs openai >= 1.86 with its aiohttp extra: "
                "`pip install 'openai[aiohttp]'` (or pass http_transport='httpx')"
            ) from error
        return "httpx"
    return "aiohttp"


def _parse(response: Any, *, chat: bool) -> ChatResult:
    """Read text, finish reason and usage from a (chat) completion response body."""
    try:
        choice = response["choices"][0]
        text = (choice["message"]["content"] if chat else choice["text"]) or ""
        if not isinstance(text, str):
            raise TypeError(f"text is a {type(text).__name__}")
        finish = choice.get("finish_reason") or "stop"
        usage = response.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as error:
        raise RequestFailure(f"bad_response: {type(error).__name__}", transient=True) from error
    return ChatResult(
        text=text, finish_reason=str(finish), usage=Usage(prompt_tokens, completion_tokens)
    )
