"""Read a batch from any data engine into records, and write output rows back for it.

``datasets.map`` hands the augmenter a ``LazyBatch`` (a dict of lists); Ray Data hands it
a ``pyarrow.Table``, a ``pandas.DataFrame`` or a dict of numpy arrays (message lists then
arrive as object arrays of object arrays of dicts). ``read_batch`` turns each of these
into plain Python records (lists, dicts, ``str``, ``int``...; a null column is left out,
since a table has no other way to say a row lacks it) and refuses anything it
cannot read with a ``UserInputError`` that names the problem: a batch is never guessed
into a single record (issue 12: a numpy batch used to become ONE failed row whose
``source_id`` was the printed array).

``write_batch`` returns the output rows as the engine accepts them: a plain dict of lists
stays a dict of lists (direct calls, ``datasets`` with Python formatting); every other
batch type gets a ``pyarrow.Table`` with the typed output schema (``pairs.output_table``),
which Ray Data takes whatever ``batch_format`` it used for the input.

numpy, pandas and pyarrow are only touched when the batch is of their type. This module
does not augment anything and does not know about Ray or ``datasets`` beyond type checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from music_aug.errors import UserInputError
from music_aug.pairs import output_table

__all__ = ["OUTPUT_COLUMNS", "is_batch", "read_batch", "read_example", "write_batch"]

OUTPUT_COLUMNS = ("chosen", "rejected", "music_metadata")

_ACCEPTED = (
    "a dict of equal-length lists or numpy arrays (one per column), a pandas.DataFrame, "
    "a pyarrow.Table / RecordBatch, or a datasets batch"
)


def _kind(batch: object) -> str:
    """``"arrow"``, ``"pandas"``, ``"datasets"``, ``"mapping"`` or ``"other"``."""
    module = type(batch).__module__
    if module.startswith("pyarrow") and hasattr(batch, "to_pylist"):
        return "arrow"
    if module.startswith("pandas") and hasattr(batch, "to_dict") and hasattr(batch, "columns"):
        return "pandas"
    if module.startswith("datasets."):
        return "datasets"
    return "mapping" if isinstance(batch, Mapping) else "other"


def _is_array(value: object) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _is_column(value: object) -> bool:
    if _is_array(value):
        return getattr(value, "ndim", 0) >= 1
    return isinstance(value, list | tuple)


def _message_like(value: object) -> bool:
    return isinstance(value, Mapping) and "role" in value and "content" in value


def is_batch(batch: object) -> bool:
    """Whether ``batch`` holds many rows (``True``) or is one example (``False``).

    Tables, data frames and ``datasets`` batches are batches; a ``datasets`` row is not.
    A plain mapping is a batch when every value is a list or numpy array and no value is
    itself one conversation (a list of ``{"role", "content"}`` messages): an example's
    ``messages`` holds messages, a batch's ``messages`` column holds lists of them.

    Raises:
        UserInputError: ``batch`` is neither a mapping nor a known table type.
    """
    kind = _kind(batch)
    if kind in ("arrow", "pandas"):
        return True
    if kind == "datasets":
        return type(batch).__name__ != "LazyRow"
    if not isinstance(batch, Mapping):
        raise UserInputError(
            f"cannot read a batch of type {type(batch).__module__}.{type(batch).__name__}; "
            f"pass {_ACCEPTED}"
        )
    values = list(batch.values())
    if not values or not all(_is_column(v) for v in values):
        return False
    return not any(len(v) and _message_like(v[0]) for v in values)


def to_python(value: Any) -> Any:
    """``value`` with numpy arrays, numpy scalars and tuples turned into lists and scalars."""
    if isinstance(value, str | bytes | bool | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): to_python(v) for k, v in value.items()}
    if _is_array(value):
        if value.ndim == 0:
            return to_python(value.item())
        return [to_python(v) for v in value]
    if isinstance(value, list | tuple):
        return [to_python(v) for v in value]
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and callable(item):
        return item()
    return value


def _missing_to_none(value: Any) -> Any:
    # pandas turns a missing value of a numeric column into NaN; a row id of NaN would
    # otherwise become source_id "nan".
    return None if isinstance(value, float) and math.isnan(value) else value


def _columns(batch: Any, kind: str) -> dict[str, Sequence[Any]]:
    if kind == "arrow":
        names = list(batch.schema.names)
        return {name: batch.column(name).to_pylist() for name in names}
    if kind == "pandas":
        return {
            str(name): [_missing_to_none(v) for v in batch[name].tolist()] for name in batch.columns
        }
    columns: dict[str, Sequence[Any]] = {}
    for name, values in batch.items():
        if not _is_column(values):
            raise UserInputError(
                f"batch column {name!r} is a single {type(values).__name__}, not a column "
                "of values; a batch maps each column name to a list or 1-D array"
            )
        columns[str(name)] = values
    return columns


def read_batch(batch: Any) -> list[dict[str, Any]]:
    """Records (one dict per row, plain Python values) of a batch ``is_batch`` accepts.

    A row's null (``None``) columns are left out of its record: in a table, a null is how
    a row says it lacks a column that other rows have.

    Raises:
        UserInputError: the batch is not a batch (see ``is_batch``), or its columns have
            different lengths.
    """
    if not is_batch(batch):
        raise UserInputError(
            f"expected a batch ({_ACCEPTED}); got a {type(batch).__name__} that looks like "
            "one example (a value holds a message list, or a value is not a list)"
        )
    kind = _kind(batch)
    columns = _columns(batch, kind)
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise UserInputError(
            f"batch columns have different lengths {lengths}; every column of a batch must "
            "hold one value per row"
        )
    size = next(iter(lengths.values()), 0)
    return [_record({name: values[k] for name, values in columns.items()}) for k in range(size)]


def _record(values: Mapping[str, Any]) -> dict[str, Any]:
    # A table cannot say "this row has no such column": rows of different layouts in one
    # table (MT-Bench `messages` next to HH `chosen`/`rejected`) get nulls for the others'
    # columns, and a null `chosen` would make a messages row unreadable. Null = absent.
    return {str(k): to_python(v) for k, v in values.items() if v is not None}


def read_example(example: Mapping[str, Any]) -> dict[str, Any]:
    """One example (a ``datasets`` or Ray Data row) as a dict of plain Python values.

    Top-level nulls are dropped, as in ``read_batch``.
    """
    return _record(example)


def write_batch(rows: list[dict[str, Any]], like: Any) -> Any:
    """Output ``rows`` as the engine that sent ``like`` accepts them.

    A plain dict batch gets a dict of lists; every other batch type (``datasets``, Ray's
    numpy / pandas / pyarrow formats) a ``pyarrow.Table`` typed by ``output_features()``,
    so the schema never depends on which rows a batch held.
    """
    columns = {name: [row[name] for row in rows] for name in OUTPUT_COLUMNS}
    if _kind(like) == "mapping" and all(isinstance(v, list) for v in like.values()):
        return columns
    return output_table(columns)
