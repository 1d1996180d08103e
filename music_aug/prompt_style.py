"""Which prompt style a run uses: chat templates or few-shot completion templates (issue 15).

``MusicConfig.prompt_style`` is ``"auto"`` by default. ``resolve_prompt_style`` turns it
into ``"chat"`` or ``"completion"`` from the backend's ``name``:

* ``"completion"`` for the embedded llama.cpp model (``name == "llamacpp"``, SmolLM2-135M
  by default) and the package fakes (``"fake"``, which stand in for it in tests): a 135M
  model follows few-shot completion prompts far better than chat instructions (issue 3;
  numbers in docs/augment.md).
* ``"chat"`` for everything else: OpenAI-compatible servers (``"openai"``) and vLLM
  (``"vllm"``) serve instruct models, and many providers have no ``/v1/completions`` for
  them at all (a 404 "This is a chat model and not supported in the v1/completions
  endpoint").

A ``CachedBackend`` exposes its inner backend's ``name``, so caching never changes the
style. Templates given explicitly (``contrast_template=`` / ``user_template=``) always win.
This module does not load templates or talk to backends.
"""

from __future__ import annotations

from typing import Any

from music_aug.errors import ConfigError

__all__ = ["COMPLETION_BACKENDS", "DEFAULT_TEMPLATES", "resolve_prompt_style", "role_templates"]

#: Backend kinds that get the few-shot completion templates under ``prompt_style="auto"``.
COMPLETION_BACKENDS = frozenset({"llamacpp", "fake"})

#: Package templates of each style: ``(contrast rewriter, user simulator)``.
DEFAULT_TEMPLATES = {
    "completion": ("contrast_fewshot", "user_fewshot"),
    "chat": ("contrast_chat", "user_chat"),
}


def resolve_prompt_style(style: str, backend: Any) -> str:
    """``"chat"`` or ``"completion"`` for ``style`` on ``backend``.

    Args:
        style: ``"auto"``, ``"chat"`` or ``"completion"``.
        backend: a backend object, or a backend kind name (``"openai"``) when no backend
            exists yet (``music-aug augment --dry-run``).
    """
    if style in ("chat", "completion"):
        return style
    if style != "auto":
        raise ConfigError(f"prompt_style must be 'auto', 'chat' or 'completion', got {style!r}")
    kind = backend if isinstance(backend, str) else str(getattr(backend, "name", ""))
    return "completion" if kind in COMPLETION_BACKENDS else "chat"


def role_templates(
    style: str, contrast_template: str | None, user_template: str | None
) -> tuple[str, str]:
    """The contrast and user template specs for a resolved ``style``; explicit ones win."""
    contrast, user = DEFAULT_TEMPLATES[style]
    return contrast_template or contrast, user_template or user
