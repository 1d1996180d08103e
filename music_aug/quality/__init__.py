"""Pair quality report: what a set of preference pairs teaches a reward model (issue 13).

``inspect_pairs(rows)`` measures length differences, the length-only baseline, truncation,
contrast-instruction similarity, turn structure and duplicates; ``format_report`` and
``plot_report`` show the result. ``music-aug inspect`` is the command line for it.
"""

from music_aug.quality.aggregate import NEAR_COPY
from music_aug.quality.measure import (
    TokenCounter,
    TokenizerCounter,
    answer_length_diff,
    count_tokens,
    inspect_pairs,
    length_outcome,
)
from music_aug.quality.models import (
    InstructionSimilarity,
    LengthStats,
    PairQuality,
    QualityReport,
    RefusalStats,
    SideTruncation,
    TruncationStats,
    TurnLength,
)
from music_aug.quality.render import format_report, plot_report

__all__ = [  # noqa: RUF022 - grouped by topic
    # measuring
    "NEAR_COPY",
    "TokenCounter",
    "TokenizerCounter",
    "answer_length_diff",
    "count_tokens",
    "inspect_pairs",
    "length_outcome",
    # the report
    "InstructionSimilarity",
    "LengthStats",
    "PairQuality",
    "QualityReport",
    "RefusalStats",
    "SideTruncation",
    "TruncationStats",
    "TurnLength",
    # showing it
    "format_report",
    "plot_report",
]
