"""What a backend says about itself, looked up through wrappers such as ``CachedBackend``.

MUSIC records a backend's kind and model in provenance, picks the prompt style from its
kind, and words fail-fast errors with its base URL and API-key variable. Wrappers keep the
backend they wrap in ``.backend``; ``backend_info`` follows that chain. Every attribute is
optional (a user's own backend only needs ``name``, ``model`` and ``generate``). This module
reads attributes only: it makes no requests and never reads an API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BackendInfo", "backend_info"]


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """A backend's identity and the options that change how MUSIC talks to it.

    Attributes:
        kind: the backend's ``name`` (``"openai"``, ``"llamacpp"``, ``"vllm"``, ``"fake"``).
        model: the model identifier.
        base_url: the server URL (OpenAI-compatible backends), else ``None``.
        api_key_env: the environment variable the key is read from, else ``None``.
        honours_seed: ``False`` when the server is known to ignore ``seed``.
    """

    kind: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    honours_seed: bool = True


def backend_info(backend: Any) -> BackendInfo:
    """``BackendInfo`` of ``backend``, reading options from the innermost wrapped backend."""
    inner = backend
    seen = 0
    while getattr(inner, "backend", None) is not None and seen < 8:
        inner, seen = inner.backend, seen + 1
    return BackendInfo(
        kind=str(getattr(backend, "name", type(backend).__name__)),
        model=str(getattr(backend, "model", "unknown")),
        base_url=getattr(inner, "base_url", None),
        api_key_env=getattr(inner, "api_key_env", None),
        honours_seed=bool(getattr(inner, "honours_seed", True)),
    )
