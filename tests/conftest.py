"""Fixtures shared by every test package: where the real shared data lives."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
HH_FILE = SHARED_DATA / "hh_rlhf_harmless_test_dev.jsonl.gz"
MT_BENCH_FILE = SHARED_DATA / "mt_bench_extended.jsonl"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; tests expect ../shared/data")
    return SHARED_DATA


@pytest.fixture(scope="session")
def hh_records(shared_data: Path) -> list[dict[str, Any]]:
    """The 1200 real HH-RLHF harmless preference rows (chosen/rejected HH text)."""
    return read_jsonl(HH_FILE)


@pytest.fixture(scope="session")
def mt_bench_records(shared_data: Path) -> list[dict[str, Any]]:
    """The 80 MT-Bench conversations extended to five turns (OpenAI messages)."""
    return read_jsonl(MT_BENCH_FILE)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A real local Ray (2 CPUs) for one test module, shut down after it (~10 s to start)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
