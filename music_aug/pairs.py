"""``PairBuilder``: turn two finished branches into an output row, after checking it.

An output row is TRL's conversational preference format plus provenance:
``{"chosen": [...], "rejected": [...], "music_metadata": {...}}`` (schema in
``docs/augment.md``). Before emitting, ``PairBuilder`` checks the MUSIC invariants:

1. chosen and rejected are identical up to and including the branch instruction u_i;
2. at every contrast turn the rejected conversation shows the ORIGINAL instruction;
3. chosen and rejected differ in every contrast turn's assistant message;
4. both sides are valid conversations with the planned number of turns.

``mix`` builds D ∪ D_MUSIC. This module does not generate text or choose turns.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from music_aug.conversation import Conversation, PreferencePair
from music_aug.errors import InvalidConversationError, ModelBehaviorError, UserInputError
from music_aug.perturb import normalize

__all__ = [
    "METADATA_KEYS",
    "PairBuilder",
    "PairInvariantError",
    "check_invariants",
    "mix",
    "output_features",
    "output_table",
]

METADATA_KEYS = (
    "source_id",
    "branch_turn",
    "contrast_turns",
    "original_instructions",
    "contrast_instructions",
    "user_turns",
    "seed",
    "backend",
    "model",
    "template_hashes",
    "prompt_style",
    "seed_honoured",
    "usage",
    "version",
    "status",
    "error",
    "answer_finish_reasons",
    "verification",
)


def output_features() -> Any:
    """``datasets.Features`` of MUSIC output rows (imports ``datasets``)."""
    from datasets import Features, Value

    try:
        from datasets import List
    except ImportError:  # datasets < 4 calls it Sequence
        from datasets import Sequence as List

    message = {"role": Value("string"), "content": Value("string")}
    return Features(
        {
            "chosen": List(message),
            "rejected": List(message),
            "music_metadata": {
                "source_id": Value("string"),
                "branch_turn": Value("int64"),
                "contrast_turns": List(Value("int64")),
                "original_instructions": List(Value("string")),
                "contrast_instructions": List(Value("string")),
                "user_turns": Value("string"),
                "seed": Value("int64"),
                "backend": Value("string"),
                "model": Value("string"),
                "template_hashes": {
                    "contrast": Value("string"),
                    "user": Value("string"),
                    "assistant": Value("string"),
                },
                "prompt_style": Value("string"),
                "seed_honoured": Value("bool"),
                "usage": {
                    "prompt_tokens": Value("int64"),
                    "completion_tokens": Value("int64"),
                    "requests": Value("int64"),
                },
                "version": Value("string"),
                "status": Value("string"),
                "error": Value("string"),
                "answer_finish_reasons": {
                    "chosen": List(Value("string")),
                    "rejected": List(Value("string")),
                },
                "verification": {
                    "verdict": Value("string"),
                    "turns": List(Value("int64")),
                    "chosen_first": List(Value("string")),
                    "chosen_second": List(Value("string")),
                },
            },
        }
    )


def output_table(columns: Mapping[str, list[Any]]) -> Any:
    """Output columns as a ``pyarrow.Table`` typed by ``output_features()``.

    ``datasets.map`` infers a column's type from the first batch it writes; a typed table
    makes the schema independent of which rows that batch held (an all-``ok`` first batch
    would otherwise type ``error`` as null and reject a later failure). A table replaces
    the batch, so input columns are not carried over; ``source_id`` links back.
    """
    import pyarrow as pa

    return pa.Table.from_pydict(dict(columns), schema=_output_schema())


@functools.cache
def _output_schema() -> Any:
    """The Arrow schema of ``output_features()``: a constant, built once (~3 ms each time)."""
    return output_features().arrow_schema


class PairInvariantError(ModelBehaviorError):
    """A finished pair breaks a MUSIC invariant; ``reason`` names which one."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


def _user_indices(messages: Sequence[Mapping[str, str]]) -> list[int]:
    return [k for k, m in enumerate(messages) if m["role"] == "user"]


def check_invariants(
    chosen: Sequence[Mapping[str, str]],
    rejected: Sequence[Mapping[str, str]],
    metadata: Mapping[str, Any],
) -> None:
    """Raise ``PairInvariantError`` if an ``ok`` row breaks a MUSIC invariant.

    Args:
        chosen, rejected: the two message lists of an output row.
        metadata: the row's ``music_metadata``.
    """
    for side, messages in (("chosen", chosen), ("rejected", rejected)):
        try:
            Conversation.from_messages([dict(m) for m in messages])
        except InvalidConversationError as error:
            raise PairInvariantError(
                f"{side} is not a valid conversation: {error}", reason="invalid_conversation"
            ) from None
    branch = metadata["branch_turn"]
    turns = list(metadata["contrast_turns"])
    originals = list(metadata["original_instructions"])
    contrasts = list(metadata["contrast_instructions"])
    if not turns or turns[0] != branch or not len(originals) == len(turns) == len(contrasts):
        raise PairInvariantError(
            f"contrast turns {turns} do not start at the branch turn {branch} or are not "
            "aligned with the instructions",
            reason="bad_plan",
        )
    chosen_users, rejected_users = _user_indices(chosen), _user_indices(rejected)
    if len(chosen_users) <= turns[-1] or len(rejected_users) <= turns[-1]:
        raise PairInvariantError(
            "a side is shorter than its last contrast turn", reason="too_short"
        )
    shared = chosen_users[branch] + 1
    if [dict(m) for m in chosen[:shared]] != [dict(m) for m in rejected[:shared]]:
        raise PairInvariantError(
            f"chosen and rejected differ before or at the branch instruction (turn {branch})",
            reason="prefix_differs",
        )
    for turn, original, contrast in zip(turns, originals, contrasts, strict=True):
        position = rejected_users[turn]
        if rejected[position]["content"] != original:
            raise PairInvariantError(
                f"turn {turn}: the rejected side does not show the original instruction",
                reason="instruction_not_original",
            )
        if normalize(contrast) == normalize(original):
            raise PairInvariantError(
                f"turn {turn}: the contrast instruction equals the original", reason="identical"
            )
        answer_c = (
            chosen[chosen_users[turn] + 1]["content"]
            if chosen_users[turn] + 1 < len(chosen)
            else None
        )
        answer_r = rejected[position + 1]["content"] if position + 1 < len(rejected) else None
        if answer_c is None or answer_r is None:
            raise PairInvariantError(f"turn {turn} has no answer on a side", reason="unanswered")
        if answer_c.strip() == answer_r.strip():
            raise PairInvariantError(
                f"turn {turn}: chosen and rejected answers are identical",
                reason="identical_answers",
            )


class PairBuilder:
    """Build output rows with provenance; ``ok`` rows are checked first.

    Args:
        backend: backend name for provenance.
        model: model identifier for provenance.
        template_hashes: ``{"contrast": ..., "user": ..., "assistant": ...}``.
        user_turns: ``"simulate"`` or ``"replay"``.
        version: ``music_aug`` version string.
        prompt_style: the resolved prompt style, ``"chat"`` or ``"completion"``.
        seed_honoured: ``False`` when the backend is known to ignore sampling seeds
            (reproducibility then rests on the request cache).
    """

    def __init__(
        self,
        *,
        backend: str,
        model: str,
        template_hashes: Mapping[str, str | None],
        user_turns: str,
        version: str,
        prompt_style: str = "completion",
        seed_honoured: bool = True,
    ) -> None:
        self.backend = backend
        self.prompt_style = prompt_style
        self.seed_honoured = seed_honoured
        self.model = model
        self.template_hashes = dict(template_hashes)
        self.user_turns = user_turns
        self.version = version

    def _metadata(self, **fields: Any) -> dict[str, Any]:
        usage = fields.pop("usage", None) or {}
        finish = fields.pop("answer_finish_reasons", None) or {}
        metadata = {
            "source_id": fields["source_id"],
            "branch_turn": fields.get("branch_turn"),
            "contrast_turns": list(fields.get("contrast_turns", ())),
            "original_instructions": list(fields.get("original_instructions", ())),
            "contrast_instructions": list(fields.get("contrast_instructions", ())),
            "user_turns": self.user_turns,
            "seed": fields.get("seed"),
            "backend": self.backend,
            "model": self.model,
            "template_hashes": dict(self.template_hashes),
            "prompt_style": self.prompt_style,
            "seed_honoured": self.seed_honoured,
            "usage": {
                "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                "completion_tokens": int(usage.get("completion_tokens", 0)),
                "requests": int(usage.get("requests", 0)),
            },
            "version": self.version,
            "status": fields["status"],
            "error": fields.get("error"),
            "answer_finish_reasons": {
                "chosen": list(finish.get("chosen", ())),
                "rejected": list(finish.get("rejected", ())),
            },
            "verification": None,
        }
        return metadata

    def build(
        self,
        *,
        chosen: list[dict[str, str]],
        rejected: list[dict[str, str]],
        source_id: str,
        branch_turn: int,
        contrast_turns: Sequence[int],
        original_instructions: Sequence[str],
        contrast_instructions: Sequence[str],
        seed: int,
        usage: Mapping[str, int],
        answer_finish_reasons: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        """An ``ok`` row; raises ``PairInvariantError`` if the pair breaks an invariant.

        ``answer_finish_reasons`` maps ``"chosen"``/``"rejected"`` to the finish reason of
        each generated answer from the branch turn on (``"length"``: cut by the budget).
        """
        metadata = self._metadata(
            source_id=source_id,
            branch_turn=branch_turn,
            contrast_turns=contrast_turns,
            original_instructions=original_instructions,
            contrast_instructions=contrast_instructions,
            seed=seed,
            usage=usage,
            status="ok",
            answer_finish_reasons=answer_finish_reasons,
        )
        check_invariants(chosen, rejected, metadata)
        return {"chosen": chosen, "rejected": rejected, "music_metadata": metadata}

    def failed(
        self,
        *,
        source: list[dict[str, str]],
        source_id: str,
        error: str,
        branch_turn: int | None = None,
        contrast_turns: Sequence[int] = (),
        original_instructions: Sequence[str] = (),
        contrast_instructions: Sequence[str] = (),
        seed: int | None = None,
        usage: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """A ``failed`` row: the source as ``chosen``, an empty ``rejected``, the reason."""
        metadata = self._metadata(
            source_id=source_id,
            branch_turn=branch_turn,
            contrast_turns=contrast_turns,
            original_instructions=original_instructions,
            contrast_instructions=contrast_instructions,
            seed=seed,
            usage=usage,
            status="failed",
            error=error,
        )
        return {"chosen": source, "rejected": [], "music_metadata": metadata}


def _rows(data: Any) -> list[dict[str, Any]]:
    if hasattr(data, "to_list") and hasattr(data, "column_names"):
        return list(data.to_list())
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping):
        return [dict(row) for row in data]
    raise UserInputError(
        f"mix() takes a datasets.Dataset or a list of dict rows, got {type(data).__name__}"
    )


def mix(
    original: Any,
    music: Any,
    *,
    format: str = "auto",
    repair: bool = False,
    shuffle: bool = True,
    seed: int = 0,
) -> Any:
    """D ∪ D_MUSIC: original preference rows and MUSIC pairs in one TRL-format set.

    Original rows (any format ``PreferencePair.from_record`` reads) are converted to
    ``{"chosen": [...], "rejected": [...]}``; MUSIC rows keep their message lists and
    failed MUSIC rows (``status="failed"``) are left out. Every row gets a ``source``
    column: ``"original"`` or ``"music"``.

    Returns:
        A ``datasets.Dataset`` if either input is one, else a list of dicts.
    """
    rows: list[dict[str, Any]] = []
    for index, record in enumerate(_rows(original)):
        pair = PreferencePair.from_record(record, format=format, repair=repair, row=index)
        rows.append({**pair.to_trl(), "source": "original"})
    for record in _rows(music):
        metadata = record.get("music_metadata") or {}
        if metadata.get("status", "ok") != "ok" or not record.get("rejected"):
            continue
        rows.append(
            {
                "chosen": list(record["chosen"]),
                "rejected": list(record["rejected"]),
                "source": "music",
            }
        )
    if shuffle:
        random.Random(seed).shuffle(rows)
    if hasattr(original, "column_names") or hasattr(music, "column_names"):
        import datasets

        return datasets.Dataset.from_list(rows)
    return rows
