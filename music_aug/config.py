"""``MusicConfig``: every knob of the MUSIC transform in one frozen model.

Values computed at run time (row seeds, usage, failures) never go back into the config;
they live in the augmenter's ``RunSummary`` and in each pair's ``music_metadata``.
This module does not load templates or talk to backends.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from music_aug.backends.base import SamplingParams
from music_aug.errors import ConfigError

__all__ = ["MusicConfig", "default_sampling"]


def default_sampling(role: str) -> SamplingParams:
    """The default sampling per role: ``"contrast"``, ``"user"`` or ``"assistant"``.

    Contrast instructions and user turns are one line (the completion templates stop at a
    newline), so they get small token budgets; answers get more.
    """
    if role == "contrast":
        return SamplingParams(temperature=0.8, top_p=0.95, max_tokens=64)
    if role == "user":
        return SamplingParams(temperature=0.8, top_p=0.95, max_tokens=64)
    if role == "assistant":
        return SamplingParams(temperature=0.7, top_p=0.95, max_tokens=256)
    raise ConfigError(f"unknown role {role!r}; expected 'contrast', 'user' or 'assistant'")


class MusicConfig(BaseModel):
    """Configuration of the MUSIC augmentation (arXiv 2512.24693).

    Attributes:
        max_turns: user turns in each output conversation (the paper uses 5). Sources
            longer than this are cut to their first ``max_turns`` turns.
        contrast_turns: ``"all"`` (every turn from the branch turn to the end: the paper's
            multi-step contrast) or an int k >= 1: contrast turns i..i+k-1 and the output
            ends after the last of them (k=1 is the final-turn-only baseline).
        user_turns: ``"simulate"`` (the paper: each branch's next user turn is written by
            the user simulator from that branch's own history) or ``"replay"`` (reuse the
            source's next user instruction in both branches while it has one).
        branch: ``"random"`` (uniform over the source's turns), ``"first"``, ``"last"``, or
            a 0-based turn index.
        pairs_per_conversation: pairs emitted per source row (distinct branch turns while
            the source has enough turns).
        seed: base of every random choice and every sampling seed.
        max_attempts: tries per generation step before the row fails (a new sampling seed
            each time).
        on_error: ``"raise"``, ``"mark"`` (emit a ``status="failed"`` row) or ``"skip"``
            (drop the row; counted in the summary).
        source_side: for preference rows, ``"chosen"`` (the chosen conversation is the
            source) or ``"prompt"`` (only the shared history plus the branch instruction).
        input_format: ``"auto"`` or a format name understood by ``music_aug.formats``.
        repair: repair malformed conversations on input (see ``formats.repair_messages``).
        prompt_style: ``"auto"`` (chat templates for chat backends: OpenAI-compatible
            servers, vLLM; the few-shot completion templates for the embedded llama.cpp
            model and the fakes), ``"chat"`` or ``"completion"`` to force either. Resolved
            by ``music_aug.prompt_style.resolve_prompt_style`` (issue 15).
        contrast_template, user_template: ``None`` (the template of the resolved prompt
            style), a package template name or a path to a ``.jinja`` file. An explicit
            template wins over ``prompt_style``.
        assistant_template: ``None`` (send the conversation as chat messages), a package
            template name or a path.
        assistant_system_prompt: system message for answers when the source has none.
        contrast_sampling, user_sampling, assistant_sampling: ``SamplingParams`` per role
            (their ``seed`` is ignored: MUSIC derives one per request).
        length_ratio: length control (opt-in; ``None`` = off). At each contrast turn the
            longer of the chosen and rejected answers may be at most this many times the
            shorter (whitespace words); a rejected answer outside the band is redrawn with
            a new seed like an invalid contrast instruction, up to ``max_attempts``, and
            the pair fails as ``length_unbalanced`` after that.
        verify: judge-verified contrast (opt-in): ``"off"``; ``"keep"`` (record the
            order-swapped judge's verdict in ``music_metadata.verification``); ``"mark"``
            (also give pairs the judge does not confirm ``status="unverified"``, which
            ``mix`` and training skip); ``"drop"`` (leave them out, counted).
        verify_turns: judge ``"contrast"`` (every contrast turn) or ``"last"`` (the last).
        judge_template: the judge prompt (``None``: ``"verify_turn"``, chat, which asks
            which final answer follows the last user message; or ``"judge_pairwise_fewshot"``
            for a small local model).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    max_turns: int = Field(default=5, ge=1)
    contrast_turns: Literal["all"] | int = "all"
    user_turns: Literal["simulate", "replay"] = "simulate"
    branch: Literal["random", "first", "last"] | int = "random"
    pairs_per_conversation: int = Field(default=1, ge=1)
    seed: int = 0
    max_attempts: int = Field(default=3, ge=1)
    on_error: Literal["raise", "mark", "skip"] = "mark"
    source_side: Literal["chosen", "prompt"] = "chosen"
    input_format: str = "auto"
    repair: bool = False
    prompt_style: Literal["auto", "chat", "completion"] = "auto"
    contrast_template: str | None = None
    user_template: str | None = None
    assistant_template: str | None = None
    assistant_system_prompt: str | None = None
    contrast_sampling: SamplingParams = Field(default_factory=lambda: default_sampling("contrast"))
    user_sampling: SamplingParams = Field(default_factory=lambda: default_sampling("user"))
    assistant_sampling: SamplingParams = Field(
        default_factory=lambda: default_sampling("assistant")
    )
    length_ratio: float | None = Field(default=None, gt=1.0)
    verify: Literal["off", "keep", "mark", "drop"] = "off"
    verify_turns: Literal["contrast", "last"] = "contrast"
    judge_template: str | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "config"
            raise ConfigError(
                f"MusicConfig.{where}: {first['msg']} (got {first.get('input')!r})"
            ) from None

    @field_validator("contrast_turns", "branch", mode="before")
    @classmethod
    def _int_strings(cls, value: Any) -> Any:
        # CLI flags arrive as strings: "3" means the int 3.
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return value

    @field_validator("contrast_turns")
    @classmethod
    def _positive_contrast(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError("contrast_turns must be 'all' or an integer >= 1")
        return value

    @field_validator("branch")
    @classmethod
    def _non_negative_branch(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 0:
            raise ValueError("branch must be 'random', 'first', 'last' or a 0-based index >= 0")
        return value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (sampling params as dicts)."""
        return self.model_dump(mode="json")

    def content_hash(self) -> str:
        """Stable sha256 of the configuration, used in the augmenter fingerprint."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()
