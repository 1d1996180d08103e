"""The typed report ``inspect_pairs`` returns: frozen pydantic models, no computation.

``QualityReport`` holds the aggregates and one ``PairQuality`` per ok pair;
``QualityReport.to_dict()`` is what ``music-aug inspect --json`` prints. This module does
not measure anything (``music_aug.quality.measure``) nor format it
(``music_aug.quality.render``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "InstructionSimilarity",
    "LengthStats",
    "PairQuality",
    "QualityReport",
    "RefusalStats",
    "SideTruncation",
    "TruncationStats",
    "TurnLength",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TurnLength(_Frozen):
    """Answer lengths at one differing turn (0 for a side that has no answer there)."""

    turn: int
    chosen: int
    rejected: int
    diff: int


class InstructionSimilarity(_Frozen):
    """How close a contrast instruction u'_t is to the original u_t (1.0 = same tokens)."""

    turn: int
    jaccard: float


class PairQuality(_Frozen):
    """One pair's statistics. ``row`` is the 0-based index in the input."""

    row: int
    source_key: str
    user_turns: int
    branch_turn: int | None
    differing_turns: tuple[int, ...]
    turn_lengths: tuple[TurnLength, ...]
    chosen_tokens: int
    rejected_tokens: int
    length_diff: int
    conversation_chosen: int
    conversation_rejected: int
    conversation_diff: int
    truncated: dict[str, int] | None
    instruction_similarity: tuple[InstructionSimilarity, ...]
    duplicate_of: int | None


class LengthStats(_Frozen):
    """Length difference d = chosen - rejected over the pairs, and the length-only baseline.

    ``correlation`` is the point-biserial correlation of the length difference with the
    label over both orientations of every pair, ``mean(d) / sqrt(mean(d^2))``: +1 when
    chosen is always longer by the same amount, 0 when length says nothing about the label,
    ``None`` when every d is 0. ``longer_wins`` / ``shorter_wins``: accuracy of the rule
    "the longer (shorter) side is chosen", ties counted as 0.5.
    """

    mean_diff: float
    median_diff: float
    mean_chosen: float
    mean_rejected: float
    chosen_longer: float
    rejected_longer: float
    ties: float
    correlation: float | None
    longer_wins: float
    shorter_wins: float


class SideTruncation(_Frozen):
    """Answers with ``finish_reason == "length"`` on one side."""

    answers: int
    truncated: int
    rate: float | None
    pairs_truncated: int


class TruncationStats(_Frozen):
    """Truncation over the pairs that carry finish reasons.

    ``status``: ``"known"`` (every pair has finish reasons), ``"partial"`` or ``"unknown"``.
    ``more_truncated_wins``: accuracy of the rule "the side with more truncated answers is
    chosen" over those pairs, ties 0.5 (0.5 = truncation says nothing about the label).
    """

    status: Literal["known", "partial", "unknown"]
    pairs_with_reasons: int
    chosen: SideTruncation | None
    rejected: SideTruncation | None
    more_truncated_wins: float | None = None


class RefusalStats(_Frozen):
    """Contrast instructions the validator refused, from a run summary (``--summary-json``)."""

    perturbation_valid: int | None
    perturbation_attempts: int | None
    invalid_by_reason: dict[str, int]


class QualityReport(_Frozen):
    """Everything ``inspect_pairs`` measured; ``pairs`` holds one entry per ok pair."""

    rows: int
    pairs: int
    failed_rows: int
    failures_by_reason: dict[str, int]
    token_count: str
    answers: LengthStats | None
    conversations: LengthStats | None
    truncation: TruncationStats
    similarity: dict[str, float] | None
    refusals: RefusalStats | None
    differing_turns: dict[int, int]
    branch_turns: dict[int, int]
    user_turns: dict[int, int]
    duplicate_pairs: int
    duplicate_sources: int
    per_pair: tuple[PairQuality, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (histogram keys become strings)."""
        return self.model_dump(mode="json")
