"""Know the bill first: the requests, tokens and cost a MUSIC run will take (issue 15).

``estimate_run(rows, config, backend_kind=...)`` models the augmenter's schedule for every
input row without calling a model: it reads the row as the augmenter does, draws the same
branch turn (same seeded ``random.Random``), and walks both branches turn by turn, rendering
the real prompts (the templates of the resolved prompt style) over a stand-in conversation:

* answers the model will write are assumed as long as the source's answer at that turn
  (the mean source answer past its end), capped at ``assistant_sampling.max_tokens``;
* a contrast instruction is as long as the instruction it rewrites, a simulated user turn
  as long as the source's user turn there (or the mean), each capped at its ``max_tokens``;
* a contrast step takes ``sum_{k<m} (1-p)^k`` attempts for ``m = max_attempts`` and a
  per-attempt validity ``p`` (measured SmolLM2 rates by default); other steps take one;
* tokens are characters / ``chars_per_token`` (4), plus ``chat_overhead`` tokens per chat
  message for the chat template's role markers.

Pairs that fail stop early in a real run, so the estimate is an upper bound for them.
``RunEstimate.format(prices)`` prints the numbers and every assumption. This module makes
no requests and does not know provider prices (the user passes them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from music_aug.backends.base import ChatRequest
from music_aug.config import MusicConfig
from music_aug.conversation import Conversation
from music_aug.errors import UserInputError
from music_aug.perturb import InstructionPerturber
from music_aug.prompt_style import resolve_prompt_style, role_templates
from music_aug.selection import Selection, TurnSelector, read_source
from music_aug.simulate import AssistantSimulator, UserSimulator
from music_aug.summary import Prices

__all__ = ["DEFAULT_VALIDITY", "RoleEstimate", "RunEstimate", "estimate_run"]

#: Per-attempt share of contrast outputs the perturber accepts, by prompt style. The
#: completion value is SmolLM2-135M's measured rate (docs/augment.md); chat is assumed for a
#: capable API model.
DEFAULT_VALIDITY = {"completion": 0.75, "chat": 0.95}
ROLES = ("contrast", "user", "assistant")


@dataclass
class RoleEstimate:
    """Expected requests and tokens of one role (``contrast``, ``user``, ``assistant``)."""

    requests: float = 0.0
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0

    def add(self, count: float, prompt: float, completion: float) -> None:
        self.requests += count
        self.prompt_tokens += count * prompt
        self.completion_tokens += count * completion


@dataclass
class RunEstimate:
    """The estimate of one run; ``format(prices)`` is what ``--dry-run`` prints."""

    rows: int
    unreadable_rows: int
    pairs: int
    prompt_style: str
    roles: dict[str, RoleEstimate] = field(
        default_factory=lambda: {r: RoleEstimate() for r in ROLES}
    )
    assumptions: list[str] = field(default_factory=list)

    @property
    def requests(self) -> float:
        return sum(role.requests for role in self.roles.values())

    @property
    def prompt_tokens(self) -> float:
        return sum(role.prompt_tokens for role in self.roles.values())

    @property
    def completion_tokens(self) -> float:
        return sum(role.completion_tokens for role in self.roles.values())

    def cost_usd(self, prices: Prices) -> float:
        return prices.cost(self.prompt_tokens, self.completion_tokens)

    def format(self, prices: Prices | None = None) -> str:
        lines = [
            f"dry run: {self.rows} rows ({self.unreadable_rows} unreadable), {self.pairs} pairs, "
            f"prompt style {self.prompt_style}; nothing was sent",
            f"requests:          ~{self.requests:,.0f}",
            f"prompt tokens:     ~{self.prompt_tokens:,.0f}",
            f"completion tokens: ~{self.completion_tokens:,.0f}",
        ]
        for name, role in self.roles.items():
            lines.append(
                f"  {name:<10} {role.requests:>9,.0f} requests {role.prompt_tokens:>12,.0f} "
                f"prompt {role.completion_tokens:>11,.0f} completion tokens"
            )
        if prices is not None and prices.given:
            lines.append(
                f"cost:              ~${self.cost_usd(prices):,.4f} at {prices.describe()}"
            )
        else:
            lines.append("cost:              pass --price-in and --price-out (USD per 1M tokens)")
        lines.append("assumptions:")
        lines.extend(f"  - {text}" for text in self.assumptions)
        return "\n".join(lines)


class _Tokens:
    def __init__(self, chars_per_token: float, chat_overhead: int) -> None:
        self.chars_per_token = chars_per_token
        self.chat_overhead = chat_overhead

    def text(self, text: str) -> float:
        return len(text) / self.chars_per_token

    def request(self, request: ChatRequest) -> float:
        if request.messages is None:
            return self.text(request.prompt or "")
        chars = sum(len(m.get("content", "")) for m in request.messages)
        return chars / self.chars_per_token + self.chat_overhead * len(request.messages)

    def clip(self, text: str, max_tokens: int) -> str:
        return text[: int(max_tokens * self.chars_per_token)]


def estimate_run(
    rows: list[dict[str, Any]],
    config: MusicConfig,
    *,
    backend_kind: str,
    validity: float | None = None,
    chars_per_token: float = 4.0,
    chat_overhead: int = 4,
) -> RunEstimate:
    """Model the requests and tokens of ``MusicAugmenter(config, backend)`` over ``rows``.

    Args:
        rows: the input rows, as the augmenter would receive them.
        config: the run's ``MusicConfig``.
        backend_kind: the backend's name (``"openai"``, ``"llamacpp"``...), which decides an
            ``"auto"`` prompt style exactly as the augmenter does.
        validity: per-attempt share of valid contrast outputs (default ``DEFAULT_VALIDITY``
            of the style).
        chars_per_token: characters per token of the model's tokenizer.
        chat_overhead: tokens a chat template adds per message.
    """
    style = resolve_prompt_style(config.prompt_style, backend_kind)
    p = DEFAULT_VALIDITY[style] if validity is None else validity
    attempts = sum((1.0 - p) ** k for k in range(config.max_attempts))
    contrast_spec, user_spec = role_templates(style, config.contrast_template, config.user_template)
    roles = (
        InstructionPerturber(contrast_spec, config.contrast_sampling, config.max_attempts),
        UserSimulator(user_spec, config.user_sampling),
        AssistantSimulator(
            config.assistant_template, config.assistant_sampling, config.assistant_system_prompt
        ),
    )
    tokens = _Tokens(chars_per_token, chat_overhead)
    selector = TurnSelector(
        config.branch, contrast_turns=config.contrast_turns, max_turns=config.max_turns
    )
    estimate = RunEstimate(rows=len(rows), unreadable_rows=0, pairs=0, prompt_style=style)
    for index, record in enumerate(rows):
        try:
            source = read_source(
                record, input_format=config.input_format, repair=config.repair,
                source_side=config.source_side, max_turns=config.max_turns, row=index,
            )  # fmt: skip
            rng = random.Random(f"{config.seed}|{source.content_hash()}")
            selections = selector.select(source.num_turns, rng, config.pairs_per_conversation)
        except UserInputError:
            estimate.unreadable_rows += 1
            continue
        for selection in selections:
            estimate.pairs += 1
            _walk(estimate, source, selection, config, roles, tokens, attempts)
    estimate.assumptions = [
        f"prompt style {style} (prompt_style={config.prompt_style!r}, backend {backend_kind!r})",
        f"contrast validity per attempt p={p:g} -> {attempts:.2f} expected attempts per "
        f"contrast turn (max_attempts={config.max_attempts}); answers and user turns 1 attempt",
        "generated answers as long as the source's answer at that turn (mean past its end), "
        f"capped at {config.assistant_sampling.max_tokens} tokens; contrast instructions as "
        f"long as the original (cap {config.contrast_sampling.max_tokens}); simulated user "
        f"turns as long as the source's (cap {config.user_sampling.max_tokens})",
        f"tokens = characters / {chars_per_token:g}, plus {chat_overhead} per chat message",
        "every pair runs to its end (failed pairs stop early: an upper bound for them); "
        "cache hits are counted as paid",
    ]
    return estimate


def _walk(
    estimate: RunEstimate,
    source: Conversation,
    selection: Selection,
    config: MusicConfig,
    roles: tuple[InstructionPerturber, UserSimulator, AssistantSimulator],
    tokens: _Tokens,
    attempts: float,
) -> None:
    """Add one pair's requests: both branches, turn by turn, over a stand-in history."""
    perturber, user, assistant = roles
    turns = source.turns
    answers = [t.assistant for t in turns if t.assistant]
    mean_answer = "x" * (sum(map(len, answers)) // len(answers) if answers else 400)
    mean_user = "x" * (sum(len(t.user) for t in turns) // max(1, len(turns)))
    messages = [dict(m) for m in source.upto_user(selection.branch_turn).to_messages()]
    contrast = set(selection.contrast_turns)
    for turn in range(selection.branch_turn, selection.num_turns):
        instruction = messages[-1]["content"]
        if turn in contrast:  # the rejected branch rewrites u_t first
            request = perturber.request(messages[:-1], instruction, seed=0)
            rewrite = tokens.text(tokens.clip(instruction, config.contrast_sampling.max_tokens))
            estimate.roles["contrast"].add(attempts, tokens.request(request), rewrite)
        answer = turns[turn].assistant if turn < len(turns) else None
        answer = tokens.clip(answer or mean_answer, config.assistant_sampling.max_tokens)
        request = assistant.request(messages, seed=0)
        estimate.roles["assistant"].add(2, tokens.request(request), tokens.text(answer))
        messages.append({"role": "assistant", "content": answer})
        if turn + 1 >= selection.num_turns:
            break
        following = turns[turn + 1].user if turn + 1 < len(turns) else None
        if config.user_turns == "replay" and following is not None:
            text = following
        else:
            request = user.request(messages, seed=0)
            text = tokens.clip(following or mean_user, config.user_sampling.max_tokens)
            estimate.roles["user"].add(2, tokens.request(request), tokens.text(text))
        messages.append({"role": "user", "content": text})
