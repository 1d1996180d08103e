"""``InstructionPerturber``: the contrast instruction u'_t of MUSIC's rejected branch.

The perturber builds the request that asks a model to rewrite u_t into a related,
plausible, but different instruction u'_t (a good answer to u'_t is a bad answer to u_t),
cleans the model's output and validates it: non-empty, not u_t again, not a refusal, not
a copy of the assistant's last answer, within sane length bounds.

It does not call the backend or retry: the augmenter's scheduler sends requests in
batches and asks for a new request (with a new seed) after an invalid output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from music_aug.backends.base import ChatRequest, ChatResult, SamplingParams
from music_aug.config import default_sampling
from music_aug.conversation import Conversation
from music_aug.errors import ConfigError
from music_aug.templates import PromptTemplate, load_template

__all__ = ["INVALID_REASONS", "InstructionPerturber", "build_request", "normalize"]

INVALID_REASONS = ("empty", "identical", "refusal", "copies_answer", "too_long", "too_short")

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i cannot|i won'?t|i will not|"
    r"i'?m (?:not able|unable)|i am (?:not able|unable)|as an ai|i apologi[sz]e)",
    re.IGNORECASE,
)
# Labels a model may echo from the prompt before the rewritten instruction.
_LABEL = re.compile(
    r"^\s*(?:different|rewritten(?: instruction)?|contrast(?: instruction)?|original|user|"
    r"instruction|new instruction)\s*:\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’`"


def normalize(text: str) -> str:
    """Lowercase, with punctuation and whitespace runs folded into single spaces."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def build_request(
    template: PromptTemplate,
    sampling: SamplingParams,
    seed: int,
    *,
    system_fallback: str | None = None,
    **variables: object,
) -> ChatRequest:
    """Render ``template`` into a completion or chat ``ChatRequest`` with ``seed``.

    The template's declared stop strings are added to ``sampling.stop``.
    """
    rendered = template.render(**variables)
    stop = tuple(dict.fromkeys((*sampling.stop, *rendered.stop)))
    params = replace(sampling, seed=seed, stop=stop)
    if rendered.kind == "completion":
        return ChatRequest(prompt=rendered.text, sampling=params)
    system = rendered.system or system_fallback
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": rendered.text})
    return ChatRequest(messages=tuple(messages), sampling=params)


class InstructionPerturber:
    """Rewrite u_t into a contrast instruction u'_t, and check the rewrite.

    Args:
        template: package template name or ``.jinja`` path; default ``"contrast_fewshot"``
            (completion style, works with SmolLM2-135M). ``"contrast_chat"`` suits large
            chat models.
        sampling: sampling for the rewrite; the seed is set per request.
        max_attempts: how many outputs the augmenter tries before the row fails.
    """

    def __init__(
        self,
        template: str | Path | None = None,
        sampling: SamplingParams | None = None,
        max_attempts: int = 3,
    ) -> None:
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
        self.template = load_template(template or "contrast_fewshot")
        self.sampling = sampling or default_sampling("contrast")
        self.max_attempts = max_attempts

    def request(
        self,
        history: Conversation | Sequence[Mapping[str, str]],
        instruction: str,
        *,
        seed: int,
        attempt: int = 0,
    ) -> ChatRequest:
        """The request for u'_t, given the rejected branch's ``history`` before u_t.

        ``history`` may also be a list of ``{"role", "content"}`` dicts (the augmenter's
        fast path). ``attempt`` > 0 marks a retry after an invalid output: besides the new
        seed, the temperature rises by 0.2 per attempt (at most 1.5), because the typical
        failure of small models is copying u_t, which a hotter sample escapes more often.
        """
        messages = history.to_messages() if isinstance(history, Conversation) else history
        sampling = self.sampling
        if attempt > 0:
            hotter = min(sampling.temperature + 0.2 * attempt, max(sampling.temperature, 1.5))
            sampling = replace(sampling, temperature=hotter)
        return build_request(
            self.template, sampling, seed, instruction=instruction, history=messages
        )

    @staticmethod
    def clean(text: str) -> str:
        """Strip echoed labels, surrounding quotes and everything after the first line."""
        text = text.strip()
        text = _LABEL.sub("", text, count=1).strip()
        if "\n\n" in text:
            text = text.split("\n\n", 1)[0].strip()
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1].strip()
        return text

    def parse(self, result: ChatResult) -> str:
        """The cleaned contrast instruction from a backend result (may be invalid)."""
        return self.clean(result.text) if result.ok else ""

    def validate(
        self, text: str, instruction: str, history: Conversation | Sequence[Mapping[str, str]]
    ) -> str | None:
        """``None`` if ``text`` is a usable u'_t for ``instruction``, else a short reason.

        Reasons: ``"empty"``, ``"identical"``, ``"refusal"``, ``"copies_answer"``,
        ``"too_long"``, ``"too_short"``.
        """
        candidate = normalize(text)
        if not candidate:
            return "empty"
        original = normalize(instruction)
        # A rewrite that only drops or reorders words asks for (a part of) the same thing.
        if candidate == original or not set(candidate.split()) - set(original.split()):
            return "identical"
        if _REFUSAL.match(text):
            return "refusal"
        messages = history.to_messages() if isinstance(history, Conversation) else history
        last_answer = next(
            (m["content"] for m in reversed(messages) if m["role"] == "assistant"), None
        )
        if last_answer and len(candidate) >= 20 and candidate in normalize(last_answer):
            return "copies_answer"
        if len(text) > 3 * len(instruction) + 300:
            return "too_long"
        words = len(candidate.split())
        if words < min(3, len(original.split())):
            return "too_short"
        return None
