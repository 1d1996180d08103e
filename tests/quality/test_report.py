"""``inspect_pairs``: the report's arithmetic on hand-made pairs, worked out by hand."""

from __future__ import annotations

import math
from typing import Any

import pytest

from music_aug.conversation import PreferencePair
from music_aug.errors import InvalidConversationError, UserInputError
from music_aug.quality import answer_length_diff, count_tokens, inspect_pairs, length_outcome


def chat(*texts: str) -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]


# Four TRL pairs without metadata; regex tokens in the comments.
TRL_ROWS: list[dict[str, Any]] = [
    # A: 3 vs 1 tokens -> d = +2
    {"chosen": chat("q", "one two three"), "rejected": chat("q", "one")},
    # B: two differing turns, 2 vs 4 (-2) and 4 vs 1 (+3) -> d = +1
    {"chosen": chat("q", "a b", "q2", "c d e f"), "rejected": chat("q", "a b c d", "q2", "x")},
    # C: "yes." vs "no!" are 2 tokens each -> d = 0
    {"chosen": chat("q", "yes."), "rejected": chat("q", "no!")},
    # D: "ok" (1) vs "that is fine, thanks" (5) -> d = -4
    {"chosen": chat("hi", "ok"), "rejected": chat("hi", "that is fine, thanks")},
]


def test_count_tokens_is_words_and_punctuation() -> None:
    assert count_tokens("Don't stop!") == 5  # Don ' t stop !
    assert count_tokens("") == 0
    assert count_tokens("that is fine, thanks") == 5


def test_length_arithmetic_on_trl_pairs_without_metadata() -> None:
    report = inspect_pairs(TRL_ROWS)
    assert (report.rows, report.pairs, report.failed_rows) == (4, 4, 0)
    assert [p.length_diff for p in report.per_pair] == [2, 1, 0, -4]
    assert [(t.turn, t.chosen, t.rejected, t.diff) for t in report.per_pair[1].turn_lengths] == [
        (0, 2, 4, -2),
        (1, 4, 1, 3),
    ]
    answers = report.answers
    assert answers is not None
    assert answers.mean_diff == pytest.approx(-0.25)
    assert answers.median_diff == pytest.approx(0.5)
    assert answers.mean_chosen == pytest.approx(12 / 4)  # 3 + 6 + 2 + 1
    assert answers.mean_rejected == pytest.approx(13 / 4)  # 1 + 5 + 2 + 5
    assert (answers.chosen_longer, answers.rejected_longer, answers.ties) == pytest.approx(
        (0.5, 0.25, 0.25)
    )
    # mean(d) / sqrt(mean(d^2)) = -0.25 / sqrt((4 + 1 + 0 + 16) / 4)
    assert answers.correlation == pytest.approx(-0.25 / math.sqrt(21 / 4))
    assert answers.longer_wins == pytest.approx(0.5 + 0.25 / 2)  # ties count 0.5
    assert answers.shorter_wins == pytest.approx(0.25 + 0.25 / 2)
    # the user messages are shared, so whole conversations differ by the same amounts
    assert [p.conversation_diff for p in report.per_pair] == [2, 1, 0, -4]
    assert report.conversations is not None
    assert report.conversations.mean_chosen == pytest.approx((4 + 8 + 3 + 2) / 4)
    assert report.differing_turns == {1: 3, 2: 1}
    assert report.branch_turns == {0: 4}
    assert report.user_turns == {1: 3, 2: 1}
    assert report.truncation.status == "unknown" and report.truncation.chosen is None
    assert report.similarity is None and report.refusals is None
    # B and C repeat the shared prefix ("q") of A: two rows from an already seen source
    assert (report.duplicate_pairs, report.duplicate_sources) == (0, 2)
    assert report.token_count == "regex"


def test_length_outcome_and_diff_on_pair_objects() -> None:
    pairs = [PreferencePair.from_record(row) for row in TRL_ROWS]
    assert [answer_length_diff(p) for p in pairs] == [2, 1, 0, -4]
    assert [length_outcome(p) for p in pairs] == [1.0, 1.0, 0.5, 0.0]
    # by characters "yes." (4) beats "no!" (3)
    assert [length_outcome(p, counter=len) for p in pairs] == [1.0, 1.0, 1.0, 0.0]
    assert inspect_pairs(pairs).answers == inspect_pairs(TRL_ROWS).answers


def _music_row(
    source: str, answer_c: str, answer_r: str, reasons: dict[str, list[str]] | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "source_id": source,
        "branch_turn": 1,
        "contrast_turns": [1],
        "original_instructions": ["Why red?"],
        "contrast_instructions": ["Why is it green?"],
        "status": "ok",
        "error": None,
    }
    if reasons is not None:
        metadata["answer_finish_reasons"] = reasons
    return {
        "chosen": chat("Name a fruit", "Apple", "Why red?", answer_c),
        "rejected": chat("Name a fruit", "Apple", "Why red?", answer_r),
        "music_metadata": metadata,
    }


MUSIC_ROWS: list[dict[str, Any]] = [
    _music_row("s1", "Pigments in the skin.", "It is unripe.", {"chosen": ["length"],
                                                                "rejected": ["stop"]}),
    _music_row("s1", "Pigments in the skin.", "It is unripe.", {"chosen": ["length"],
                                                                "rejected": ["stop"]}),
    _music_row("s2", "Anthocyanins", "Chlorophyll, mostly", None),
    {
        "chosen": chat("Name a fruit", "Apple"),
        "rejected": [],
        "music_metadata": {"source_id": "s3", "status": "failed",
                           "error": "perturbation_invalid: no valid contrast in 3 tries"},
    },
]  # fmt: skip


def test_music_metadata_truncation_similarity_duplicates_and_failures() -> None:
    summary = {
        "invalid_perturbations": {"refusal": 1, "identical": 3},
        "perturbation_valid": 5,
        "perturbation_attempts": 9,
    }
    report = inspect_pairs(MUSIC_ROWS, summary=summary)
    assert (report.rows, report.pairs, report.failed_rows) == (4, 3, 1)
    assert report.failures_by_reason == {"perturbation_invalid": 1}
    # "Pigments in the skin." 5 vs "It is unripe." 4; "Anthocyanins" 1 vs "Chlorophyll, mostly" 3
    assert [p.length_diff for p in report.per_pair] == [1, 1, -2]
    assert report.branch_turns == {1: 3} and report.differing_turns == {1: 3}
    truncation = report.truncation
    assert truncation.status == "partial" and truncation.pairs_with_reasons == 2
    assert truncation.chosen is not None and truncation.rejected is not None
    assert (truncation.chosen.answers, truncation.chosen.truncated) == (2, 2)
    assert truncation.chosen.rate == 1.0 and truncation.chosen.pairs_truncated == 2
    assert (truncation.rejected.truncated, truncation.rejected.rate) == (0, 0.0)
    assert truncation.more_truncated_wins == 1.0  # both known pairs: chosen 1 vs rejected 0
    # {why, red, ?} vs {why, is, it, green, ?}: Jaccard 2/6
    similarity = report.per_pair[0].instruction_similarity[0]
    assert similarity.turn == 1
    assert similarity.jaccard == pytest.approx(1 / 3)
    assert report.similarity == pytest.approx(
        {"instructions": 3.0, "mean_jaccard": 1 / 3, "median_jaccard": 1 / 3,
         "near_copies": 0.0, "same_tokens": 0.0}
    )  # fmt: skip
    assert report.per_pair[1].duplicate_of == 0 and report.per_pair[2].duplicate_of is None
    assert (report.duplicate_pairs, report.duplicate_sources) == (1, 1)
    assert report.refusals is not None
    assert report.refusals.invalid_by_reason == {"identical": 3, "refusal": 1}
    assert (report.refusals.perturbation_valid, report.refusals.perturbation_attempts) == (5, 9)
    data = report.to_dict()
    assert data["differing_turns"] == {"1": 3} and len(data["per_pair"]) == 3


def test_every_pair_with_finish_reasons_is_known() -> None:
    tie = _music_row("s4", "a", "b", {"chosen": ["length"], "rejected": ["length"]})
    lost = _music_row("s5", "a", "c", {"chosen": ["stop", None], "rejected": ["length", "stop"]})
    report = inspect_pairs([*MUSIC_ROWS[:2], tie, lost])
    truncation = report.truncation
    assert truncation.status == "known" and truncation.pairs_with_reasons == 4
    assert truncation.chosen is not None and truncation.rejected is not None
    assert (truncation.chosen.answers, truncation.chosen.truncated) == (4, 3)  # None not counted
    assert (truncation.rejected.answers, truncation.rejected.truncated) == (5, 2)
    assert truncation.more_truncated_wins == pytest.approx((1 + 1 + 0.5 + 0) / 4)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"chosen": chat("q", "a"), "rejected": chat("q", "a", "q")[:1] * 2}, "row 1"),
        ({"chosen": chat("q", "a")}, "row 1"),
        (_music_row("s", "x", "y", {"chosen": "length"}), "row 1: music_metadata"),  # type: ignore[dict-item]
        ({**_music_row("s", "x", "y", None), "music_metadata": "ok"}, "row 1: music_metadata"),
        (
            {**_music_row("s", "x", "y", None), "music_metadata": {"contrast_turns": ["1"]}},
            "row 1: music_metadata.contrast_turns",
        ),
        (
            {**_music_row("s", "x", "y", None), "music_metadata": {"contrast_instructions": ["a"]}},
            "row 1: music_metadata contrast_turns",
        ),
    ],
)
def test_bad_rows_name_the_row(row: dict[str, Any], match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        inspect_pairs([TRL_ROWS[0], row])


def test_bad_summary_and_repair() -> None:
    with pytest.raises(UserInputError, match="--summary-json"):
        inspect_pairs(TRL_ROWS, summary={"rows_in": 3})
    doubled = {"chosen": [*chat("q", "a"), {"role": "assistant", "content": "b"}],
               "rejected": chat("q", "c")}  # fmt: skip
    with pytest.raises(InvalidConversationError, match="repair=True"):
        inspect_pairs([doubled])
    assert inspect_pairs([doubled], repair=True).per_pair[0].length_diff == 1  # "a b" vs "c"


def test_hh_rows_differ_in_the_last_turn_only(hh_records: list[dict[str, Any]]) -> None:
    report = inspect_pairs(hh_records[:50], repair=True)
    assert report.pairs == 50 and set(report.differing_turns) == {1}
    assert report.answers is not None
    assert report.answers.longer_wins + report.answers.shorter_wins == pytest.approx(1.0)
