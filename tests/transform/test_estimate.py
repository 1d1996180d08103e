"""The dry-run estimate (issue 15): its arithmetic on a hand-made row, and request counts
that match a real run of the fake backend exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from music_aug import MusicAugmenter, MusicConfig
from music_aug.backends.fake import EchoBackend
from music_aug.config import default_sampling
from music_aug.estimate import estimate_run
from music_aug.summary import Prices, RunSummary

ROW = {"messages": [
    {"role": "user", "content": "a" * 8}, {"role": "assistant", "content": "b" * 40},
    {"role": "user", "content": "c" * 16}, {"role": "assistant", "content": "d" * 80},
]}  # fmt: skip


def _templates(tmp_path: Path) -> dict[str, str]:
    contrast = tmp_path / "contrast.jinja"
    contrast.write_text('{% set kind = "completion" %}{{ instruction }}')
    user = tmp_path / "user.jinja"
    user.write_text('{% set kind = "completion" %}{{ history[-1].content }}')
    return {"contrast_template": str(contrast), "user_template": str(user)}


def test_arithmetic_on_a_hand_made_row(tmp_path: Path) -> None:
    config = MusicConfig(
        max_turns=3, branch="first", user_turns="replay", max_attempts=3,
        assistant_sampling=replace(default_sampling("assistant"), max_tokens=15),
        **_templates(tmp_path),
    )  # fmt: skip
    estimate = estimate_run([ROW, {"foo": 1}], config, backend_kind="openai", validity=0.5)
    assert (estimate.rows, estimate.unreadable_rows, estimate.pairs) == (2, 1, 1)
    roles = estimate.roles
    # 3 contrast turns x (1 + 0.5 + 0.25) attempts; prompt = completion = |u_t| / 4 each
    assert roles["contrast"].requests == pytest.approx(5.25)
    assert roles["contrast"].prompt_tokens == pytest.approx(1.75 * (2 + 4 + 3))
    assert roles["contrast"].completion_tokens == pytest.approx(1.75 * (2 + 4 + 3))
    # answers on both sides: chat prompts (chars / 4 + 4 per message), 10, 15, 15 tokens
    assert roles["assistant"].requests == 6
    assert roles["assistant"].prompt_tokens == pytest.approx(2 * (6 + 28 + 54))
    assert roles["assistant"].completion_tokens == pytest.approx(2 * (10 + 15 + 15))
    # u_1 is replayed; u_2 is simulated on both sides (prompt = the 60-char answer)
    assert roles["user"].requests == 2
    assert roles["user"].prompt_tokens == pytest.approx(2 * 15)
    assert roles["user"].completion_tokens == pytest.approx(2 * 3)
    assert estimate.requests == pytest.approx(13.25)
    assert estimate.prompt_tokens == pytest.approx(221.75)
    assert estimate.completion_tokens == pytest.approx(101.75)
    assert estimate.cost_usd(Prices(2.0, 8.0)) == pytest.approx((221.75 * 2 + 101.75 * 8) / 1e6)
    text = estimate.format(Prices(2.0, 8.0))
    assert "1.75 expected attempts" in text and "$2 in / $8 out per 1M tokens" in text


def test_prices_and_the_summary_cost() -> None:
    assert Prices(0.15, 0.6).cost(1_000_000, 500_000) == pytest.approx(0.45)
    assert Prices(None, 1.0).cost(10**6, 10**6) == pytest.approx(1.0)
    summary = RunSummary(usage={"prompt_tokens": 2_000_000, "completion_tokens": 0, "requests": 3})
    assert "cost:               $0.3000 at $0.15 in / $0.6 out" in summary.format(Prices(0.15, 0.6))
    assert "cost:" not in summary.format()


@pytest.mark.parametrize("style", ["completion", "chat"])
@pytest.mark.parametrize("user_turns", ["simulate", "replay"])
def test_request_count_matches_a_fake_run(
    mt_bench_records: list[dict[str, Any]], style: str, user_turns: str
) -> None:
    rows = mt_bench_records[:20]
    config = MusicConfig(max_turns=3, prompt_style=style, user_turns=user_turns, seed=5)
    augmenter = MusicAugmenter(config, EchoBackend())
    augmenter.augment_records(rows)
    assert augmenter.summary.pairs_out == 20 and augmenter.summary.perturbation_valid == (
        augmenter.summary.perturbation_attempts
    )  # every echo output is valid, so validity=1 is the truth here
    estimate = estimate_run(rows, config, backend_kind="fake", validity=1.0)
    assert estimate.requests == augmenter.summary.usage["requests"]
