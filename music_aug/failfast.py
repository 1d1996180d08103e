"""``FailFast``: stop a run whose first results show it cannot succeed (issue 15).

The detector sees every (request, result) pair as the augmenter receives it and raises
``BackendUnusableError`` (status, endpoint, fix) when:

* a result failed with HTTP 401 or 403 (credentials), or 404 (an endpoint the server does
  not have, e.g. a chat-only provider's "This is a chat model and not supported in the
  v1/completions endpoint", or an unknown model): these fail every later request the same
  way, so one is enough;
* each of the first ``first_k`` results failed with HTTP 400 or 422 (a request the server
  rejects whatever it holds, e.g. ``max_tokens`` on a model that wants
  ``max_completion_tokens``). A 400 on some requests only is a per-row problem and is
  left to the row's failure policy.

Results carry the status in their error text (``"http_404: ..."``, see
``music_aug.backends.retry.classify``); the endpoint follows from the request kind.
Transient failures (429, 5xx, timeouts) are the backend's retry policy's business and are
ignored here, as are errors from in-process backends (no HTTP status). This module makes
no requests and never sees an API key (only the name of its environment variable).
"""

from __future__ import annotations

import re

from music_aug.backends.base import ChatRequest, ChatResult
from music_aug.backends.info import BackendInfo
from music_aug.errors import BackendUnusableError

__all__ = ["FailFast"]

_STATUS = re.compile(r"^http_(\d{3})\s*:?\s*(.*)$", re.DOTALL)
_CHAT_ONLY = ("chat model", "v1/chat/completions", "chat/completions endpoint")
_UNKNOWN_MODEL = ("does not exist", "model not found", "no such model", "unknown model")


class FailFast:
    """Decide from a run's first results whether it can succeed at all.

    Args:
        info: the backend's ``BackendInfo`` (kind, model, base URL, key variable name).
        first_k: how many first results must all be 400/422 before the run stops.
    """

    def __init__(self, info: BackendInfo, *, first_k: int = 8) -> None:
        self.info = info
        self.first_k = max(1, first_k)
        self.seen = 0
        self.rejected = 0

    def endpoint(self, request: ChatRequest) -> str:
        """The URL path a request goes to on an OpenAI-compatible server."""
        base = (self.info.base_url or "https://api.openai.com/v1").rstrip("/")
        return f"{base}/{'chat/completions' if request.kind == 'chat' else 'completions'}"

    def observe(self, request: ChatRequest, result: ChatResult) -> None:
        """Look at one received result; raise ``BackendUnusableError`` if the run is doomed."""
        counting = self.seen < self.first_k
        self.seen += counting
        match = _STATUS.match(result.error or "")
        if match is None:
            return
        status, detail = int(match.group(1)), match.group(2).strip()
        endpoint = self.endpoint(request)
        fix = self._fix(status, detail, request)
        if status in (401, 403, 404):
            raise BackendUnusableError(self._message(status, endpoint, detail), status=status,
                                       endpoint=endpoint, fix=fix)  # fmt: skip
        if status in (400, 422) and counting:
            self.rejected += 1
            if self.rejected == self.first_k:
                message = self._message(status, endpoint, detail)
                raise BackendUnusableError(
                    f"{message} (and so did each of the first {self.first_k} requests)",
                    status=status,
                    endpoint=endpoint,
                    fix=fix,
                )

    def _message(self, status: int, endpoint: str, detail: str) -> str:
        return (
            f"the {self.info.kind} backend cannot serve this run: POST {endpoint} (model "
            f"{self.info.model!r}) answered HTTP {status}: {detail or 'no detail'}"
        )

    def _fix(self, status: int, detail: str, request: ChatRequest) -> str:
        text = detail.lower()
        base = (self.info.base_url or "https://api.openai.com/v1").rstrip("/")
        key = self.info.api_key_env or "OPENAI_API_KEY"
        if status == 401:
            return (
                f"check the API key in the environment variable {key} (or name another "
                "variable with --api-key-env)"
            )
        if status == 403:
            return (
                f"the key in {key} may not use model {self.info.model!r} or this endpoint; "
                f"check the key's permissions, or --model against GET {base}/models"
            )
        if status == 404:
            if any(cue in text for cue in _CHAT_ONLY) or (
                request.kind == "completion" and not any(cue in text for cue in _UNKNOWN_MODEL)
            ):
                return (
                    "this model is served through chat only: use --prompt-style chat "
                    "(MusicConfig(prompt_style='chat')) and no completion templates"
                )
            if any(cue in text for cue in _UNKNOWN_MODEL) or "model" in text:
                return f"check --model {self.info.model!r} against GET {base}/models"
            return (
                "the server has no chat endpoint (a completions-only server): use "
                "--prompt-style completion --assistant-template assistant_fewshot, or check "
                "that --base-url ends in /v1"
            )
        if "max_tokens" in text:
            return (
                "the model rejects max_tokens: pass --token-param max_completion_tokens "
                "(OpenAIBackend(token_param='max_completion_tokens'))"
            )
        return (
            "the server rejects these requests whatever they hold; check the sampling "
            "options it accepts (--max-new-tokens, temperature, stop strings) and --model"
        )
