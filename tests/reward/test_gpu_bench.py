"""benchmarks/gpu/bench_gemma2.py runs end to end on the CPU (``--tiny``), both trainers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu" / "bench_gemma2.py"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_gemma2", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_flops_follow_the_stated_formula() -> None:
    bench = _bench()
    meter = bench.Meter(params=1000, layers=2, attn_width=64)
    meter.add([10, 3])
    expected = sum(6 * 1000 * s + 12 * 2 * 64 * s * s for s in (10, 3))
    assert meter.tokens == 13
    assert meter.flops == expected
    # a shared prefix of 2 (pair 10 / 3): the rejected side computes 1 token over 3 keys
    shared = bench.Meter(params=1000, layers=2, attn_width=64)
    shared.add([10, 3], [2])
    assert shared.tokens == 13 and shared.computed == 11
    assert shared.flops == 6 * 1000 * 10 + 12 * 2 * 64 * 100 + 6 * 1000 * 1 + 12 * 2 * 64 * 1 * 3


def test_matmul_params_leave_out_the_embedding_table() -> None:
    bench = _bench()
    args = bench.parse_args(["--tiny"])
    device, dtype = bench.device_and_dtype(args)
    model = bench.build_model(args, device, dtype)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    assert bench.matmul_params(model) == total - embedding
    assert model.config.num_hidden_layers == 2 and model.config.attn_logit_softcapping == 50.0


@pytest.mark.slow
def test_tiny_run_trains_both_sides_and_checks_rewards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("trl")
    bench = _bench()
    code = bench.main(["--tiny", "--no-group", "--profile", "1", "--output-dir", str(tmp_path)])
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines() if line.startswith('{"')]
    for side in ("ours segmented_varlen", "trl "):  # --profile: one top-ops table per side
        assert f"profile: {side}" in captured.err
    assert "aten::mm" in captured.err
    check = next(line for line in lines if line.get("check"))
    assert check["ok"] and check["max_abs_diff"] <= check["tolerance"] and code == 0
    sides = {line["side"]: line for line in lines if "side" in line}
    assert set(sides) == {"ours", "trl"}
    assert sides["ours"]["attn"] == "segmented_varlen"  # our CPU default
    for result in sides.values():
        assert result["steps_timed"] == 3 and result["real_tokens"] > 0
        assert result["real_tokens_per_s"] > 0 and 0 < result["mfu"] < 1
        assert len(result["losses"]) == 4 and all(loss > 0 for loss in result["losses"])
        assert result["weights"] == result["dtype"] == "float32"
    assert sides["ours"]["frozen_update_fraction"] is None  # float32 weights: nothing vanishes
    # identical batches (--no-group): the same real tokens and the same loss curve
    assert sides["ours"]["real_tokens"] == sides["trl"]["real_tokens"]
    assert sides["ours"]["losses"] == pytest.approx(sides["trl"]["losses"], abs=2e-4)
    summary = lines[-1]
    assert summary["summary"] and summary["check_ok"] and summary["ours_vs_trl_tokens_per_s"] > 0
    assert summary["failed"] == [] and summary["transformers"] and summary["trl"]


@pytest.mark.slow
def test_a_run_that_fails_is_reported_and_the_others_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An attention that cannot run: its check and its training run become error lines,
    the next runs still happen and print, the exit code is 1."""
    pytest.importorskip("trl")
    bench = _bench()
    argv = ["--tiny", "--attn", "no_such_attention,auto", "--steps", "2", "--warmup", "1"]
    code = bench.main([*argv, "--output-dir", str(tmp_path)])
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"')
    ]
    checks = {line["packed_attn"]: line for line in lines if line.get("check")}
    assert not checks["no_such_attention"]["ok"] and checks["no_such_attention"]["error"]
    assert checks["segmented_varlen"]["ok"]
    runs = {(line["side"], line["attn"]): line for line in lines if "side" in line}
    assert "no_such_attention" in runs[("ours", "no_such_attention")]["error"]
    assert runs[("ours", "segmented_varlen")]["real_tokens"] > 0
    assert next(line for side, line in runs.items() if side[0] == "trl")["real_tokens"] > 0
    summary = lines[-1]
    assert summary["failed"] == ["ours:no_such_attention"] and not summary["check_ok"]
    assert code == 1
