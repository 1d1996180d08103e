"""``RowWork``: one input row as the scheduler sees it: its pairs' branches, requests, results.

The scheduler (``scheduler.run``) asks a row which requests it needs now (``ready``) and
hands it each result (``receive``); the row asks ``PairStepper`` what each branch needs
next and applies results through it, counts usage, lets ``FailFast`` look at every result,
and turns a ``StepFailure`` into a failed pair (or an ``AugmentationError`` under
``on_error="raise"``). It builds no output rows (``MusicAugmenter._finish`` does, once the
row is finished) and sends nothing itself.
"""

from __future__ import annotations

from typing import Any, cast

from music_aug.backends.base import ChatRequest, ChatResult
from music_aug.branches import PairJob, StepFailure
from music_aug.errors import AugmentationError
from music_aug.failfast import FailFast
from music_aug.steps import PairStepper
from music_aug.summary import RunSummary

__all__ = ["RowWork"]


class RowWork:
    """The pairs of one input row, driven step by step.

    Args:
        row: the row's index in the run (for messages).
        jobs: its pairs (none when the row could not be read).
        planned: output rows known before any request (a failed row).
        stepper: the MUSIC step policy.
        failfast: the run's fail-fast detector.
        summary: the run summary (usage is counted per result).
        on_error: ``MusicConfig.on_error``.
    """

    __slots__ = (
        "failfast", "jobs", "on_error", "planned", "row", "sent", "stepper", "summary", "weight",
    )  # fmt: skip

    def __init__(
        self,
        row: int,
        jobs: list[PairJob],
        planned: list[dict[str, Any]],
        *,
        stepper: PairStepper,
        failfast: FailFast,
        summary: RunSummary,
        on_error: str,
    ) -> None:
        self.row = row
        self.jobs = jobs
        self.planned = planned
        self.stepper = stepper
        self.failfast = failfast
        self.summary = summary
        self.on_error = on_error
        self.sent: dict[tuple[int, int], ChatRequest] = {}  # in flight, by (job, side)
        # generated turns of the longest pair: about how long its dependency chain is
        self.weight = max((j.selection.num_turns - j.selection.branch_turn for j in jobs),
                          default=0)  # fmt: skip

    def ready(self) -> list[tuple[object, ChatRequest]]:
        wanted: list[tuple[object, ChatRequest]] = []
        for j, job in enumerate(self.jobs):
            for side, branch in enumerate(job.branches):
                if job.may_send(branch):
                    request = self._next_request(job, side)
                    if request is not None:
                        branch.sent = True
                        self.sent[j, side] = request
                        wanted.append(((j, side), request))
        return wanted

    def receive(self, handle: object, result: ChatResult) -> None:
        index, side = cast("tuple[int, int]", handle)
        request = self.sent.pop((index, side))
        self.failfast.observe(request, result)  # a run that cannot succeed stops here
        job = self.jobs[index]
        branch = job.branches[side]
        usage = result.usage
        job.record(branch, usage.prompt_tokens, usage.completion_tokens)
        counts = self.summary.usage
        counts["prompt_tokens"] = counts.get("prompt_tokens", 0) + usage.prompt_tokens
        counts["completion_tokens"] = counts.get("completion_tokens", 0) + usage.completion_tokens
        counts["requests"] = counts.get("requests", 0) + 1
        try:
            self.stepper.receive(job, branch, result)
        except StepFailure as failure:
            self._fail(job, side, failure)
        finally:
            job.mark_contrasts(branch)

    @property
    def finished(self) -> bool:
        return all(job.settled for job in self.jobs)

    def _next_request(self, job: PairJob, side: int) -> ChatRequest | None:
        try:
            return self.stepper.next_request(job, job.branches[side])
        except StepFailure as failure:  # a step settled without a request (length control)
            self._fail(job, side, failure)
            return None

    def _fail(self, job: PairJob, side: int, failure: StepFailure) -> None:
        job.fail(job.branches[side], failure)
        if self.on_error == "raise":
            raise AugmentationError(str(failure), row=job.row, reason=failure.reason) from None
