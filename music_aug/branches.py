"""Per-pair state of the augmenter: two branches, what each has done, and when the pair ends.

A ``PairJob`` holds one pair's plan (``Selection``), its two ``Branch`` objects (chosen and
rejected: messages so far, the phase that needs a model call next, retry attempts) and
what each branch has spent. ``derive_seed`` gives every request a reproducible sampling
seed.

Branches advance independently (the scheduler sends a branch's next request as soon as its
last result is in), so when one branch fails the other may be ahead of it or behind it.
To keep a failed row's record independent of that timing, a failure at a branch's k-th
result stops the pair at step k of BOTH branches: the other branch finishes its first k
requests (no more are sent once it is there), and the failed row reports what the first k
steps of each branch spent. The earliest failing step wins; at a tie, the rejected
branch's failure is reported (the lock-step schedule of earlier versions did the same, so
output files are unchanged). This module makes no requests and holds no policy;
``steps.py`` decides what a result means and ``augmenter.py`` drives both.
"""

from __future__ import annotations

import hashlib

from music_aug.conversation import Conversation
from music_aug.selection import Selection

__all__ = ["Branch", "PairJob", "StepFailure", "derive_seed"]


def derive_seed(base: int, *parts: object) -> int:
    """A 31-bit sampling seed from a pair's base seed and the step's coordinates."""
    blob = "|".join(map(str, (base, *parts))).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=4).digest(), "big") & 0x7FFFFFFF


class StepFailure(Exception):
    """A pair cannot be finished; ``reason`` is the short key counted in the summary."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class Branch:
    """One side of a pair: its messages so far, what it needs next, what it has spent."""

    __slots__ = (
        "answers", "attempts", "contrast", "contrasts_after", "failure", "finish_reasons",
        "messages", "parked", "phase", "sent", "side", "turn", "usage",
    )  # fmt: skip

    def __init__(self, side: str, messages: list[dict[str, str]], phase: str, turn: int) -> None:
        # Branch messages are plain dicts built from a validated source and parsed,
        # non-empty outputs; full validation happens once per pair in PairBuilder.
        self.side = side
        self.messages = messages
        self.phase = phase  # "user" | "perturb" | "answer" | "balance" | "done"
        self.turn = turn  # index of the branch's last user message
        self.attempts = 0
        self.contrast: str | None = None
        self.sent = False  # a request of this branch is in flight
        self.failure: StepFailure | None = None
        # per result received, in order: (prompt_tokens, completion_tokens), and how many
        # contrast instructions the pair had after it
        self.usage: list[tuple[int, int]] = []
        self.contrasts_after: list[int] = []
        self.answers: dict[int, str] = {}  # accepted answer per user turn
        self.finish_reasons: list[str] = []  # of each accepted answer, in order
        # an answer waiting for the other branch's answer to the same turn (length control)
        self.parked: tuple[str, str] | None = None

    @property
    def steps(self) -> int:
        """Results this branch has received."""
        return len(self.usage)


class PairJob:
    """One pair being built: the plan, both branches, provenance."""

    __slots__ = (
        "branches", "contrasts", "originals", "row", "seed", "selection", "source", "source_id",
    )  # fmt: skip

    def __init__(
        self, row: int, source: Conversation, source_id: str, selection: Selection, seed: int
    ) -> None:
        self.row = row
        self.source = source
        self.source_id = source_id
        self.selection = selection
        self.seed = seed
        turn = selection.branch_turn
        start = source.upto_user(turn).to_messages()
        first = "perturb" if turn in selection.contrast_turns else "answer"
        self.branches = (
            Branch("chosen", list(start), "answer", turn),
            Branch("rejected", start, first, turn),
        )
        self.originals: list[str] = []
        self.contrasts: list[str] = []

    # -- failure ---------------------------------------------------------------------------
    def fail(self, branch: Branch, failure: StepFailure) -> None:
        """``branch`` failed at its latest result; it sends nothing more."""
        branch.failure = failure
        branch.phase = "done"

    @property
    def _failed(self) -> tuple[int, Branch] | None:
        """The reported failure: earliest step; at a tie the rejected branch (later wins)."""
        best: tuple[int, Branch] | None = None
        for branch in self.branches:
            if branch.failure is not None and (best is None or branch.steps <= best[0]):
                best = (branch.steps, branch)
        return best

    @property
    def error(self) -> StepFailure | None:
        failed = self._failed
        return None if failed is None else failed[1].failure

    @property
    def cutoff(self) -> int | None:
        """Steps of each branch that count for a failed pair (``None``: no failure)."""
        failed = self._failed
        return None if failed is None else failed[0]

    # -- progress --------------------------------------------------------------------------
    def may_send(self, branch: Branch) -> bool:
        """Whether ``branch`` may ask for its next request now."""
        if branch.sent or branch.phase == "done":
            return False
        cutoff = self.cutoff
        return cutoff is None or branch.steps < cutoff

    @property
    def settled(self) -> bool:
        """Nothing in flight and nothing more to send: the pair can be emitted."""
        return not any(b.sent for b in self.branches) and not any(
            self.may_send(b) for b in self.branches
        )

    def record(self, branch: Branch, prompt_tokens: int, completion_tokens: int) -> None:
        """Count one result of ``branch`` (before its effect on the branch is applied)."""
        branch.sent = False
        branch.usage.append((prompt_tokens, completion_tokens))

    def mark_contrasts(self, branch: Branch) -> None:
        """Note how many contrast instructions the pair has after ``branch``'s latest step."""
        branch.contrasts_after.append(len(self.contrasts))

    def usage(self) -> dict[str, int]:
        """What the pair reports as spent: every step, or the first ``cutoff`` of each branch."""
        cutoff = self.cutoff
        steps = [b.usage if cutoff is None else b.usage[:cutoff] for b in self.branches]
        return {
            "prompt_tokens": sum(p for side in steps for p, _ in side),
            "completion_tokens": sum(c for side in steps for _, c in side),
            "requests": sum(len(side) for side in steps),
        }

    def reported_contrasts(self) -> int:
        """Contrast instructions that count for a failed pair (those of the first steps)."""
        cutoff = self.cutoff
        rejected = self.branches[1]
        if cutoff is None or not rejected.contrasts_after:
            return len(self.contrasts)
        return rejected.contrasts_after[min(cutoff, rejected.steps) - 1]
