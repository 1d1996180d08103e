"""Read rows from local files or the hub: what every ``music-aug`` command reads its input with.

Supported files: ``.jsonl``, ``.json`` (a list of rows, or ``{"data": [...]}`` / ``{"rows":
[...]}``), either optionally gzipped (``.gz``), and ``.parquet`` (through ``datasets``).
A name that is not an existing path and looks like ``owner/name`` is loaded from the hub
with ``datasets.load_dataset`` (needs network access).

This module only reads rows; turning rows into pairs or conversations is the caller's job.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from music_aug.errors import MissingDependencyError, UserInputError

__all__ = ["read_records"]


def read_records(source: str | Path, *, split: str = "train") -> list[dict[str, Any]]:
    """All rows of a local file (or hub dataset) as dicts.

    Args:
        source: a file path, or a hub dataset name such as ``allenai/reward-bench``.
        split: split to load for a hub dataset.

    Raises:
        UserInputError: the file is missing, empty, or not valid JSON (names the line).
    """
    path = Path(source)
    if not path.exists():
        if "/" in str(source) and not str(source).startswith((".", "/")) and path.suffix == "":
            return _load_hub(str(source), split)
        raise UserInputError(f"data file {str(source)!r} does not exist; check the path")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".parquet":
        return _load_parquet(path)
    opener: Any = gzip.open if suffixes and suffixes[-1] == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    core = [s for s in suffixes if s != ".gz"]
    if core and core[-1] == ".json":
        return _from_json(text, path)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserInputError(
                f"{path}: line {number} is not valid JSON ({error.msg}); each line of a .jsonl "
                "file must be one JSON object"
            ) from None
        if not isinstance(row, dict):
            raise UserInputError(f"{path}: line {number} is a {type(row).__name__}, not an object")
        rows.append(row)
    if not rows:
        raise UserInputError(f"{path} has no rows")
    return rows


def _from_json(text: str, path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserInputError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno})"
        ) from None
    if isinstance(data, dict):
        for key in ("data", "rows", "examples"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise UserInputError(
            f"{path} must hold a JSON list of row objects (or {{'data': [...]}}); use .jsonl for "
            "one object per line"
        )
    if not data:
        raise UserInputError(f"{path} has no rows")
    return data


def _load_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as error:  # pragma: no cover - datasets is a core dependency
        raise MissingDependencyError("datasets", "train", "reading parquet files") from error
    table = datasets.Dataset.from_parquet(str(path))
    return [dict(row) for row in table]


def _load_hub(name: str, split: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as error:  # pragma: no cover - datasets is a core dependency
        raise MissingDependencyError("datasets", "train", "loading hub datasets") from error
    try:
        table = datasets.load_dataset(name, split=split)
    except Exception as error:  # the hub raises many unrelated types
        raise UserInputError(
            f"could not load {name!r} (split {split!r}) from the hub: {error}. Download it and "
            "pass a local .jsonl/.json/.parquet file instead"
        ) from error
    return [dict(row) for row in table]
