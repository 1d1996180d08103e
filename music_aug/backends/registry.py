"""Build a backend from a kind name and a few options: what every ``music-aug`` command uses.

``create_backend("llamacpp")`` is the embedded default; ``"openai"`` talks to any
OpenAI-compatible server, ``"vllm"`` runs vLLM offline, ``"fake"`` is the deterministic
``EchoBackend``. With ``cache=PATH`` the backend is wrapped in ``CachedBackend``.

Backend modules are imported only for the kind asked for, so unused heavy libraries never
load. This module does not parse command lines; see ``music_aug.cli``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from music_aug.backends.base import Backend
from music_aug.errors import ConfigError

__all__ = ["BACKEND_KINDS", "DEFAULT_BACKEND", "check_backend", "create_backend"]

DEFAULT_BACKEND = "llamacpp"
BACKEND_KINDS = ("llamacpp", "openai", "vllm", "fake")


def _llamacpp(model: str | None, base_url: str | None, concurrency: int | None) -> Any:
    from music_aug.backends.llamacpp import LlamaCppBackend

    _reject("llamacpp", base_url=base_url)
    return LlamaCppBackend, {"model_path": model}


def _openai(model: str | None, base_url: str | None, concurrency: int | None) -> Any:
    from music_aug.backends.openai import OpenAIBackend

    if not model:
        raise ConfigError(
            "the openai backend needs a model name: pass --model NAME (the name the server "
            "lists under /v1/models)"
        )
    kwargs: dict[str, Any] = {"model": model, "base_url": base_url}
    if concurrency is not None:
        kwargs["max_concurrency"] = concurrency
    return OpenAIBackend, kwargs


def _vllm(model: str | None, base_url: str | None, concurrency: int | None) -> Any:
    from music_aug.backends.vllm import VLLMBackend

    _reject("vllm", base_url=base_url)
    if not model:
        raise ConfigError("the vllm backend needs a model: pass --model HF_ID_OR_PATH")
    return VLLMBackend, {"model": model}


def _fake(model: str | None, base_url: str | None, concurrency: int | None) -> Any:
    from music_aug.backends.fake import EchoBackend

    _reject("fake", base_url=base_url)
    return EchoBackend, {"model": model or "fake-echo"}


_FACTORIES: dict[str, Callable[[str | None, str | None, int | None], Any]] = {
    "llamacpp": _llamacpp,
    "openai": _openai,
    "vllm": _vllm,
    "fake": _fake,
}


def _reject(kind: str, **given: object) -> None:
    for name, value in given.items():
        if value is not None:
            raise ConfigError(f"the {kind} backend does not take {name}= (got {value!r})")


def _resolve(
    kind: str,
    model: str | None,
    base_url: str | None,
    concurrency: int | None,
    options: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    """The backend class and its keyword arguments; raises what ``create_backend`` raises."""
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise ConfigError(
            f"unknown backend kind {kind!r}; choose one of {', '.join(BACKEND_KINDS)}"
        )
    cls, kwargs = factory(model, base_url, concurrency)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"the {kind} backend does not take option(s) {unknown}; it accepts "
            f"{sorted(accepted - set(kwargs))}"
        )
    return cls, kwargs


def check_backend(
    kind: str = DEFAULT_BACKEND,
    *,
    model: str | None = None,
    base_url: str | None = None,
    concurrency: int | None = None,
    cache: str | None = None,
    **options: Any,
) -> None:
    """Raise the ``ConfigError`` that ``create_backend`` would raise, without building it.

    For code that builds the backend elsewhere (a Ray actor, a worker process) and wants a
    wrong kind, a missing model or an unknown option reported before any work starts.
    """
    _resolve(kind, model, base_url, concurrency, options)


def create_backend(
    kind: str = DEFAULT_BACKEND,
    *,
    model: str | None = None,
    base_url: str | None = None,
    concurrency: int | None = None,
    cache: str | None = None,
    **options: Any,
) -> Backend:
    """Create a backend by kind name.

    Args:
        kind: ``"llamacpp"`` (default, embedded), ``"openai"``, ``"vllm"`` or ``"fake"``.
        model: GGUF path (llamacpp; ``None`` = bundled SmolLM2), served model name (openai),
            HF id or path (vllm), or a label (fake).
        base_url: server URL for ``"openai"`` (e.g. ``http://127.0.0.1:8000/v1``).
        concurrency: in-flight requests for ``"openai"``; other kinds ignore it (they run a
            single model in this process).
        cache: path of a SQLite request cache; wraps the backend in ``CachedBackend``.
        **options: further keyword arguments of the backend class (e.g. ``n_ctx``,
            ``timeout``, ``rpm``, ``tensor_parallel_size``, ``seed``).

    Raises:
        ConfigError: unknown kind, missing model, or an option the backend does not take.
    """
    cls, kwargs = _resolve(kind, model, base_url, concurrency, options)
    backend: Backend = cls(**kwargs, **options)
    if cache:
        from music_aug.backends.cache import CachedBackend

        backend = CachedBackend(backend, cache)
    return backend
