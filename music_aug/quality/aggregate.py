"""Aggregates of per-pair measurements: length statistics, truncation, similarity, refusals.

Pure functions over ``PairQuality`` values and plain numbers; ``measure.inspect_pairs``
calls them. This module reads no rows and counts no tokens.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from music_aug.errors import UserInputError
from music_aug.quality.models import (
    LengthStats,
    PairQuality,
    RefusalStats,
    SideTruncation,
    TruncationStats,
)

__all__ = [
    "NEAR_COPY",
    "histogram",
    "length_stats",
    "refusal_stats",
    "similarity_stats",
    "truncation_stats",
]

NEAR_COPY = 0.8  # Jaccard at or above which a contrast instruction counts as a near copy


def length_stats(diffs: Sequence[int], chosen: Sequence[int]) -> LengthStats | None:
    if not diffs:
        return None
    n = len(diffs)
    longer = sum(1 for d in diffs if d > 0) / n
    shorter = sum(1 for d in diffs if d < 0) / n
    ties = 1.0 - longer - shorter
    mean_square = math.fsum(d * d for d in diffs) / n
    mean_diff = math.fsum(diffs) / n
    mean_chosen = math.fsum(chosen) / n
    return LengthStats(
        mean_diff=mean_diff,
        median_diff=float(statistics.median(diffs)),
        mean_chosen=mean_chosen,
        mean_rejected=mean_chosen - mean_diff,
        chosen_longer=longer,
        rejected_longer=shorter,
        ties=ties,
        correlation=mean_diff / math.sqrt(mean_square) if mean_square else None,
        longer_wins=longer + 0.5 * ties,
        shorter_wins=shorter + 0.5 * ties,
    )


def truncation_stats(pairs: Sequence[PairQuality]) -> TruncationStats:
    known = [p.truncated for p in pairs if p.truncated is not None]
    if not known:
        return TruncationStats(status="unknown", pairs_with_reasons=0, chosen=None, rejected=None)
    sides = {}
    for side in ("chosen", "rejected"):
        answers = sum(t[f"{side}_answers"] for t in known)
        truncated = sum(t[side] for t in known)
        sides[side] = SideTruncation(
            answers=answers,
            truncated=truncated,
            rate=truncated / answers if answers else None,
            pairs_truncated=sum(1 for t in known if t[side]),
        )
    outcomes = [
        1.0 if t["chosen"] > t["rejected"] else 0.5 if t["chosen"] == t["rejected"] else 0.0
        for t in known
    ]
    return TruncationStats(
        status="known" if len(known) == len(pairs) else "partial",
        pairs_with_reasons=len(known),
        chosen=sides["chosen"],
        rejected=sides["rejected"],
        more_truncated_wins=math.fsum(outcomes) / len(outcomes),
    )


def similarity_stats(pairs: Sequence[PairQuality]) -> dict[str, float] | None:
    items = [s for p in pairs for s in p.instruction_similarity]
    if not items:
        return None
    jaccard = [s.jaccard for s in items]
    return {
        "instructions": float(len(items)),
        "mean_jaccard": math.fsum(jaccard) / len(items),
        "median_jaccard": float(statistics.median(jaccard)),
        "near_copies": float(sum(1 for j in jaccard if j >= NEAR_COPY)),
        "same_tokens": float(sum(1 for j in jaccard if j == 1.0)),
    }


def refusal_stats(summary: Mapping[str, Any] | None) -> RefusalStats | None:
    if summary is None:
        return None
    invalid = summary.get("invalid_perturbations")
    if not isinstance(invalid, Mapping) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in invalid.values()
    ):
        raise UserInputError(
            "the run summary has no 'invalid_perturbations' mapping of reason -> count; pass "
            "the JSON file `music-aug augment --summary-json PATH` wrote"
        )

    def optional_int(key: str) -> int | None:
        value = summary.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return RefusalStats(
        perturbation_valid=optional_int("perturbation_valid"),
        perturbation_attempts=optional_int("perturbation_attempts"),
        invalid_by_reason={str(k): int(v) for k, v in sorted(invalid.items())},
    )


def histogram(values: Iterable[int | None]) -> dict[int, int]:
    counts = Counter(v for v in values if v is not None)
    return dict(sorted(counts.items()))
