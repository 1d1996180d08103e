"""`music-aug eval pairs|rewardbench|bon` end to end with a tiny saved reward model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from music_aug.cli import main

pytest.importorskip("torch")


def _chat(*texts: str) -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]


def test_eval_pairs_cli(
    tiny_reward_model_dir: Path,
    tmp_path: Path,
    hh_records: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hh = tmp_path / "hh_slice.jsonl"
    hh.write_text("".join(json.dumps(r) + "\n" for r in hh_records[:12]))
    multi = tmp_path / "multi.json"
    multi.write_text(
        json.dumps(
            [
                {"chosen": _chat("q", "a", "q2", "b"), "rejected": _chat("q", "x", "q2", "y")},
                {"chosen": _chat("q", "a"), "rejected": _chat("q", "b")},
                {
                    "chosen": _chat("q", "a", "q2", "b", "q3", "c"),
                    "rejected": _chat("q", "a", "q2", "b", "q3", "d"),
                },
            ]
        )
    )
    report = tmp_path / "out" / "report.json"
    status = main(
        ["eval", "pairs", "--model", str(tiny_reward_model_dir), "--data", str(hh),
         "--data", str(multi), "-o", str(report), "--device", "cpu"]
    )  # fmt: skip
    assert status == 0
    document = json.loads(report.read_text())
    assert set(document["datasets"]) == {"hh_slice", "multi"}
    entry = document["datasets"]["multi"]
    assert entry["n"] == 3 and 0.0 <= entry["accuracy"] <= 1.0
    assert entry["by_user_turns"]["2"]["n"] == 1 and entry["by_user_turns"]["3+"]["n"] == 1
    assert entry["by_differing_turns"] == {
        "1": entry["by_differing_turns"]["1"],
        "2+": {"n": 1, "accuracy": entry["by_differing_turns"]["2+"]["accuracy"]},
    }
    assert len(entry["ci95"]) == 2 and isinstance(entry["mean_margin"], float)
    assert document["datasets"]["hh_slice"]["n"] == 12
    printed = capsys.readouterr().out
    assert "| hh_slice | 12 |" in printed and "| multi | 3 |" in printed
    # the length-only baseline beside the accuracy: multi's answers are all 1 token -> ties
    assert entry["length_baseline"]["longer_wins"] == 0.5
    assert entry["length_baseline"]["by_differing_turns"]["2+"] == {"n": 1, "accuracy": 0.5}
    assert "longer wins" in printed and " L 50.0" in printed


def test_eval_rewardbench_cli(tiny_reward_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "rb.jsonl"
    rows = [
        {"prompt": "Say hi", "chosen": "Hi!", "rejected": "No.", "subset": "alpacaeval-easy"},
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "subset": "math-prm"},
        {"prompt": "Hurt?", "chosen": "I can't.", "rejected": "Sure.", "subset": "donotanswer"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "rb.json"
    assert main(["eval", "rewardbench", "--model", str(tiny_reward_model_dir), "--data",
                 str(data), "-o", str(report), "--device", "cpu"]) == 0  # fmt: skip
    document = json.loads(report.read_text())
    assert set(document["sections"]) == {"Chat", "Safety", "Reasoning"}
    assert document["average"] == pytest.approx(sum(document["sections"].values()) / 3)
    assert main(["eval", "rewardbench", "--model", str(tiny_reward_model_dir), "--data",
                 str(tmp_path / "missing.jsonl"), "-o", str(report)]) == 2  # fmt: skip


def test_eval_bon_cli_with_fake_backends(
    tiny_reward_model_dir: Path, tmp_path: Path, mt_bench_records: list[dict[str, Any]]
) -> None:
    pytest.importorskip("music_aug.simulate")
    prompts = tmp_path / "mt.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in mt_bench_records[:3]))
    out = tmp_path / "bon"
    status = main(
        ["eval", "bon", "--policy-backend", "fake", "--prompts", str(prompts),
         "--selectors", f"greedy,tiny={tiny_reward_model_dir}", "--n", "1,2", "--turns", "2",
         "--device", "cpu", "-o", str(out)]
    )  # fmt: skip
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    assert [(c["comparison"], c["n"]) for c in results["cells"]] == [
        ("tiny vs greedy", 1), ("tiny vs greedy", 2)
    ]  # fmt: skip
    assert all(c["judged"] == 3 for c in results["cells"])
    assert (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    judgments = (out / "judgments.jsonl").read_text().splitlines()
    assert len(judgments) == 6 and len(json.loads(judgments[0])["outputs"]) == 2
    conversations = [
        json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()
    ]
    assert len(conversations) == 3 * 3  # greedy once, tiny at N=1 and N=2
    assert (out / "cache.sqlite").exists()


def test_eval_pairs_cli_repair_flag(
    tiny_reward_model_dir: Path,
    tmp_path: Path,
    hh_records: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Real HH rows 86 and 516 have an empty assistant message: strict fails, --repair reads."""
    data = tmp_path / "needs_repair.jsonl"
    data.write_text("".join(json.dumps(hh_records[i]) + "\n" for i in (0, 86, 516, 1)))
    base = ["eval", "pairs", "--model", str(tiny_reward_model_dir), "--data", str(data)]
    report = tmp_path / "report.json"
    assert main([*base, "-o", str(report), "--device", "cpu"]) == 2
    assert "row 1" in capsys.readouterr().err and not report.exists()
    assert main([*base, "-o", str(report), "--device", "cpu", "--repair"]) == 0
    assert json.loads(report.read_text())["datasets"]["needs_repair"]["n"] == 4
