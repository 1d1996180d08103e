"""Pairwise accuracy of a reward model on preference pairs, broken down by turn structure.

A pair counts as correct when the chosen side scores higher, half when both score the same.
Besides overall accuracy, mean margin and a bootstrap interval, the report splits pairs by
the number of user turns (1, 2, 3+) and by how many assistant turns differ between the sides
(1, 2+): the breakdown shows where a reward model is blind, e.g. a model trained on pairs
that differ only in the last turn (HH-RLHF) scoring near chance on pairs that differ earlier.

Beside each accuracy the report gives the length-only baseline on the same pairs: the
accuracy of "the side with the longer answers at the differing turns wins" (regex tokens,
``music_aug.quality.length_outcome``; ties 0.5). A reward model that does not beat it per
bucket may have learned length rather than the contrast (issue 13).

This module does not train or load models (pass any ``Scorer``) and does not read files
(see ``music_aug.evaluation.data``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from music_aug.conversation import PreferencePair
from music_aug.errors import UserInputError
from music_aug.evaluation.scorer import Scorer, score_sides
from music_aug.evaluation.stats import bootstrap_ci, mean
from music_aug.quality.measure import length_outcome

__all__ = [
    "BucketStats",
    "PairwiseReport",
    "differing_turns_bucket",
    "evaluate_pairs",
    "format_pairwise_table",
    "pair_outcome",
    "to_pairs",
    "user_turns_bucket",
]

USER_TURN_BUCKETS = ("1", "2", "3+")
DIFFERING_TURN_BUCKETS = ("0", "1", "2+")


@dataclass(frozen=True)
class BucketStats:
    """Accuracy over the pairs of one bucket."""

    n: int
    accuracy: float

    def to_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "accuracy": self.accuracy}


@dataclass(frozen=True)
class PairwiseReport:
    """Result of ``evaluate_pairs``.

    Attributes:
        n: number of pairs.
        accuracy: share of pairs where chosen scored higher (ties count 0.5).
        ci95: 95% percentile-bootstrap interval of ``accuracy``.
        mean_margin: mean of ``score(chosen) - score(rejected)``.
        by_user_turns: buckets ``"1"``, ``"2"``, ``"3+"`` (empty buckets left out).
        by_differing_turns: buckets ``"1"``, ``"2+"`` (and ``"0"`` for pairs whose assistant
            messages are identical and only user messages differ; empty buckets left out).
        chosen_scores / rejected_scores: the raw scores, in input order.
        longer_wins: accuracy of the length-only rule "longer answers win" (ties 0.5).
        longer_wins_by_user_turns / longer_wins_by_differing_turns: the same per bucket.
    """

    n: int
    accuracy: float
    ci95: tuple[float, float]
    mean_margin: float
    by_user_turns: dict[str, BucketStats]
    by_differing_turns: dict[str, BucketStats]
    chosen_scores: list[float] = field(repr=False, default_factory=list)
    rejected_scores: list[float] = field(repr=False, default_factory=list)
    longer_wins: float | None = None
    longer_wins_by_user_turns: dict[str, BucketStats] = field(default_factory=dict)
    longer_wins_by_differing_turns: dict[str, BucketStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``report.json`` entry of one dataset (scores left out)."""
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "ci95": [self.ci95[0], self.ci95[1]],
            "mean_margin": self.mean_margin,
            "by_user_turns": {k: v.to_dict() for k, v in self.by_user_turns.items()},
            "by_differing_turns": {k: v.to_dict() for k, v in self.by_differing_turns.items()},
            "length_baseline": {
                "longer_wins": self.longer_wins,
                "by_user_turns": {
                    k: v.to_dict() for k, v in self.longer_wins_by_user_turns.items()
                },
                "by_differing_turns": {
                    k: v.to_dict() for k, v in self.longer_wins_by_differing_turns.items()
                },
            },
        }


def pair_outcome(chosen_score: float, rejected_score: float) -> float:
    """1.0 if chosen scored higher, 0.5 on a tie, else 0.0."""
    if chosen_score > rejected_score:
        return 1.0
    if chosen_score == rejected_score:
        return 0.5
    return 0.0


def user_turns_bucket(pair: PreferencePair) -> str:
    """``"1"``, ``"2"`` or ``"3+"``: user turns of the longer side."""
    turns = max(pair.chosen.num_turns, pair.rejected.num_turns)
    return str(turns) if turns < 3 else "3+"


def differing_turns_bucket(pair: PreferencePair) -> str:
    """``"1"`` or ``"2+"`` differing assistant turns (``"0"`` if only user turns differ)."""
    count = len(pair.differing_turns)
    return str(count) if count < 2 else "2+"


def to_pairs(
    dataset: Iterable[PreferencePair | Mapping[str, Any]],
    *,
    format: str = "auto",
    repair: bool = False,
) -> list[PreferencePair]:
    """Read preference rows in any layout ``PreferencePair.from_record`` knows."""
    pairs = []
    for row, item in enumerate(dataset):
        if isinstance(item, PreferencePair):
            pairs.append(item)
        else:
            pairs.append(PreferencePair.from_record(item, format=format, repair=repair, row=row))
    return pairs


def _buckets(
    outcomes: list[float], keys: list[str], order: tuple[str, ...]
) -> dict[str, BucketStats]:
    grouped: dict[str, list[float]] = {}
    for key, outcome in zip(keys, outcomes, strict=True):
        grouped.setdefault(key, []).append(outcome)
    return {k: BucketStats(len(grouped[k]), mean(grouped[k])) for k in order if k in grouped}


def evaluate_pairs(
    reward_model: Scorer,
    dataset: Iterable[PreferencePair | Mapping[str, Any]],
    *,
    batch_size: int = 8,
    format: str = "auto",
    repair: bool = False,
    n_resamples: int = 2000,
    seed: int = 0,
) -> PairwiseReport:
    """Score both sides of every pair and summarise accuracy by turn structure.

    Args:
        reward_model: any ``Scorer`` (e.g. ``music_aug.reward.RewardModel``).
        dataset: ``PreferencePair`` objects or rows in any preference layout.
        batch_size: passed to ``reward_model.score``.
        format / repair: passed to ``PreferencePair.from_record`` for raw rows.
        n_resamples / seed: bootstrap settings of the interval.

    Raises:
        UserInputError: the dataset is empty or a row cannot be read.
        ModelBehaviorError: the scorer returned the wrong number of scores.
    """
    pairs = to_pairs(dataset, format=format, repair=repair)
    if not pairs:
        raise UserInputError("the preference dataset is empty; pass at least one pair")
    chosen, rejected = score_sides(
        reward_model, [p.chosen for p in pairs], [p.rejected for p in pairs], batch_size=batch_size
    )
    outcomes = [pair_outcome(c, r) for c, r in zip(chosen, rejected, strict=True)]
    user_keys = [user_turns_bucket(p) for p in pairs]
    differing_keys = [differing_turns_bucket(p) for p in pairs]
    lengths = [length_outcome(p) for p in pairs]
    return PairwiseReport(
        n=len(pairs),
        accuracy=mean(outcomes),
        ci95=bootstrap_ci(outcomes, n_resamples=n_resamples, seed=seed),
        mean_margin=mean([c - r for c, r in zip(chosen, rejected, strict=True)]),
        by_user_turns=_buckets(outcomes, user_keys, USER_TURN_BUCKETS),
        by_differing_turns=_buckets(outcomes, differing_keys, DIFFERING_TURN_BUCKETS),
        chosen_scores=chosen,
        rejected_scores=rejected,
        longer_wins=mean(lengths),
        longer_wins_by_user_turns=_buckets(lengths, user_keys, USER_TURN_BUCKETS),
        longer_wins_by_differing_turns=_buckets(lengths, differing_keys, DIFFERING_TURN_BUCKETS),
    )


def _cell(bucket: BucketStats | None, longer: BucketStats | None = None) -> str:
    if bucket is None:
        return "–"
    baseline = "" if longer is None else f" L {100 * longer.accuracy:.1f}"
    return f"{100 * bucket.accuracy:.1f} ({bucket.n}){baseline}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def format_pairwise_table(reports: Mapping[str, PairwiseReport]) -> str:
    """A markdown table: one row per dataset, accuracy in percent, pair counts in brackets.

    ``longer wins`` and the ``L`` in each bucket cell are the length-only baseline.
    """
    header = (
        "| dataset | n | accuracy | longer wins | 95% CI | margin | 1 user turn | 2 user turns "
        "| 3+ user turns | 1 differing | 2+ differing |"
    )
    lines = [header, "|" + "---|" * 11]
    for name, report in reports.items():
        lo, hi = report.ci95
        cells = [
            name,
            str(report.n),
            f"{100 * report.accuracy:.1f}",
            _percent(report.longer_wins),
            f"[{100 * lo:.1f}, {100 * hi:.1f}]",
            f"{report.mean_margin:+.3f}",
            *(
                _cell(report.by_user_turns.get(k), report.longer_wins_by_user_turns.get(k))
                for k in USER_TURN_BUCKETS
            ),
            *(
                _cell(
                    report.by_differing_turns.get(k), report.longer_wins_by_differing_turns.get(k)
                )
                for k in ("1", "2+")
            ),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        "\nlonger wins / L: accuracy of the length-only rule 'the side with more tokens in its "
        "differing answers is chosen' on the same pairs (ties 0.5); a reward model should beat it."
    )
    return "\n".join(lines)
