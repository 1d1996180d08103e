"""What a set of preference pairs teaches: length, truncation, contrast and duplicate statistics.

``inspect_pairs`` reads pairs in any layout ``PreferencePair.from_record`` knows (TRL
chosen/rejected lists, HH text, prompt/chosen/rejected strings, ``music-aug augment``
output) and returns a frozen ``QualityReport``: per pair and in aggregate, the token-length
difference chosen - rejected at every differing assistant turn, the length-only baseline
("longer wins" / "shorter wins" accuracy, the number any reward model trained on the pairs
must beat), truncation rates per side, the lexical distance of each contrast instruction
u'_t from u_t, differing-turn and branch-turn counts and duplicates (issue 13).

Tokens are counted cheaply by default: ``\\w+`` runs and single punctuation characters
(``count_tokens``), so ``"Don't stop!"`` is 5 tokens; pass any ``str -> int`` (e.g. a
tokenizer's length) instead. MUSIC provenance is read from ``music_metadata``
(``source_id``, ``branch_turn``, ``contrast_turns``, ``original_instructions``,
``contrast_instructions``, ``status``, ``error`` and, when present,
``answer_finish_reasons = {"chosen": [...], "rejected": [...]}``, one finish reason per
generated assistant answer from the branch turn on).

This module does no file I/O and draws nothing; ``music_aug.quality.render`` formats and
plots a report, the ``music-aug inspect`` command reads files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from music_aug.conversation import Conversation, PreferencePair
from music_aug.errors import MissingDependencyError, UserInputError
from music_aug.quality.aggregate import (
    histogram,
    length_stats,
    refusal_stats,
    similarity_stats,
    truncation_stats,
)
from music_aug.quality.models import InstructionSimilarity, PairQuality, QualityReport, TurnLength

__all__ = [
    "TokenCounter",
    "TokenizerCounter",
    "answer_length_diff",
    "count_tokens",
    "inspect_pairs",
    "length_outcome",
]

TokenCounter = Callable[[str], int]
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """The default token count: ``\\w+`` runs plus single punctuation characters."""
    return len(_TOKEN.findall(text))


class TokenizerCounter:
    """Count tokens with a Hugging Face tokenizer (``transformers``, extra ``train``).

    Args:
        name_or_path: a local tokenizer directory (or a hub id where the hub is reachable).
    """

    def __init__(self, name_or_path: str) -> None:
        try:
            from transformers import AutoTokenizer
        except ImportError as error:
            raise MissingDependencyError("transformers", "train", "--tokenizer") from error
        self.name = f"tokenizer {name_or_path}"
        self._tokenizer = AutoTokenizer.from_pretrained(name_or_path)

    def __call__(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])


# --------------------------------------------------------------------------- per pair
def _answers(conversation: Conversation) -> list[str | None]:
    return [turn.assistant for turn in conversation.turns]


def _differing(chosen: Sequence[str | None], rejected: Sequence[str | None]) -> list[int]:
    """``PreferencePair.differing_turns`` from the answer lists (built once per pair)."""
    return [
        turn
        for turn in range(max(len(chosen), len(rejected)))
        if turn >= len(chosen) or turn >= len(rejected) or chosen[turn] != rejected[turn]
    ]


def _turn_lengths(pair: PreferencePair, counter: TokenCounter) -> list[TurnLength]:
    chosen, rejected = _answers(pair.chosen), _answers(pair.rejected)
    lengths = []
    for turn in _differing(chosen, rejected):
        c = counter(chosen[turn] or "") if turn < len(chosen) else 0
        r = counter(rejected[turn] or "") if turn < len(rejected) else 0
        lengths.append(TurnLength(turn=turn, chosen=c, rejected=r, diff=c - r))
    return lengths


def answer_length_diff(pair: PreferencePair, counter: TokenCounter = count_tokens) -> int:
    """Tokens of chosen minus rejected, summed over the differing assistant turns."""
    return sum(length.diff for length in _turn_lengths(pair, counter))


def length_outcome(pair: PreferencePair, counter: TokenCounter = count_tokens) -> float:
    """Outcome of "the longer answer wins" on one pair: 1.0, 0.5 on a tie, else 0.0."""
    diff = answer_length_diff(pair, counter)
    return 1.0 if diff > 0 else 0.5 if diff == 0 else 0.0


def _conversation_tokens(conversation: Conversation, counter: TokenCounter) -> int:
    return sum(counter(message.content) for message in conversation.messages)


def _similarity(turn: int, original: str, contrast: str) -> InstructionSimilarity:
    a, b = set(_tokens(original.lower())), set(_tokens(contrast.lower()))
    union = a | b
    jaccard = len(a & b) / len(union) if union else 1.0
    return InstructionSimilarity(turn=turn, jaccard=jaccard)


def _str_list(metadata: Mapping[str, Any], key: str, row: int) -> list[str]:
    value = metadata.get(key) or []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise UserInputError(
            f"row {row}: music_metadata.{key} must be a list of strings, got {value!r}; fix "
            "the row or drop music_metadata to inspect it as a plain TRL pair"
        )
    return list(value)


def _truncated(metadata: Mapping[str, Any], row: int) -> dict[str, int] | None:
    """``{"chosen": n, "rejected": n, "chosen_answers": k, ...}`` or None without reasons."""
    reasons = metadata.get("answer_finish_reasons")
    if reasons is None:
        return None
    shape = (
        'music_metadata.answer_finish_reasons must be {"chosen": [str, ...], '
        '"rejected": [str, ...]} (one finish reason per generated answer)'
    )
    if not isinstance(reasons, Mapping):
        raise UserInputError(f"row {row}: {shape}, got {reasons!r}")
    counts: dict[str, int] = {}
    for side in ("chosen", "rejected"):
        values = reasons.get(side)
        if not isinstance(values, list | tuple) or not all(
            isinstance(v, str) or v is None for v in values
        ):
            raise UserInputError(f"row {row}: {shape}, got {side}={values!r}")
        counts[side] = sum(1 for v in values if v == "length")
        counts[f"{side}_answers"] = sum(1 for v in values if v is not None)
    return counts


def _pair_key(pair: PreferencePair) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple(
        tuple((m.role, m.content) for m in side.messages) for side in (pair.chosen, pair.rejected)
    )


def _source_key(pair: PreferencePair, metadata: Mapping[str, Any]) -> str:
    if metadata.get("source_id") is not None:
        return str(metadata["source_id"])
    prefix = json.dumps(pair.common_prefix.to_messages())
    return "prefix:" + hashlib.sha1(prefix.encode("utf-8")).hexdigest()[:16]


def _measure(
    pair: PreferencePair,
    metadata: Mapping[str, Any],
    row: int,
    counter: TokenCounter,
    duplicate_of: int | None,
) -> PairQuality:
    memo: dict[str, int] = {}  # both sides repeat the shared prefix: count each text once

    def cached(text: str) -> int:
        if text not in memo:
            memo[text] = counter(text)
        return memo[text]

    lengths = _turn_lengths(pair, cached)
    chosen_tokens = sum(length.chosen for length in lengths)
    rejected_tokens = sum(length.rejected for length in lengths)
    conversation_chosen = _conversation_tokens(pair.chosen, cached)
    conversation_rejected = _conversation_tokens(pair.rejected, cached)
    branch = metadata.get("branch_turn")
    if branch is not None and (not isinstance(branch, int) or isinstance(branch, bool)):
        raise UserInputError(
            f"row {row}: music_metadata.branch_turn must be an int, got {branch!r}"
        )
    originals = _str_list(metadata, "original_instructions", row)
    contrasts = _str_list(metadata, "contrast_instructions", row)
    turns = metadata.get("contrast_turns")
    if turns is None:  # not recorded: MUSIC contrasts consecutive turns from the branch
        turns = [(branch or 0) + k for k in range(len(originals))]
    if not isinstance(turns, list | tuple) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in turns
    ):
        raise UserInputError(
            f"row {row}: music_metadata.contrast_turns must be a list of ints, got {turns!r}"
        )
    if not len(originals) == len(contrasts) == len(turns):
        raise UserInputError(
            f"row {row}: music_metadata contrast_turns, original_instructions and "
            "contrast_instructions must have the same length; this row's metadata is corrupt"
        )
    return PairQuality(
        row=row,
        source_key=_source_key(pair, metadata),
        user_turns=max(pair.chosen.num_turns, pair.rejected.num_turns),
        branch_turn=branch if branch is not None else pair.branch_turn,
        differing_turns=tuple(length.turn for length in lengths),
        turn_lengths=tuple(lengths),
        chosen_tokens=chosen_tokens,
        rejected_tokens=rejected_tokens,
        length_diff=chosen_tokens - rejected_tokens,
        conversation_chosen=conversation_chosen,
        conversation_rejected=conversation_rejected,
        conversation_diff=conversation_chosen - conversation_rejected,
        truncated=_truncated(metadata, row),
        instruction_similarity=tuple(
            _similarity(t, o, c) for t, o, c in zip(turns, originals, contrasts, strict=True)
        ),
        duplicate_of=duplicate_of,
    )


def _failure_reason(metadata: Mapping[str, Any]) -> str:
    error = metadata.get("error") or "unknown"
    return str(error).split(":", 1)[0].strip() or "unknown"


def inspect_pairs(
    rows: Iterable[Mapping[str, Any] | PreferencePair],
    *,
    format: str = "auto",
    repair: bool = False,
    counter: TokenCounter | None = None,
    summary: Mapping[str, Any] | None = None,
) -> QualityReport:
    """Measure what a set of preference pairs teaches.

    Args:
        rows: ``PreferencePair`` objects or rows in any preference layout; rows with
            ``music_metadata.status == "failed"`` are counted by reason and left out.
        format / repair: passed to ``PreferencePair.from_record``.
        counter: ``str -> int`` token count (default ``count_tokens``, regex tokens).
        summary: a run summary dict (``music-aug augment --summary-json``) for refusals.

    Raises:
        UserInputError: a row cannot be read (the error names the row) or its
            ``music_metadata`` has the wrong shape.
    """
    count = counter or count_tokens
    measured: list[PairQuality] = []
    failures: Counter[str] = Counter()
    seen_pairs: dict[tuple[tuple[tuple[str, str], ...], ...], int] = {}
    total = 0
    for row, item in enumerate(rows):
        total += 1
        metadata: Mapping[str, Any] = {}
        if isinstance(item, PreferencePair):
            pair = item
        else:
            raw = item.get("music_metadata") if isinstance(item, Mapping) else None
            if raw is not None and not isinstance(raw, Mapping):
                raise UserInputError(f"row {row}: music_metadata must be an object, got {raw!r}")
            metadata = raw or {}
            if metadata.get("status", "ok") != "ok":
                failures[_failure_reason(metadata)] += 1
                continue
            pair = PreferencePair.from_record(item, format=format, repair=repair, row=row)
        key = _pair_key(pair)
        measured.append(_measure(pair, metadata, row, count, seen_pairs.get(key)))
        seen_pairs.setdefault(key, row)
    sources = Counter(p.source_key for p in measured)
    return QualityReport(
        rows=total,
        pairs=len(measured),
        failed_rows=sum(failures.values()),
        failures_by_reason=dict(sorted(failures.items())),
        token_count="regex" if counter is None else getattr(counter, "name", "custom"),
        answers=length_stats(
            [p.length_diff for p in measured], [p.chosen_tokens for p in measured]
        ),
        conversations=length_stats(
            [p.conversation_diff for p in measured], [p.conversation_chosen for p in measured]
        ),
        truncation=truncation_stats(measured),
        similarity=similarity_stats(measured),
        refusals=refusal_stats(summary),
        differing_turns=histogram(len(p.differing_turns) for p in measured),
        branch_turns=histogram(p.branch_turn for p in measured),
        user_turns=histogram(p.user_turns for p in measured),
        duplicate_pairs=sum(1 for p in measured if p.duplicate_of is not None),
        duplicate_sources=sum(n - 1 for n in sources.values()),
        per_pair=tuple(measured),
    )
