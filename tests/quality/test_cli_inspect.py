"""`music-aug inspect` end to end: text, --json, --plot, --summary and bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from music_aug.cli import main


def _chat(*texts: str) -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]


ROWS = [
    {"chosen": _chat("q", "one two three"), "rejected": _chat("q", "one")},  # +2
    {"chosen": _chat("q", "a b", "q2", "c d e f"), "rejected": _chat("q", "a b c d", "q2", "x")},
    {"chosen": _chat("q", "yes."), "rejected": _chat("q", "no!")},  # 0
    {"chosen": _chat("hi", "ok"), "rejected": _chat("hi", "that is fine, thanks")},  # -4
]


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_inspect_text_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = _write(tmp_path / "toy.jsonl", ROWS)
    plot = tmp_path / "plots" / "toy.png"
    assert main(["inspect", str(pairs), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "== toy ==" in text
    assert "rows 4: 4 pairs, 0 failed rows" in text
    assert "longer wins 62.5%, shorter wins 37.5% (ties count 0.5)" in text
    assert "truncation: unknown" in text
    assert "differing turns per pair: 1: 3, 2: 1" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 1000

    assert main(["inspect", str(pairs), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["pairs"] == 4
    assert document["answers"]["longer_wins"] == pytest.approx(0.625)
    assert [p["length_diff"] for p in document["per_pair"]] == [2, 1, 0, -4]
    assert document["truncation"]["status"] == "unknown"


def test_inspect_summary_and_gzip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "toy.jsonl.gz"
    with gzip.open(pairs, "wt", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in ROWS))
    summary = tmp_path / "summary.json"
    record = {"invalid_perturbations": {"identical": 2}, "perturbation_valid": 4,
              "perturbation_attempts": 6}  # fmt: skip
    summary.write_text(json.dumps(record))
    assert main(["inspect", str(pairs), "--summary", str(summary)]) == 0
    assert "refused contrast instructions (run summary): identical=2; valid 4/6" in (
        capsys.readouterr().out
    )


def test_inspect_bad_input_names_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _write(tmp_path / "bad.jsonl", [*ROWS[:2], {"chosen": _chat("q", "a"), "answer": "b"}])
    assert main(["inspect", str(bad)]) == 2
    error = capsys.readouterr().err
    assert "row 2" in error and "Pass format=" in error
    doubled = {"chosen": [*_chat("q", "a"), {"role": "assistant", "content": "b"}],
               "rejected": _chat("q", "c")}  # fmt: skip
    repairable = _write(tmp_path / "repairable.jsonl", [ROWS[0], doubled])
    assert main(["inspect", str(repairable)]) == 2
    error = capsys.readouterr().err
    assert "row 1, message 2" in error and "pass --repair" in error
    assert main(["inspect", str(repairable), "--repair"]) == 0
    assert "rows 2: 2 pairs" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    pairs = _write(tmp_path / "ok.jsonl", ROWS)
    assert main(["inspect", str(pairs), "--summary", str(tmp_path / "nope.json")]) == 2
    assert "--summary-json" in capsys.readouterr().err


def test_inspect_a_music_augment_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real writer: `music-aug augment` with the fake backend, then `inspect --json`."""
    source = _write(
        tmp_path / "conversations.jsonl",
        [{"messages": _chat("Name a fruit.", "Apple.", "Why is it red?", "Pigments.")},
         {"messages": _chat("Say hi.", "Hi!", "Now in French.", "Salut !")}],
    )  # fmt: skip
    out, summary = tmp_path / "pairs.jsonl", tmp_path / "summary.json"
    status = main(["augment", str(source), "-o", str(out), "--backend", "fake", "--max-turns",
                   "2", "--branch", "first", "--summary-json", str(summary)])  # fmt: skip
    assert status == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json", "--summary", str(summary)]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ok = [r for r in rows if r["music_metadata"]["status"] == "ok"]
    assert document["rows"] == len(rows) and document["pairs"] == len(ok)
    assert document["branch_turns"] == {"0": len(ok)}
    assert document["similarity"]["instructions"] == sum(
        len(r["music_metadata"]["contrast_turns"]) for r in ok
    )
    assert (
        document["refusals"]["invalid_by_reason"]
        == json.loads(summary.read_text())["invalid_perturbations"]
    )


def test_inspect_with_a_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--tokenizer DIR counts with a saved Hugging Face tokenizer (here: one byte per token)."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend)
    tokenizer.save_pretrained(tmp_path / "bytes")
    pairs = _write(tmp_path / "toy.jsonl", ROWS)
    assert main(["inspect", str(pairs), "--json", "--tokenizer", str(tmp_path / "bytes")]) == 0
    document = json.loads(capsys.readouterr().out)
    # bytes: "one two three" 13 - "one" 3; "a b" 3 - "a b c d" 7 + "c d e f" 7 - "x" 1; ...
    assert [p["length_diff"] for p in document["per_pair"]] == [10, 2, 1, -18]
    assert document["token_count"] == f"tokenizer {tmp_path / 'bytes'}"
