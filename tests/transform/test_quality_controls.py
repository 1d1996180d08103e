"""Opt-in quality controls of the augmenter: length control and judge-verified contrast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from music_aug.augmenter import MusicAugmenter
from music_aug.backends.base import ChatRequest
from music_aug.backends.cache import CachedBackend
from music_aug.backends.fake import FunctionBackend, ShuffledBackend
from music_aug.config import MusicConfig
from music_aug.errors import ConfigError
from music_aug.pairs import mix
from music_aug.templates import load_template


def _words(text: str) -> int:
    return len(text.split())


def _length_biased(fake_roles: Any, *, always: bool = False) -> Any:
    """Five-word answers; those to contrast instructions run long for even seeds (or always)."""
    role_of, _, smart = fake_roles

    def answer(request: ChatRequest) -> str:
        if role_of(request) != "assistant":
            return smart(request)
        assert request.messages is not None
        text = f"answer number {request.sampling.seed} for you"
        contrast = "tell me something else" in request.messages[-1]["content"]
        if contrast and (always or request.sampling.seed % 2 == 0):
            return text + " and then much more padding" * 12
        return text

    return answer


def _contrast_answers(row: dict[str, Any]) -> list[tuple[str, str]]:
    def answers(messages: list[dict[str, str]]) -> list[str]:
        return [m["content"] for m in messages if m["role"] == "assistant"]

    turns = row["music_metadata"]["contrast_turns"]
    chosen, rejected = answers(row["chosen"]), answers(row["rejected"])
    return [(chosen[t], rejected[t]) for t in turns]


def test_length_control_redraws_unbalanced_answers_and_counts_them(
    make_record: Any, fake_roles: Any
) -> None:
    records = [make_record(1 + i % 3, f"row{i}") for i in range(16)]
    loose = MusicAugmenter(MusicConfig(max_turns=3), FunctionBackend(_length_biased(fake_roles)))
    pairs = [pair for row in loose.augment_records(records) for pair in _contrast_answers(row)]
    ratios = [max(_words(c), _words(r)) / min(_words(c), _words(r)) for c, r in pairs]
    assert max(ratios) > 3  # without control the rejected side is often much longer

    config = MusicConfig(max_turns=3, length_ratio=1.5, max_attempts=10)
    augmenter = MusicAugmenter(config, FunctionBackend(_length_biased(fake_roles)))
    rows = augmenter.augment_records(records)
    assert [r["music_metadata"]["status"] for r in rows] == ["ok"] * 16
    for row in rows:
        for chosen, rejected in _contrast_answers(row):
            longer, shorter = sorted((_words(chosen), _words(rejected)), reverse=True)
            assert longer <= 1.5 * shorter
    assert augmenter.summary.length_rejected > 0
    assert "length control:" in augmenter.summary.format()
    # the decision depends on the two answers only, not on which arrives first
    shuffled = ShuffledBackend(FunctionBackend(_length_biased(fake_roles)), 4, capacity=5)
    again = MusicAugmenter(config, shuffled).augment_records(records)
    assert json.dumps(again, sort_keys=True) == json.dumps(rows, sort_keys=True)


def test_length_control_fails_a_pair_it_cannot_balance(make_record: Any, fake_roles: Any) -> None:
    config = MusicConfig(max_turns=2, length_ratio=1.2, max_attempts=2)
    backend = FunctionBackend(_length_biased(fake_roles, always=True))
    augmenter = MusicAugmenter(config, backend)
    [row] = augmenter.augment_records([make_record(1)])
    assert row["music_metadata"]["status"] == "failed"
    assert row["music_metadata"]["error"].startswith("length_unbalanced: turn")
    assert augmenter.summary.failures_by_reason == {"length_unbalanced": 1}
    with pytest.raises(ConfigError, match="length_ratio"):
        MusicConfig(length_ratio=0.5)


def test_finish_reasons_are_recorded_per_answer(make_record: Any, fake_roles: Any) -> None:
    from music_aug.backends.base import ChatResult

    role_of, _, smart = fake_roles

    def answer(request: ChatRequest) -> str | ChatResult:
        text = smart(request)
        if role_of(request) == "assistant" and "tell me something else" in text:
            return ChatResult(text=text, finish_reason="length")
        return text

    config = MusicConfig(max_turns=3, branch="first")
    [row] = MusicAugmenter(config, FunctionBackend(answer)).augment_records([make_record(1)])
    assert row["music_metadata"]["answer_finish_reasons"] == {
        "chosen": ["stop"] * 3, "rejected": ["length"] * 3}  # fmt: skip


def _judge(request: ChatRequest, *, biased: bool = False) -> str:
    """Prefers the answer that does not address a rewritten instruction (or always A)."""
    assert request.messages is not None
    text = request.messages[-1]["content"]
    if biased:
        return "Both fine. [[A]]"
    section_a = text.split("<|The Start of Conversation A|>")[1].split("<|The End of")[0]
    return "[[B]]" if "tell me something else" in section_a.split("### Assistant A:")[-1] \
        else "[[A]]"  # fmt: skip


def _simulator_and_judge(fake_roles: Any, *, biased: bool = False) -> Any:
    _, _, smart = fake_roles

    def answer(request: ChatRequest) -> str:
        content = (request.messages or [{}])[-1].get("content", "")
        if "<|The Start of Conversation A|>" in content:
            return _judge(request, biased=biased)
        return smart(request)

    return answer


def test_verification_records_both_orders_and_keeps_confirmed_pairs(
    make_record: Any, fake_roles: Any
) -> None:
    config = MusicConfig(max_turns=3, verify="mark")
    records = [make_record(1 + i % 3, f"row{i}") for i in range(6)]
    augmenter = MusicAugmenter(config, FunctionBackend(_simulator_and_judge(fake_roles)))
    rows = augmenter.augment_records(records)
    for row in rows:
        meta = row["music_metadata"]
        record = meta["verification"]
        assert meta["status"] == "ok" and record["verdict"] == "chosen"
        assert record["turns"] == meta["contrast_turns"]
        assert record["chosen_first"] == ["A"] * len(record["turns"])
        assert record["chosen_second"] == ["B"] * len(record["turns"])
    assert augmenter.summary.verified == 6 and augmenter.summary.unverified == 0


@pytest.mark.parametrize("policy", ["keep", "mark", "drop"])
def test_a_position_biased_judge_confirms_nothing(
    policy: str, make_record: Any, fake_roles: Any
) -> None:
    config = MusicConfig(max_turns=2, verify=policy, verify_turns="last")
    simulator = FunctionBackend(_simulator_and_judge(fake_roles))
    judge = FunctionBackend(lambda r: _judge(r, biased=True), model="judge")
    augmenter = MusicAugmenter(config, simulator, judge_backend=judge)
    records = [make_record(2, f"row{i}") for i in range(4)]
    rows = augmenter.augment_records(records)
    assert judge.calls == 1 and len(judge.requests) == 8  # one wave: 4 pairs x 2 orders
    summary = augmenter.summary
    assert (summary.verified, summary.unverified) == (0, 4)
    if policy == "drop":
        assert rows == [] and summary.skipped == 4 and summary.failures_by_reason == {
            "unverified": 4}  # fmt: skip
        return
    assert [r["music_metadata"]["verification"]["verdict"] for r in rows] == ["tie"] * 4
    status = "unverified" if policy == "mark" else "ok"
    assert [r["music_metadata"]["status"] for r in rows] == [status] * 4
    assert len(mix([], rows)) == (0 if policy == "mark" else 4)


def test_verdicts_are_cached_and_part_of_the_fingerprint(
    make_record: Any, fake_roles: Any, tmp_path: Path
) -> None:
    config = MusicConfig(max_turns=2, verify="keep")
    records = [make_record(2, f"row{i}") for i in range(3)]
    judge = FunctionBackend(_simulator_and_judge(fake_roles), model="judge")
    cached = CachedBackend(judge, tmp_path / "judge.sqlite")
    simulator = FunctionBackend(_simulator_and_judge(fake_roles))
    first = MusicAugmenter(config, simulator, judge_backend=cached).augment_records(records)
    again_judge = FunctionBackend(_simulator_and_judge(fake_roles), model="judge")
    cached_again = CachedBackend(again_judge, tmp_path / "judge.sqlite")
    augmenter = MusicAugmenter(config, simulator, judge_backend=cached_again)
    assert augmenter.augment_records(records) == first
    assert again_judge.calls == 0  # every verdict came from the cache
    plain = MusicAugmenter(MusicConfig(max_turns=2), simulator)
    assert plain.fingerprint != augmenter.fingerprint


def test_verify_turn_template_renders_both_conversations() -> None:
    conversation = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "X"}]
    other = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Y"}]
    rendered = load_template("verify_turn").render(conversation_a=conversation,
                                                   conversation_b=other)  # fmt: skip
    assert rendered.kind == "chat"
    assert "### Assistant A:\nX" in rendered.text and "### Assistant B:\nY" in rendered.text
    assert rendered.text.rstrip().endswith("Verdict:")
