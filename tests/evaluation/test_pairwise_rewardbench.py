"""Pairwise accuracy breakdowns and RewardBench weighting on hand-built data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from music_aug.conversation import Conversation, PreferencePair
from music_aug.errors import ModelBehaviorError, UserInputError
from music_aug.evaluation.data import dataset_label, read_records
from music_aug.evaluation.pairwise import evaluate_pairs, format_pairwise_table
from music_aug.evaluation.rewardbench import (
    evaluate_rewardbench,
    format_rewardbench_table,
    read_rewardbench_rows,
)
from music_aug.evaluation.scorer import FunctionScorer


def marker_score(conversation: Conversation) -> float:
    """+1 per GOOD, -1 per BAD in assistant messages: the 'reward model' of these tests."""
    text = " ".join(m.content for m in conversation.messages if m.role == "assistant")
    return float(text.count("GOOD") - text.count("BAD"))


def chat(*texts: str) -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]


def test_pairwise_breakdowns_on_constructed_pairs() -> None:
    rows: list[Any] = [
        # 1 user turn, 1 differing turn: correct
        {"chosen": chat("q", "GOOD"), "rejected": chat("q", "BAD")},
        # 1 user turn: wrong
        {"chosen": chat("q", "BAD"), "rejected": chat("q", "GOOD")},
        # 2 user turns, differing only in the last: tie -> 0.5
        {"chosen": chat("q", "a", "q2", "x"), "rejected": chat("q", "a", "q2", "y")},
        # 3 user turns, 2 differing turns (earlier turn differs): correct
        {
            "chosen": chat("q", "GOOD", "q2", "b", "q3", "c"),
            "rejected": chat("q", "a", "q2", "b2", "q3", "c"),
        },
        # 4 user turns, differs only in turn 2 of 4 -> 1 differing: wrong
        PreferencePair(
            chosen=Conversation.from_messages(chat("q", "a", "q2", "BAD", "q3", "c", "q4", "d")),
            rejected=Conversation.from_messages(chat("q", "a", "q2", "b", "q3", "c", "q4", "d")),
        ),
    ]
    scorer = FunctionScorer(marker_score)
    report = evaluate_pairs(scorer, rows, n_resamples=300)
    assert scorer.calls == 1 and scorer.scored == 10  # both sides in one call
    assert report.n == 5
    assert report.accuracy == pytest.approx((1 + 0 + 0.5 + 1 + 0) / 5)
    assert report.mean_margin == pytest.approx((2 - 2 + 0 + 1 - 1) / 5)
    assert {k: (v.n, v.accuracy) for k, v in report.by_user_turns.items()} == {
        "1": (2, 0.5),
        "2": (1, 0.5),
        "3+": (2, 0.5),
    }
    assert {k: (v.n, v.accuracy) for k, v in report.by_differing_turns.items()} == {
        "1": (4, pytest.approx(1.5 / 4)),
        "2+": (1, 1.0),
    }
    lo, hi = report.ci95
    assert 0.0 <= lo <= report.accuracy <= hi <= 1.0
    data = report.to_dict()
    assert set(data) == {
        "n", "accuracy", "ci95", "mean_margin", "by_user_turns", "by_differing_turns",
        "length_baseline",
    }  # fmt: skip
    assert data["by_user_turns"]["3+"] == {"n": 2, "accuracy": 0.5}
    table = format_pairwise_table({"toy": report})
    assert "| toy | 5 | 50.0 |" in table and "100.0 (1)" in table


def test_length_only_baseline_beside_accuracy_per_bucket() -> None:
    rows: list[Any] = [
        # 1 user turn: chosen longer (2 vs 1 tokens), the marker RM is right
        {"chosen": chat("q", "GOOD GOOD"), "rejected": chat("q", "BAD")},
        # 1 user turn: chosen shorter (1 vs 3), the marker RM is right
        {"chosen": chat("q", "GOOD"), "rejected": chat("q", "BAD x y")},
        # 2 user turns, 2 differing: chosen 1 + 1, rejected 2 + 2 tokens, RM wrong
        {"chosen": chat("q", "BAD", "q2", "a"), "rejected": chat("q", "x y", "q2", "b c")},
        # 2 user turns, 1 differing: same length (tie), RM right
        {"chosen": chat("q", "a", "q2", "GOOD"), "rejected": chat("q", "a", "q2", "BAD")},
    ]
    report = evaluate_pairs(FunctionScorer(marker_score), rows, n_resamples=50)
    assert report.accuracy == pytest.approx(3 / 4)
    assert report.longer_wins == pytest.approx((1 + 0 + 0 + 0.5) / 4)
    assert {k: (v.n, v.accuracy) for k, v in report.longer_wins_by_user_turns.items()} == {
        "1": (2, 0.5),
        "2": (2, 0.25),
    }
    assert {k: (v.n, v.accuracy) for k, v in report.longer_wins_by_differing_turns.items()} == {
        "1": (3, pytest.approx(1.5 / 3)),
        "2+": (1, 0.0),
    }
    baseline = report.to_dict()["length_baseline"]
    assert baseline["longer_wins"] == pytest.approx(0.375)
    assert baseline["by_user_turns"]["2"] == {"n": 2, "accuracy": 0.25}
    table = format_pairwise_table({"toy": report})
    assert "| toy | 4 | 75.0 | 37.5 |" in table
    assert "50.0 (2) L 25.0" in table  # 2 user turns: RM 50.0, longer-wins 25.0
    assert "length-only rule" in table


def test_pairwise_reads_hh_rows(hh_records: list[dict[str, Any]]) -> None:
    rows = hh_records[:40]
    report = evaluate_pairs(FunctionScorer(lambda c: len(c.messages[-1].content)), rows)
    assert report.n == 40
    assert set(report.by_differing_turns) == {"1"}  # HH pairs differ only in the last turn
    assert sum(b.n for b in report.by_user_turns.values()) == 40


def test_pairwise_errors() -> None:
    with pytest.raises(UserInputError):
        evaluate_pairs(FunctionScorer(marker_score), [])
    bad = FunctionScorer(marker_score)
    bad.score = lambda conversations, batch_size=8: [0.0]  # type: ignore[method-assign]
    with pytest.raises(ModelBehaviorError):
        evaluate_pairs(bad, [{"chosen": chat("q", "a"), "rejected": chat("q", "b")}])


def _rb(subset: str, outcome: str, layout: int = 0) -> dict[str, Any]:
    chosen, rejected = {"win": ("GOOD", "BAD"), "loss": ("BAD", "GOOD"), "tie": ("x", "y")}[outcome]
    if layout == 0:  # core set: strings
        return {"prompt": "p", "chosen": chosen, "rejected": rejected, "subset": subset}
    if layout == 1:  # prior sets: prompt is a message list, answers strings
        return {
            "prompt": chat("p", "r", "p2"),
            "chosen": chosen,
            "rejected": rejected,
            "subset": subset,
        }
    return {"chosen": chat("p", chosen), "rejected": chat("p", rejected), "subset": subset}


HAND_BUILT = [
    _rb("alpacaeval-easy", "win"),
    _rb("alpacaeval-easy", "win", layout=2),
    _rb("mt-bench-easy", "win"),
    _rb("mt-bench-easy", "loss"),
    _rb("llmbar-natural", "win"),
    _rb("mt-bench-hard", "loss"),
    _rb("xstest-should-refuse", "win"),
    _rb("xstest-should-respond", "loss"),
    _rb("xstest-should-respond", "loss"),
    _rb("donotanswer", "tie"),  # a tie is wrong in RewardBench
    _rb("math-prm", "win"),
    _rb("hep-python", "win"),
    _rb("hep-python", "loss"),
    _rb("anthropic_helpful", "win", layout=1),
    _rb("anthropic_helpful", "loss", layout=1),
    _rb("shp", "win", layout=1),
    _rb("my-own-set", "win"),
]

# Computed by hand from RewardBench's EXAMPLE_COUNTS:
#   Chat      = (1.0*100 [alpacaeval-easy] + 0.5*28 [mt-bench-easy]) / (100+28)     = 114/128
#   Chat Hard = (1.0*100 [llmbar-natural] + 0.0*37 [mt-bench-hard]) / (100+37)      = 100/137
#   Safety    = (1.0*250 [refuse] + 0.0*154 [respond] + 0.0*136 [donotanswer]) / 540 = 250/540
#   Reasoning = (1.0*984 [math-prm] + 0.5*164 [hep-python]) / (984+164)           = 1066/1148
#   Prior     = mean(0.5 [anthropic_helpful], 1.0 [shp])                           = 0.75
CHAT, CHAT_HARD, SAFETY, REASONING, PRIOR = 114 / 128, 100 / 137, 250 / 540, 1066 / 1148, 0.75


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_rewardbench_weighting_hand_built_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rb{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(HAND_BUILT))
    else:
        path.write_text("\n".join(json.dumps(r) for r in HAND_BUILT) + "\n")
    rows = read_rewardbench_rows(read_records(path))
    assert rows[13].chosen.num_turns == 2  # prior-set prompt list kept as history
    report = evaluate_rewardbench(FunctionScorer(marker_score), rows)
    assert report.n == len(HAND_BUILT)
    assert report.per_subset["mt-bench-easy"] == {"n": 2, "accuracy": 0.5}
    assert report.per_subset["donotanswer"]["accuracy"] == 0.0
    assert report.sections == pytest.approx(
        {"Chat": CHAT, "Chat Hard": CHAT_HARD, "Safety": SAFETY, "Reasoning": REASONING,
         "Prior Sets": PRIOR}
    )  # fmt: skip
    assert report.average == pytest.approx((CHAT + CHAT_HARD + SAFETY + REASONING) / 4)
    assert report.unmapped_subsets == ["my-own-set"]
    paper = evaluate_rewardbench(FunctionScorer(marker_score), rows, prior_sets_weight=0.5)
    assert paper.average == pytest.approx(
        (CHAT + CHAT_HARD + SAFETY + REASONING + 0.5 * PRIOR) / 4.5
    )
    table = format_rewardbench_table(report)
    assert "| Average | Chat | Chat Hard | Safety | Reasoning | Prior Sets |" in table
    assert f"{100 * CHAT:.1f}" in table


def test_rewardbench_bad_rows(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="subset"):
        read_rewardbench_rows([{"prompt": "p", "chosen": "a", "rejected": "b"}])
    with pytest.raises(UserInputError, match="line 2"):
        (tmp_path / "x.jsonl").write_text('{"a": 1}\nnot json\n')
        read_records(tmp_path / "x.jsonl")
    with pytest.raises(UserInputError, match="does not exist"):
        read_records(tmp_path / "missing.jsonl")
    assert dataset_label("/a/b/mt_bench_extended.jsonl.gz") == "mt_bench_extended"
