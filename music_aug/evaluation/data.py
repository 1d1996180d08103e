"""Names of evaluation inputs; reading them is ``music_aug.records.read_records``.

``read_records`` is re-exported here, where evaluation code has always imported it from.
This module only names files; it does not read or score anything.
"""

from __future__ import annotations

from pathlib import Path

from music_aug.records import read_records

__all__ = ["dataset_label", "read_records"]


def dataset_label(path: str | Path) -> str:
    """Short name of a data file for reports: the stem without ``.jsonl``/``.json``/``.gz``."""
    name = Path(str(path)).name
    for suffix in (".gz", ".jsonl", ".json", ".parquet"):
        name = name.removesuffix(suffix)
    return name or str(path)
