"""Multi-turn Best-of-N evaluation, the protocol behind the paper's Figure 2.

For each initial prompt and each of T assistant turns: the policy backend samples the
candidates a selector asks for, the selector keeps one (a reward model's argmax over the
conversation so far, or greedy decoding), and a user simulator writes the next user turn.
Backend calls are batched across prompts: one policy call and one simulator call per turn.
Then ``run_bon_experiment`` judges each comparison (e.g. "rm vs greedy") per dataset and N
with an order-swapped ``PairwiseJudge`` and reports win rates (ties = 0.5).

Random choices use per-request seeds derived from the run seed, the prompt's content hash,
the turn and the candidate index, so results do not depend on batch order and a cached
backend reuses answers across runs. This module does not plot (``plots.py``) or write files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from music_aug.backends.base import Backend, ChatRequest, ChatResult, SamplingParams
from music_aug.branches import derive_seed
from music_aug.conversation import Conversation
from music_aug.errors import ConfigError, UserInputError
from music_aug.evaluation.judge import (
    JudgeOutcome,
    PairwiseJudge,
    WinRate,
    judge_statistics,
    win_rate,
)
from music_aug.evaluation.selectors import Selector

__all__ = [
    "BonCell",
    "BonConversation",
    "BonResults",
    "UserTurnWriter",
    "default_comparisons",
    "run_best_of_n",
    "run_bon_experiment",
]


class UserTurnWriter(Protocol):
    """What BoN needs from a user simulator (``music_aug.simulate.UserSimulator`` fits)."""

    def request(self, conversation: Conversation, *, seed: int) -> ChatRequest: ...

    def parse(self, result: ChatResult) -> str | None: ...


@dataclass(frozen=True)
class BonConversation:
    """One conversation grown by a selector.

    Attributes:
        turns_completed: assistant turns written; fewer than requested when ``stop_reason``
            is set (``"no_candidate"``: every policy sample failed or was empty;
            ``"user_simulator"``: no usable next user turn).
        candidates / choices: per turn, the sampled texts and the chosen index.
        scores: per turn, the reward model's candidate scores (empty for greedy).
    """

    prompt_index: int
    selector: str
    n: int
    conversation: Conversation
    turns_completed: int
    stop_reason: str | None = None
    candidates: list[list[str]] = field(default_factory=list)
    choices: list[int] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_index": self.prompt_index,
            "prompt_id": self.conversation.id,
            "selector": self.selector,
            "n": self.n,
            "turns_completed": self.turns_completed,
            "stop_reason": self.stop_reason,
            "messages": self.conversation.to_messages(),
            "candidates": self.candidates,
            "choices": self.choices,
            "scores": self.scores,
        }


@dataclass
class _State:
    history: Conversation
    key: str
    stop_reason: str | None = None
    turns: int = 0
    candidates: list[list[str]] = field(default_factory=list)
    choices: list[int] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)


def run_best_of_n(
    prompts: Sequence[Conversation],
    policy: Backend,
    selector: Selector,
    user_simulator: UserTurnWriter,
    *,
    n: int,
    turns: int = 3,
    sampling: SamplingParams | None = None,
    user_backend: Backend | None = None,
    seed: int = 0,
) -> list[BonConversation]:
    """Grow one conversation per prompt for ``turns`` assistant turns with ``selector``.

    Args:
        prompts: conversations ending with a user message (usually one user turn).
        policy: backend that samples assistant candidates.
        selector: picks one candidate per turn.
        user_simulator: writes the next user turn (``request``/``parse``).
        n: best-of-N size (the greedy selector ignores it).
        turns: assistant turns per conversation (T).
        sampling: policy sampling settings (default temperature 0.7, 256 tokens).
        user_backend: backend for the simulator; defaults to ``policy``.
        seed: run seed.
    """
    if turns < 1:
        raise ConfigError(f"turns must be >= 1, got {turns}")
    for index, prompt in enumerate(prompts):
        if not prompt.ends_with_user:
            raise UserInputError(
                f"prompt {index} must end with a user message; keep only the first user turn"
            )
    base = selector.sampling(sampling or SamplingParams(temperature=0.7, max_tokens=256))
    k = selector.num_candidates(n)
    states = [_State(p, p.content_hash()) for p in prompts]
    for turn in range(turns):
        active = [s for s in states if s.stop_reason is None]
        if not active:
            break
        requests = [
            ChatRequest(
                messages=tuple(s.history.to_messages()),
                sampling=replace(base, seed=derive_seed(seed, s.key, turn, j)),
            )
            for s in active
            for j in range(k)
        ]
        results = policy.generate(requests)
        choosing, texts = [], []
        for i, state in enumerate(active):
            own = [r.text.strip() for r in results[i * k : (i + 1) * k] if r.ok and r.text.strip()]
            if own:
                choosing.append(state)
                texts.append(own)
            else:
                state.stop_reason = "no_candidate"
        for state, own, choice in zip(
            choosing, texts, selector.choose([s.history for s in choosing], texts), strict=True
        ):
            state.history = state.history.append("assistant", own[choice.index])
            state.turns += 1
            state.candidates.append(own)
            state.choices.append(choice.index)
            state.scores.append(list(choice.scores))
        if turn == turns - 1 or not choosing:
            break
        simulated = (user_backend or policy).generate(
            [
                user_simulator.request(s.history, seed=derive_seed(seed, s.key, turn, "user"))
                for s in choosing
            ]
        )
        for state, result in zip(choosing, simulated, strict=True):
            text = user_simulator.parse(result) if result.ok else None
            if text and text.strip():
                state.history = state.history.append("user", text.strip())
            else:
                state.stop_reason = "user_simulator"
    return [
        BonConversation(
            prompt_index=i,
            selector=selector.name,
            n=n,
            conversation=s.history,
            turns_completed=s.turns,
            stop_reason=s.stop_reason,
            candidates=s.candidates,
            choices=s.choices,
            scores=s.scores,
        )
        for i, s in enumerate(states)
    ]


@dataclass(frozen=True)
class BonCell:
    """Win rate of ``first`` against ``second`` on one dataset at one N (one heatmap cell)."""

    dataset: str
    n: int
    first: str
    second: str
    result: WinRate
    prompt_indices: list[int]
    outcomes: list[JudgeOutcome]

    @property
    def comparison(self) -> str:
        return f"{self.first} vs {self.second}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "n": self.n,
            "comparison": self.comparison,
            "first": self.first,
            "second": self.second,
            **{k: v for k, v in self.result.to_dict().items() if k != "n"},
            "judged": self.result.n,
        }


@dataclass
class BonResults:
    """Everything a BoN experiment produced: cells, conversations, judge audit trail."""

    cells: list[BonCell]
    conversations: dict[tuple[str, str, int], list[BonConversation]]
    config: dict[str, Any] = field(default_factory=dict)

    def judge_statistics(self) -> dict[str, float | int]:
        return judge_statistics([o for cell in self.cells for o in cell.outcomes])

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` document (conversations and judge outputs go elsewhere)."""
        return {
            "config": self.config,
            "cells": [cell.to_dict() for cell in self.cells],
            "judge_statistics": self.judge_statistics(),
        }

    def judgments(self) -> list[dict[str, Any]]:
        """One audit row per judged comparison, with both raw judge outputs."""
        return [
            {
                "dataset": c.dataset,
                "n": c.n,
                "comparison": c.comparison,
                "prompt_index": i,
                **o.to_dict(),
            }
            for c in self.cells
            for i, o in zip(c.prompt_indices, c.outcomes, strict=True)
        ]


def default_comparisons(names: Sequence[str]) -> list[tuple[str, str]]:
    """Every reward-model selector against greedy, then every pair of reward models."""
    models = [name for name in names if name != "greedy"]
    pairs = [(name, "greedy") for name in models] if "greedy" in names else []
    pairs += [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    return pairs


def run_bon_experiment(
    datasets: Mapping[str, Sequence[Conversation]],
    policy: Backend,
    selectors: Sequence[Selector],
    ns: Sequence[int],
    judge: PairwiseJudge,
    user_simulator: UserTurnWriter,
    *,
    turns: int = 3,
    sampling: SamplingParams | None = None,
    user_backend: Backend | None = None,
    comparisons: Sequence[tuple[str, str]] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> BonResults:
    """Generate BoN conversations for every dataset x selector x N and judge the comparisons.

    A selector whose candidate count does not depend on N (greedy) is generated once per
    dataset and reused for every N. Conversations of a comparison are cut to the turns both
    sides completed before judging. All judge requests go out in one batched call.
    """
    names = [s.name for s in selectors]
    if len(set(names)) != len(names):
        raise ConfigError(f"selector names must be unique, got {names}")
    pairs = list(comparisons) if comparisons is not None else default_comparisons(names)
    for first, second in pairs:
        if first not in names or second not in names:
            raise ConfigError(f"comparison {first} vs {second} names an unknown selector {names}")
    by_name = {s.name: s for s in selectors}
    conversations: dict[tuple[str, str, int], list[BonConversation]] = {}
    generated: dict[tuple[str, str, int], list[BonConversation]] = {}
    for dataset, prompts in datasets.items():
        for n in ns:
            for selector in selectors:
                key = (dataset, selector.name, selector.num_candidates(n))
                if key not in generated:
                    if progress:
                        progress(f"{dataset}: {selector.name} N={n}, {len(prompts)} prompts")
                    generated[key] = run_best_of_n(
                        prompts, policy, selector, user_simulator, n=n, turns=turns,
                        sampling=sampling, user_backend=user_backend, seed=seed,
                    )  # fmt: skip
                conversations[(dataset, selector.name, n)] = generated[key]
    jobs: list[tuple[str, int, str, str, list[int]]] = []
    judge_pairs: list[tuple[Conversation, Conversation]] = []
    for dataset in datasets:
        for n in ns:
            for first, second in pairs:
                a = conversations[(dataset, by_name[first].name, n)]
                b = conversations[(dataset, by_name[second].name, n)]
                kept = []
                for x, y in zip(a, b, strict=True):
                    shared = min(x.turns_completed, y.turns_completed)
                    if shared:
                        kept.append(x.prompt_index)
                        judge_pairs.append(
                            (x.conversation.prefix(shared), y.conversation.prefix(shared))
                        )
                jobs.append((dataset, n, first, second, kept))
    if progress:
        progress(f"judging {len(judge_pairs)} comparisons in both orders")
    outcomes = judge.judge(judge_pairs)
    cells, offset = [], 0
    for dataset, n, first, second, kept in jobs:
        own = outcomes[offset : offset + len(kept)]
        offset += len(kept)
        if own:
            cells.append(
                BonCell(dataset, n, first, second, win_rate(own, seed=seed), kept, list(own))
            )
    config = {
        "datasets": {name: len(prompts) for name, prompts in datasets.items()},
        "selectors": names,
        "ns": list(ns),
        "turns": turns,
        "seed": seed,
        "policy": f"{policy.name}:{policy.model}",
        "judge": f"{judge.backend.name}:{judge.backend.model}",
    }
    return BonResults(cells=cells, conversations=conversations, config=config)
