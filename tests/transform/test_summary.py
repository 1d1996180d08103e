"""RunSummary.merge / from_dict: the shares of parallel workers add up to one run's summary."""

from __future__ import annotations

from typing import Any

from music_aug import MusicAugmenter, MusicConfig, RunSummary


def _counts(summary: RunSummary) -> dict[str, Any]:
    data = summary.to_dict()
    del data["wall_time_s"], data["backend_calls"]  # per run, not per row
    return data


def test_merged_shares_equal_the_whole_run(smart_backend: Any, make_record: Any) -> None:
    rows = [make_record(3, tag=f"r{k}") for k in range(5)]
    rows.append({"messages": [{"role": "assistant", "content": "no user turn"}]})  # fails
    config = MusicConfig(max_turns=3)
    whole = MusicAugmenter(config, smart_backend)
    whole.augment_records(rows)
    parts = [MusicAugmenter(config, smart_backend) for _ in range(2)]
    parts[0].augment_records(rows[:2])
    parts[1].augment_records(rows[2:])
    merged = parts[0].summary.merge(parts[1].summary)
    assert _counts(merged) == _counts(whole.summary)
    assert merged.failed == 1 and merged.rows_in == 6
    for name in ("wall_time_s", "backend_calls"):
        assert getattr(merged, name) == sum(getattr(p.summary, name) for p in parts)
    assert RunSummary.from_dict(merged.to_dict()) == merged
    assert _counts(RunSummary().merge(merged)) == _counts(merged)


def test_since_is_what_one_batch_added(smart_backend: Any, make_record: Any) -> None:
    augmenter = MusicAugmenter(MusicConfig(max_turns=3), smart_backend)
    augmenter.augment_records([make_record(3, tag="a")])
    before = augmenter.summary.copy()
    augmenter.augment_records([make_record(3, tag="b"), make_record(3, tag="c")])
    alone = MusicAugmenter(MusicConfig(max_turns=3), smart_backend)
    alone.augment_records([make_record(3, tag="b"), make_record(3, tag="c")])
    delta = augmenter.summary.since(before)
    assert _counts(delta) == _counts(alone.summary)
    assert before.merge(delta) == augmenter.summary
