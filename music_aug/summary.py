"""``RunSummary``: what an augmentation run did, for people and for logs.

Counts rows in, pairs out, failures by reason (failed and skipped rows alike), the
perturbation validity rate, token usage, backend calls and wall time. The augmenter keeps
one per process (``num_proc > 1`` workers and Ray actors each count their own share);
``merge`` adds such shares up and ``from_dict`` reads back what ``to_dict`` wrote. This
module does no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["Prices", "RunSummary"]


@dataclass(frozen=True, slots=True)
class Prices:
    """Token prices in USD per 1M tokens; ``None`` means not given.

    Used by ``music-aug augment --dry-run`` (the estimate) and the end-of-run summary
    (the actual cost), so both are computed at the same prices.
    """

    input_per_m: float | None = None
    output_per_m: float | None = None

    @property
    def given(self) -> bool:
        return self.input_per_m is not None or self.output_per_m is not None

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        """USD for that many tokens (an unset price counts as 0)."""
        return (
            prompt_tokens * (self.input_per_m or 0.0)
            + completion_tokens * (self.output_per_m or 0.0)
        ) / 1e6

    def describe(self) -> str:
        def one(value: float | None) -> str:
            return "unset" if value is None else f"${value:g}"

        return f"{one(self.input_per_m)} in / {one(self.output_per_m)} out per 1M tokens"


@dataclass
class RunSummary:
    """Counters of one augmenter; ``format()`` is the CLI's end-of-run summary."""

    rows_in: int = 0
    pairs_out: int = 0
    failed: int = 0
    skipped: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    perturbation_valid: int = 0
    perturbation_attempts: int = 0
    invalid_perturbations: dict[str, int] = field(default_factory=dict)
    length_rejected: int = 0
    verified: int = 0
    unverified: int = 0
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0}
    )
    backend_calls: int = 0
    wall_time_s: float = 0.0

    @property
    def validity_rate(self) -> float | None:
        """Valid contrast instructions / perturbation attempts (``None`` before any)."""
        if not self.perturbation_attempts:
            return None
        return self.perturbation_valid / self.perturbation_attempts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["validity_rate"] = self.validity_rate
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        """The summary ``to_dict`` wrote (derived keys such as ``validity_rate`` ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: copy.deepcopy(v) for k, v in data.items() if k in names})

    def merge(self, other: RunSummary) -> RunSummary:
        """A new summary with every counter of ``self`` and ``other`` added up.

        ``wall_time_s`` adds up too (busy time of the parts, not the elapsed time of a
        parallel run; a caller that timed the whole run replaces it).
        """
        return self._combine(other, 1)

    def since(self, earlier: RunSummary) -> RunSummary:
        """What was counted after ``earlier`` (a ``copy()`` of this summary) was taken."""
        return self._combine(earlier, -1)

    def copy(self) -> RunSummary:
        return RunSummary.from_dict(self.to_dict())

    def _combine(self, other: RunSummary, sign: int) -> RunSummary:
        combined = RunSummary()
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, dict):
                total = dict(mine)
                for key, value in theirs.items():
                    total[key] = total.get(key, 0) + sign * value
                keep = getattr(combined, f.name)  # e.g. usage's keys, even at 0
                setattr(combined, f.name, {k: v for k, v in total.items() if v or k in keep})
            else:
                setattr(combined, f.name, mine + sign * theirs)
        return combined

    def cost_usd(self, prices: Prices) -> float:
        """What the run's tokens cost at ``prices`` (retries included; cache hits too)."""
        return prices.cost(
            self.usage.get("prompt_tokens", 0), self.usage.get("completion_tokens", 0)
        )

    def format(self, prices: Prices | None = None) -> str:
        """A few human-readable lines; with ``prices``, also the run's cost."""
        rate = self.validity_rate
        rate_text = "n/a" if rate is None else f"{rate:.1%}"
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.failures_by_reason.items()))
        invalid = ", ".join(f"{k}={v}" for k, v in sorted(self.invalid_perturbations.items()))
        lines = [
            f"rows in:            {self.rows_in}",
            f"pairs out:          {self.pairs_out}",
            f"failed (marked):    {self.failed}",
            f"skipped:            {self.skipped}",
            f"failures by reason: {reasons or 'none'}",
            f"perturbation valid: {self.perturbation_valid}/{self.perturbation_attempts} "
            f"({rate_text}); invalid outputs: {invalid or 'none'}",
            *self._quality_lines(),
            f"tokens:             {self.usage.get('prompt_tokens', 0)} prompt + "
            f"{self.usage.get('completion_tokens', 0)} completion in "
            f"{self.usage.get('requests', 0)} requests ({self.backend_calls} backend calls)",
            f"wall time:          {self.wall_time_s:.1f} s",
        ]
        if prices is not None and prices.given:
            lines.append(f"cost:               ${self.cost_usd(prices):.4f} at {prices.describe()}")
        return "\n".join(lines)

    def _quality_lines(self) -> list[str]:
        lines = []
        if self.length_rejected:
            lines.append(f"length control:     {self.length_rejected} rejected answer(s) "
                         "redrawn")  # fmt: skip
        if self.verified or self.unverified:
            lines.append(f"judge verification: {self.verified} confirmed, {self.unverified} "
                         "not confirmed")  # fmt: skip
        return lines
