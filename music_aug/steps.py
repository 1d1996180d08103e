"""``PairStepper``: what a branch asks for next, and what a result does to it.

The MUSIC step policy, apart from any schedule. Chosen: the assistant answers each user
instruction. Rejected: at each contrast turn the perturber rewrites u_t into u'_t, the
assistant answers the history followed by u'_t, and the branch RECORDS u_t with that
answer. After each answer a branch gets its next user turn (simulated from its own
history, or replayed from the source). Invalid outputs are retried with a new sampling
seed up to ``max_attempts``; a step that cannot succeed raises ``StepFailure``.

Length control (``config.length_ratio``): a rejected answer at a contrast turn waits in
phase ``"balance"`` until the chosen branch has answered the same turn, then is kept if
the longer answer is at most ``length_ratio`` times the shorter (whitespace words), else
redrawn with a new seed. The decision depends only on the two answers, never on timing.

This module sends nothing and knows no scheduler: ``augmenter.py`` asks it for requests
and hands it results, in whatever order they complete.
"""

from __future__ import annotations

from music_aug.backends.base import ChatRequest, ChatResult
from music_aug.branches import Branch, PairJob, StepFailure, derive_seed
from music_aug.config import MusicConfig
from music_aug.perturb import InstructionPerturber
from music_aug.simulate import AssistantSimulator, UserSimulator
from music_aug.summary import RunSummary

__all__ = ["PairStepper"]


class PairStepper:
    """The per-step policy of MUSIC over ``PairJob`` branches."""

    def __init__(
        self,
        config: MusicConfig,
        perturber: InstructionPerturber,
        user: UserSimulator,
        assistant: AssistantSimulator,
        summary: RunSummary,
    ) -> None:
        self.config = config
        self.perturber = perturber
        self.user = user
        self.assistant = assistant
        self.summary = summary

    def next_request(self, job: PairJob, branch: Branch) -> ChatRequest | None:
        """The request ``branch`` needs next, or ``None`` once it is done.

        Replayed user turns need no request and are applied here.
        """
        selection = job.selection
        while True:
            phase = branch.phase
            if phase == "done":
                return None
            turn = branch.turn
            seed = derive_seed(job.seed, branch.side, turn, phase, branch.attempts)
            if phase == "user":
                turn += 1
                if turn >= selection.num_turns:
                    branch.phase = "done"
                    return None
                if self.config.user_turns == "replay" and turn < job.source.num_turns:
                    self._add_user(job, branch, job.source.turns[turn].user)
                    continue
                return self.user.request(branch.messages, seed=seed)
            if phase == "balance":
                if not self._balance(job, branch):
                    return None  # still waiting for the chosen answer to this turn
                continue
            if phase == "perturb":
                history = branch.messages[:-1]
                instruction = branch.messages[-1]["content"]
                return self.perturber.request(
                    history, instruction, seed=seed, attempt=branch.attempts
                )
            messages = branch.messages
            if branch.contrast is not None:
                messages = [*messages[:-1], {"role": "user", "content": branch.contrast}]
            return self.assistant.request(messages, seed=seed)

    def receive(self, job: PairJob, branch: Branch, result: ChatResult) -> None:
        """Apply ``result`` to ``branch``.

        Raises:
            StepFailure: the step failed for good (backend error, or no valid output
                within ``max_attempts``).
        """
        if not result.ok:
            raise StepFailure(
                "backend_error", f"turn {branch.turn} ({branch.side}): {result.error}"
            )
        if branch.phase == "user":
            text = self.user.parse(result)
            if text is None:
                self._retry(branch, "user_simulation_invalid", "no usable next user turn")
            else:
                self._add_user(job, branch, text)
        elif branch.phase == "perturb":
            self._receive_contrast(job, branch, result)
        else:
            answer = self.assistant.parse(result)
            if answer is None:
                self._retry(branch, "empty_answer", "the assistant returned no text")
                return
            finish = result.finish_reason or "stop"
            if self._balanced_turn(job, branch):
                branch.parked = (answer, finish)
                branch.phase = "balance"
                return
            self._accept(branch, answer, finish)

    def _accept(self, branch: Branch, answer: str, finish: str) -> None:
        branch.messages.append({"role": "assistant", "content": answer})
        branch.answers[branch.turn] = answer
        branch.finish_reasons.append(finish)
        branch.phase = "user"
        branch.attempts = 0
        branch.contrast = None
        branch.parked = None

    def _balanced_turn(self, job: PairJob, branch: Branch) -> bool:
        return (
            self.config.length_ratio is not None
            and branch.side == "rejected"
            and branch.turn in job.selection.contrast_turns
        )

    def _balance(self, job: PairJob, branch: Branch) -> bool:
        """Settle a parked rejected answer; ``False`` while the chosen one is not in yet.

        Raises:
            StepFailure: the answer is out of the band and no attempt is left.
        """
        if branch.parked is None:
            raise RuntimeError(f"turn {branch.turn}: phase 'balance' without a parked answer")
        chosen = job.branches[0]
        reference = chosen.answers.get(branch.turn)
        answer, finish = branch.parked
        if reference is None:
            if chosen.phase != "done":
                return False
            self._accept(branch, answer, finish)  # the chosen branch ended without it
            return True
        ratio = self.config.length_ratio or 1.0
        words = len(answer.split()), len(reference.split())
        if max(words) <= ratio * max(1, min(words)):
            self._accept(branch, answer, finish)
            return True
        self.summary.length_rejected += 1
        branch.parked = None
        branch.phase = "answer"
        self._retry(branch, "length_unbalanced", f"answer of {words[0]} words against the "
                    f"chosen {words[1]} (length_ratio {ratio})")  # fmt: skip
        return True

    def _receive_contrast(self, job: PairJob, branch: Branch, result: ChatResult) -> None:
        summary = self.summary
        summary.perturbation_attempts += 1
        instruction = branch.messages[-1]["content"]
        history = branch.messages[:-1]
        text = self.perturber.parse(result)
        why = self.perturber.validate(text, instruction, history)
        if why is not None:
            summary.invalid_perturbations[why] = summary.invalid_perturbations.get(why, 0) + 1
            self._retry(branch, "perturbation_invalid", f"no valid contrast instruction "
                        f"(last output rejected as {why!r})")  # fmt: skip
            return
        summary.perturbation_valid += 1
        job.originals.append(instruction)
        job.contrasts.append(text)
        branch.contrast = text
        branch.phase = "answer"
        branch.attempts = 0

    def _add_user(self, job: PairJob, branch: Branch, text: str) -> None:
        branch.messages.append({"role": "user", "content": text})
        branch.turn += 1
        contrast = branch.side == "rejected" and branch.turn in job.selection.contrast_turns
        branch.phase = "perturb" if contrast else "answer"
        branch.attempts = 0
        branch.contrast = None

    def _retry(self, branch: Branch, reason: str, message: str) -> None:
        branch.attempts += 1
        if branch.attempts >= self.config.max_attempts:
            raise StepFailure(reason, f"turn {branch.turn} ({branch.side}): {message} after "
                           f"{branch.attempts} attempt(s)")  # fmt: skip
