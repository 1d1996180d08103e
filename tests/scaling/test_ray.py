"""music_aug on a real local Ray (2 CPUs): the issue's map_batches call in every batch format,
an actor killed mid-run, the same pairs as one process, and ``music-aug augment --ray``.

Timings on the shared 2-core dev machine (load ~8): Ray start ~13 s once for the module;
the first map_batches format ~9 s (worker start), the others ~0.2 s; the crash test ~9 s;
each CLI run 7-16 s; the whole module ~65 s. None passes the ~30 s of ``slow``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import ray.data

import music_aug.ray as music_ray
from music_aug import MusicAugmenter, MusicConfig
from music_aug.backends.base import Backend, ChatRequest, ChatResult
from music_aug.backends.cache import CachedBackend, cache_stats
from music_aug.backends.fake import EchoBackend
from music_aug.batches import OUTPUT_COLUMNS
from music_aug.cli import main
from music_aug.cli.augment import read_rows
from music_aug.pairs import output_table

pytestmark = pytest.mark.integration  # a real local Ray
CONFIG = MusicConfig(max_turns=3)


def _collect(dataset: Any) -> list[dict[str, Any]]:
    """All output rows of a Ray dataset, exactly as its Arrow blocks hold them."""
    return pa.concat_tables(ray.get(dataset.to_arrow_refs())).to_pylist()


def _typed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Single-process rows through the same typed Arrow schema, for comparison."""
    return output_table({name: [r[name] for r in rows] for name in OUTPUT_COLUMNS}).to_pylist()


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_id = {r["music_metadata"]["source_id"]: r for r in rows}
    assert len(by_id) == len(rows), "a source row came out more than once"
    return by_id


def _text(request: ChatRequest) -> str:
    return request.prompt or json.dumps([dict(m) for m in request.messages or ()])


def crash_once_factory(marker: Path, after: int) -> Callable[[], Backend]:
    """A factory (built in each actor) of EchoBackends that fail every request of a POISON
    row, and that kill their own process once (the first to create ``marker``) at the start
    of the first ``generate`` call after answering ``after`` requests."""

    def factory() -> Backend:
        class CrashOnce(EchoBackend):
            answered = 0

            def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
                if self.answered >= after:
                    try:
                        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                    except FileExistsError:
                        pass
                    else:
                        os.write(fd, f"{os.getpid()} {self.answered}".encode())
                        os.close(fd)
                        os._exit(1)  # a real death: no exception, no cleanup
                self.answered += len(requests)
                results = super().generate(requests)
                poisoned = ChatResult.failure("http_500: poisoned row")
                pairs = zip(requests, results, strict=True)
                return [poisoned if "POISON" in _text(q) else r for q, r in pairs]

        return CrashOnce()

    return factory


@pytest.mark.parametrize("batch_format", ["default", "pandas", "pyarrow"])
def test_the_issue_map_batches_call_in_every_format(
    local_ray: Any, batch_format: str, mt_bench_records: list[dict[str, Any]]
) -> None:
    """The issue's exact call (a plain augmenter, Ray tasks): it failed in every format."""
    rows = mt_bench_records[:8]
    augmenter = MusicAugmenter(MusicConfig(max_turns=2), EchoBackend())
    dataset = ray.data.from_items(rows).map_batches(
        augmenter, batch_size=4, batch_format=batch_format
    )
    out = _collect(dataset)
    single = MusicAugmenter(MusicConfig(max_turns=2), EchoBackend()).augment_records(rows)
    assert _by_id(out) == _by_id(_typed(single))
    assert {r["music_metadata"]["status"] for r in out} == {"ok"}


def test_killed_actor_replays_from_cache_and_every_row_ends_once(
    local_ray: Any, tmp_path: Path, mt_bench_records: list[dict[str, Any]]
) -> None:
    rows = [dict(r) for r in mt_bench_records[:16]]
    first = dict(rows[5]["messages"][0])
    first["content"] = "POISON " + first["content"]
    rows[5]["messages"] = [first, *rows[5]["messages"][1:]]
    marker, cache = tmp_path / "crashed", tmp_path / "cache.sqlite"
    summary = music_ray.RaySummary()
    dataset = music_ray.augment(
        ray.data.from_items(rows),
        CONFIG,
        crash_once_factory(marker, after=45),  # mid-way through an actor's second batch
        cache=str(cache),
        concurrency=2,
        num_cpus=0.5,
        batch_size=4,
        summary=summary,
    )
    out = _collect(dataset)

    assert marker.exists(), "no actor was killed"
    assert int(marker.read_text().split()[1]) >= 45
    assert sorted(_by_id(out)) == sorted(r["id"] for r in rows)  # every row, exactly once
    statuses = {r["music_metadata"]["source_id"]: r["music_metadata"]["status"] for r in out}
    assert [k for k, v in statuses.items() if v == "failed"] == [rows[5]["id"]]
    assert _by_id(out)[rows[5]["id"]]["music_metadata"]["error"].startswith("backend_error")
    # the retried batch replayed its finished requests; a crash-free run has no hits
    assert cache_stats(cache)["hits"] > 0
    fresh = CachedBackend(crash_once_factory(marker, after=10**9)(), tmp_path / "fresh.sqlite")
    single = MusicAugmenter(CONFIG, fresh).augment_records(rows)
    assert cache_stats(tmp_path / "fresh.sqlite")["hits"] == 0
    # same pairs as one process
    assert _by_id(out) == _by_id(_typed(single))
    total = summary.get()
    assert (total.rows_in, total.pairs_out, total.failed) == (16, 15, 1)
    assert total.usage["requests"] == sum(r["music_metadata"]["usage"]["requests"] for r in out)


def test_augment_rejects_a_built_backend_and_a_remote_cache(local_ray: Any) -> None:
    from music_aug import ConfigError

    dataset = ray.data.from_items([{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(ConfigError, match="not a built EchoBackend"):
        music_ray.augment(dataset, CONFIG, EchoBackend())
    with pytest.raises(ConfigError, match="local SQLite file on each node"):
        music_ray.augment(dataset, CONFIG, "fake", cache="s3://bucket/cache.sqlite")
    with pytest.raises(ConfigError, match="needs a model name"):
        music_ray.augment(dataset, CONFIG, {"kind": "openai"})
    with pytest.warns(RuntimeWarning, match="leaving none for reading the input"):
        music_ray.augment(dataset, CONFIG, "fake", concurrency=2)  # 2 x 1 CPU of 2


def _write_input(kind: str, folder: Path, rows: list[dict[str, Any]]) -> Path:
    if kind == "jsonl":
        path = folder / "in.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    shards = folder / "in_parquet"
    shards.mkdir()
    for index in range(2):
        pq.write_table(pa.Table.from_pylist(rows[index::2]), shards / f"part-{index}.parquet")
    return shards


@pytest.mark.parametrize(
    ("input_kind", "output_format"), [("jsonl", "parquet"), ("parquet", "jsonl")]
)
def test_cli_ray_gives_the_single_process_rows(
    local_ray: Any,
    tmp_path: Path,
    mt_bench_records: list[dict[str, Any]],
    capsys: Any,
    input_kind: str,
    output_format: str,
) -> None:
    rows = mt_bench_records[:6]
    source = _write_input(input_kind, tmp_path, rows)
    common = ["--backend", "fake", "--max-turns", "2", "--batch-size", "2", "--seed", "3"]
    out = tmp_path / "pairs"
    status = main([
        "augment", str(source), "-o", str(out), "--ray", "--actors", "2", *common,
        "--output-format", output_format, "--cache", str(tmp_path / "cache.sqlite"),
        "--summary-json", str(tmp_path / "summary.json"),
    ])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "wrote 6 rows" in printed and "rows in:            6" in printed
    assert json.loads((tmp_path / "summary.json").read_text())["pairs_out"] == 6
    shards = sorted(out.glob(f"*.{output_format}"))
    assert shards, f"no .{output_format} shards in {out}"
    got = [row for shard in shards for row in read_rows(str(shard))]

    (tmp_path / "single").mkdir()
    single = tmp_path / "single" / "pairs.parquet"
    single_in = _write_input("jsonl", tmp_path / "single", rows)
    assert main(["augment", str(single_in), "-o", str(single), *common]) == 0
    assert _by_id(got) == _by_id(read_rows(str(single)))
    assert cache_stats(tmp_path / "cache.sqlite")["entries"] > 0


def test_cli_ray_refuses_shards_and_file_outputs(tmp_path: Path, capsys: Any) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    base = ["augment", str(source), "--ray", "--backend", "fake"]
    assert main([*base, "-o", str(tmp_path / "out"), "--shard", "0/2"]) == 2
    assert main([*base, "-o", str(tmp_path / "out.parquet")]) == 2
    assert main([*base, "-o", str(tmp_path / "out"), "--judge-model", "j", "--dry-run"]) == 2
    errors = capsys.readouterr().err
    assert "--ray spreads rows over actors itself" in errors and "output folder" in errors
    assert "--dry-run, --judge-model not supported with --ray" in errors
