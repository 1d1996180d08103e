"""Batches of every engine's type in, records out; output rows back as the engine takes them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from music_aug import MusicAugmenter, MusicConfig, UserInputError
from music_aug.backends.fake import EchoBackend
from music_aug.batches import is_batch, read_batch, read_example, write_batch


@pytest.fixture
def rows(mt_bench_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": r["id"], "messages": r["messages"][:4]} for r in mt_bench_records[:3]]


def _as(kind: str, rows: list[dict[str, Any]]) -> Any:
    """A batch laid out the way each engine hands it over (Ray's numpy is Arrow's)."""
    table = pa.Table.from_pylist(rows)
    if kind == "dict":
        return {name: [row[name] for row in rows] for name in rows[0]}
    if kind == "numpy":
        return {name: table.column(name).to_numpy(zero_copy_only=False) for name in rows[0]}
    if kind == "pandas":
        return table.to_pandas()
    return table if kind == "arrow" else table.to_batches()[0]


@pytest.mark.parametrize("kind", ["dict", "numpy", "pandas", "arrow", "record_batch"])
def test_every_batch_type_reads_as_the_same_records(kind: str, rows: list[dict[str, Any]]) -> None:
    batch = _as(kind, rows)
    assert is_batch(batch)
    assert read_batch(batch) == rows


def test_numpy_batch_is_many_rows_not_one_failed_row(rows: list[dict[str, Any]]) -> None:
    """Issue 12: a numpy batch became ONE failed row whose source_id was the printed array."""
    augmenter = MusicAugmenter(MusicConfig(max_turns=2), EchoBackend())
    out = augmenter(_as("numpy", rows))
    assert isinstance(out, pa.Table) and out.num_rows == 3
    metadata = out.column("music_metadata").to_pylist()
    assert [m["source_id"] for m in metadata] == [r["id"] for r in rows]
    assert {m["status"] for m in metadata} == {"ok"}
    assert out.schema.field("music_metadata").type.field("error").type == pa.string()


def test_dict_batch_stays_a_dict_and_equals_the_table_rows(rows: list[dict[str, Any]]) -> None:
    augmenter = MusicAugmenter(MusicConfig(max_turns=2), EchoBackend())
    plain = augmenter(_as("dict", rows))
    table = augmenter(_as("arrow", rows))
    assert isinstance(plain, dict) and sorted(plain) == ["chosen", "music_metadata", "rejected"]
    assert pa.Table.from_pydict(plain, schema=table.schema).to_pylist() == table.to_pylist()


def test_examples_are_not_batches(rows: list[dict[str, Any]]) -> None:
    example = rows[0]
    ray_row = {"id": example["id"], "messages": np.array(example["messages"], dtype=object)}
    assert not is_batch(example) and not is_batch(ray_row)
    assert read_example(ray_row) == example
    out = MusicAugmenter(MusicConfig(max_turns=2), EchoBackend())(ray_row)
    assert out["music_metadata"]["source_id"] == example["id"]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({"id": ["a", "b"], "messages": [[], [], []]}, "different lengths"),
        ([{"messages": []}], "cannot read a batch of type builtins.list"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "looks like one example"),
    ],
)
def test_unreadable_batches_raise(batch: Any, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        read_batch(batch)


def test_unreadable_batch_through_the_augmenter_raises() -> None:
    augmenter = MusicAugmenter(MusicConfig(max_turns=2), EchoBackend())
    with pytest.raises(UserInputError, match="different lengths"):
        augmenter({"id": np.array(["a", "b"]), "messages": np.array([None, None, None])})
    assert augmenter.summary.rows_in == 0


def test_write_batch_types(rows: list[dict[str, Any]]) -> None:
    out = MusicAugmenter(MusicConfig(max_turns=2), EchoBackend()).augment_records(rows)
    assert isinstance(write_batch(out, like=_as("dict", rows)), dict)
    for kind in ("numpy", "pandas", "arrow"):
        assert (
            write_batch(out, like=_as(kind, rows)).to_pylist()
            == write_batch(out, like=_as("arrow", rows)).to_pylist()
        )


@pytest.mark.parametrize("engine", ["arrow", "pandas", "numpy", "datasets"])
def test_rows_of_different_layouts_share_a_table(
    engine: str, rows: list[dict[str, Any]], hh_records: list[dict[str, Any]]
) -> None:
    """A table gives MT-Bench rows null `chosen`/`rejected` and HH rows null `messages`."""
    mixed = [rows[0], hh_records[0], rows[1]]
    augmenter = MusicAugmenter(MusicConfig(max_turns=2), EchoBackend())
    if engine == "datasets":
        import datasets

        keys = ["id", "messages", "chosen", "rejected"]  # from_list would keep row 0's keys
        source = datasets.Dataset.from_dict({k: [r.get(k) for r in mixed] for k in keys})
        out = augmenter.map(source, load_from_cache_file=False)
        statuses = [m["status"] for m in out["music_metadata"]]
    else:
        table = augmenter(_as(engine, [{**dict.fromkeys(["chosen", "rejected"]), **r}
                                       for r in mixed]))  # fmt: skip
        statuses = [m["status"] for m in table.column("music_metadata").to_pylist()]
    assert statuses == ["ok", "ok", "ok"]
