"""Provider quirks of OpenAI-compatible servers that a user meets on day one (issue 15).

* **The token budget's name.** Most servers take ``max_tokens``; OpenAI's reasoning models
  (o1, o3, gpt-5...) reject it with HTTP 400 ("Unsupported parameter: 'max_tokens' is not
  supported with this model. Use 'max_completion_tokens' instead.") and want
  ``max_completion_tokens``. ``OpenAIBackend(token_param="auto")`` sends ``max_tokens`` and
  switches once, for good, when a 400 names it.
* **Ignored seeds.** Some providers accept ``seed`` and ignore it; ``OpenAIBackend(
  honours_seed=False)`` records that in every row's provenance (``seed_honoured``), since
  reproducibility then rests on the request cache. Nothing here detects it automatically.

This module holds the rules only; ``openai.py`` applies them.
"""

from __future__ import annotations

from music_aug.errors import ConfigError

__all__ = ["TOKEN_PARAMS", "check_token_param", "rejects_max_tokens", "token_field"]

TOKEN_PARAMS = ("auto", "max_tokens", "max_completion_tokens")


def check_token_param(value: str) -> str:
    """``value`` if it is one of ``TOKEN_PARAMS``, else a ``ConfigError``."""
    if value not in TOKEN_PARAMS:
        raise ConfigError(f"token_param must be one of {', '.join(TOKEN_PARAMS)}, got {value!r}")
    return value


def token_field(token_param: str) -> str:
    """The request body field carrying the token budget."""
    return "max_completion_tokens" if token_param == "max_completion_tokens" else "max_tokens"


def rejects_max_tokens(reason: str) -> bool:
    """Whether a failure reason is a 400 that asks for ``max_completion_tokens``."""
    return reason.startswith("http_400") and "max_tokens" in reason and "max_completion" in reason
