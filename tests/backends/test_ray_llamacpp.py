"""music_aug.ray end to end: two Ray actors, each with its own OpenAIBackend, against the real
llama.cpp server (SmolLM2-135M), a node-local request cache, and a rerun served from it.

58-78 s on the shared 2-core dev machine at load ~9 (Ray start 11-13 s, two runs of ~20 requests
of <= 24 tokens).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import ray
import ray.data

import music_aug.ray as music_ray
from music_aug.backends.base import SamplingParams
from music_aug.backends.cache import cache_stats
from music_aug.config import MusicConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DEMO = Path(__file__).resolve().parents[2] / "music_aug" / "data" / "demo_conversations.jsonl"


def _run(rows: list[dict[str, Any]], spec: dict[str, Any], cache: Path) -> list[dict[str, Any]]:
    short = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=24)
    config = MusicConfig(
        max_turns=2,
        branch="first",
        max_attempts=5,
        assistant_sampling=SamplingParams(temperature=0.7, top_p=0.95, max_tokens=24),
        contrast_sampling=short,
        user_sampling=short,
    )
    dataset = music_ray.augment(
        ray.data.from_items(rows), config, spec, cache=str(cache), concurrency=2,
        num_cpus=0.5, batch_size=1,
    )  # fmt: skip
    return pa.concat_tables(ray.get(dataset.to_arrow_refs())).to_pylist()


def test_ray_actors_against_the_real_server(
    local_ray: Any, llama_server: str, mt_bench_records: list[dict[str, Any]], tmp_path: Path
) -> None:
    # the demo row that SmolLM2 turns into a valid pair (tests/transform), and an MT-Bench one
    demo = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()]
    rows = [next(r for r in demo if r["id"] == "hh-rlhf-harmless-test-215")]
    rows.append({"id": mt_bench_records[0]["id"], "messages": mt_bench_records[0]["messages"][:4]})
    spec = {"kind": "openai", "model": "smollm2", "base_url": llama_server, "timeout": 120}
    cache = tmp_path / "node-cache.sqlite"
    first = _run(rows, spec, cache)
    by_id = {r["music_metadata"]["source_id"]: r for r in first}
    assert sorted(by_id) == sorted(r["id"] for r in rows) and len(first) == 2
    for row in first:
        meta = row["music_metadata"]
        assert meta["backend"] == "openai" and meta["model"] == "smollm2"
        assert meta["usage"]["requests"] > 0
        assert meta["status"] == "ok" or meta["error"]  # a failure is marked, never silent
    assert any(r["music_metadata"]["status"] == "ok" for r in first)
    sent = cache_stats(cache)
    assert sent["misses"] > 0 and sent["hits"] == 0

    again = _run(rows, spec, cache)  # every request replays from the node's cache
    assert {r["music_metadata"]["source_id"]: r for r in again} == by_id
    replayed = cache_stats(cache)
    assert replayed["misses"] == sent["misses"] and replayed["hits"] >= sent["entries"]
