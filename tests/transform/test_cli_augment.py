"""`music-aug augment` and `music-aug show` with the fake backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from music_aug.cli import main
from music_aug.cli.augment import format_pair, read_rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_augment_jsonl_and_show(
    tmp_path: Path, mt_bench_records: Any, hh_records: Any, capsys: Any
) -> None:
    source = _write_jsonl(tmp_path / "in.jsonl", mt_bench_records[:3] + hh_records[:3])
    out = tmp_path / "out" / "pairs.jsonl"
    summary = tmp_path / "summary.json"
    status = main([
        "augment", str(source), "-o", str(out), "--backend", "fake", "--max-turns", "3",
        "--contrast-turns", "2", "--branch", "first", "--user-turns", "replay", "--seed", "4",
        "--limit", "5", "--batch-size", "2", "--summary-json", str(summary),
    ])  # fmt: skip
    assert status == 0
    rows = read_rows(str(out))
    assert len(rows) == 5
    assert all(r["music_metadata"]["contrast_turns"] == [0, 1] for r in rows)
    assert all(r["music_metadata"]["user_turns"] == "replay" for r in rows)
    printed = capsys.readouterr().out
    assert "rows in:            5" in printed and "perturbation valid: 10/10" in printed
    assert json.loads(summary.read_text())["pairs_out"] == 5

    assert main(["show", str(out), "--row", "1"]) == 0
    shown = capsys.readouterr().out
    assert "=== turn 0 (branch) *** CONTRAST" in shown and "=== turn 1 *** CONTRAST" in shown
    assert rows[1]["music_metadata"]["contrast_instructions"][0][:40] in shown
    assert "ASSISTANT (rejected)" in shown


def test_shards_partition_the_input(tmp_path: Path, mt_bench_records: Any) -> None:
    source = _write_jsonl(tmp_path / "in.jsonl", mt_bench_records[:7])
    ids = []
    for index in range(3):
        out = tmp_path / f"part{index}.parquet"
        args = ["augment", str(source), "-o", str(out), "--backend", "fake", "--max-turns", "2"]
        assert main([*args, "--shard", f"{index}/3"]) == 0
        ids += [r["music_metadata"]["source_id"] for r in read_rows(str(out))]
    assert sorted(ids) == sorted(r["id"] for r in mt_bench_records[:7])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "3/3"], "0 <= I < N"),
        (["--contrast-turns", "0"], "contrast_turns"),
        (["--branch", "middle"], "branch"),
    ],
)
def test_bad_options_exit_2_with_message(
    tmp_path: Path, capsys: Any, extra: list[str], message: str
) -> None:
    source = _write_jsonl(
        tmp_path / "in.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}]
    )
    args = ["augment", str(source), "-o", str(tmp_path / "o.jsonl"), "--backend", "fake"]
    assert main([*args, *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_input_and_bad_row(tmp_path: Path, capsys: Any) -> None:
    assert main(["augment", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    source = _write_jsonl(tmp_path / "in.jsonl", [{"foo": 1}])
    args = ["augment", str(source), "-o", str(tmp_path / "o.jsonl"), "--backend", "fake"]
    assert main([*args, "--on-error", "raise"]) == 2
    assert "row 0" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "o.jsonl"), "--row", "5"]) == 2


def test_format_pair_of_failed_row() -> None:
    row = {
        "chosen": [{"role": "user", "content": "hi"}],
        "rejected": [],
        "music_metadata": {
            "status": "failed",
            "error": "backend_error: boom",
            "contrast_turns": [],
        },
    }
    text = format_pair(row)
    assert "error: backend_error: boom" in text and "USER (both)" in text


def test_openai_flags_reach_the_backend() -> None:
    import argparse

    from music_aug.backends.registry import create_backend
    from music_aug.cli.augment import _backend_options

    args = argparse.Namespace(
        api_key_env="MY_KEY", timeout=7.5, max_retries=2, rpm=30.0, tpm=None,
        token_param="max_completion_tokens", server_ignores_seed=True,
    )  # fmt: skip
    backend: Any = create_backend(
        "openai", model="m", base_url="http://127.0.0.1:9/v1", **_backend_options(args)
    )
    assert (backend.api_key_env, backend.timeout, backend.max_retries, backend.rpm) == (
        "MY_KEY",
        7.5,
        2,
        30.0,
    )
    assert (backend.token_param, backend.honours_seed) == ("max_completion_tokens", False)
    assert backend.tpm is None  # type: ignore[attr-defined]


def test_backend_flag_the_backend_lacks_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"messages": [{"role": "user", "content": "Hi"}]}\n')
    out = tmp_path / "out.jsonl"
    status = main(["augment", str(source), "-o", str(out), "--backend", "fake", "--rpm", "5"])
    assert status == 2
    assert not out.exists()


def test_quality_controls_from_the_command_line(
    tmp_path: Path, mt_bench_records: Any, capsys: Any
) -> None:
    source = _write_jsonl(tmp_path / "in.jsonl", mt_bench_records[:4])
    out = tmp_path / "pairs.jsonl"
    status = main(
        [
            "augment",
            str(source),
            "-o",
            str(out),
            "--backend",
            "fake",
            "--max-turns",
            "2",
            "--verify",
            "mark",
            "--verify-turns",
            "last",
            "--length-ratio",
            "3",
        ]
    )
    assert status == 0
    rows = read_rows(str(out))
    # the echo backend is no judge: its "verdicts" parse to nothing, so nothing is confirmed
    assert [r["music_metadata"]["status"] for r in rows] == ["unverified"] * 4
    assert all(len(r["music_metadata"]["verification"]["turns"]) == 1 for r in rows)
    assert "judge verification: 0 confirmed, 4 not confirmed" in capsys.readouterr().out
