"""Batches of pairs -> one forward pass: padded rows or packed (padding-free) rows.

Both layouts put all chosen sequences first, then all rejected ones, so one forward pass
scores the whole batch and ``rewards[:n]`` / ``rewards[n:]`` are the two sides. Each batch
carries ``end_index``: the flat position (row * width + column) of every sequence's last
real token, which is where its reward is read.

* Padded: one sequence per row, right (or left) padding, explicit ``position_ids`` counted
  from each sequence's first real token, so left and right padding give the same rewards.
* Packed: sequences placed first-fit-decreasing into rows as wide as the longest sequence
  (or into a single row for flash-attention varlen kernels); ``position_ids`` restart at 0
  for every sequence and no attention mask is passed, which transformers turns into a
  block-diagonal mask (sdpa/eager) or ``cu_seqlens`` (flash-attention). The unused tail of
  a row is filled with pad tokens forming their own dummy sequence.
* Shared prefix (``share_prefix``, one packed row, ``segmented_varlen`` and
  ``segmented_flex`` only): a pair's
  chosen and rejected sequences usually begin with the same conversation, so the row holds
  that prefix once: ``[chosen ids | rejected ids after the prefix]``, the rejected part's
  ``position_ids`` continuing from the prefix length ``p`` (``p, p+1, ...``). Under causal
  attention the prefix's states do not depend on what follows, so attending the rejected
  part to the chosen side's first ``p`` positions gives exactly the rewards (and
  gradients) of the two separate sequences, without computing the prefix twice.
  ``segmented_varlen`` and ``segmented_flex`` read this layout from the positions (a run
  restarting at ``p > 0`` branches off the current sequence's first ``p`` tokens); other
  attentions would not, so the trainer turns it on only for those two.
  ``sequence_lengths`` still counts both full sides (the tokens trained on, as TRL counts
  them); ``shared_lengths`` holds each pair's ``p``.

This module does not tokenise or shuffle; the sampler that groups lengths lives in
``music_aug.reward.trainer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from music_aug.reward.data import PairFeatures

__all__ = ["PairCollator", "pack_rows", "shared_prefix_length"]


def shared_prefix_length(chosen: Sequence[int], rejected: Sequence[int]) -> int:
    """Leading tokens two sequences share, leaving each at least one token of its own (its
    reward is read at its last token, which must not be a shared one)."""
    limit = min(len(chosen), len(rejected)) - 1
    length = 0
    while length < limit and chosen[length] == rejected[length]:
        length += 1
    return max(length, 0)


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit-decreasing bin packing: sequence indices per row (no row over capacity)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        length = lengths[index]
        for row, free in enumerate(room):
            if free >= length:
                rows[row].append(index)
                room[row] -= length
                break
        else:
            rows.append([index])
            room.append(capacity - length)
    return rows


@dataclass(frozen=True)
class PairCollator:
    """Turns a list of ``PairFeatures`` into the tensors of one forward pass.

    Attributes:
        pad_token_id: id written into padding positions.
        packed: pack sequences into shared rows instead of padding each one.
        single_row: with ``packed``, put everything into one row (flash-attention varlen).
        padding_side: ``"right"`` or ``"left"`` for padded batches.
        pad_to_multiple_of: round the row width up to a multiple of this (tensor cores).
        share_prefix: with ``packed`` and ``single_row``, hold each pair's shared prefix once
            (see the module docs; for ``segmented_varlen`` and ``segmented_flex`` only).
    """

    pad_token_id: int
    packed: bool = False
    single_row: bool = False
    padding_side: Literal["right", "left"] = "right"
    pad_to_multiple_of: int | None = None
    share_prefix: bool = False

    def __post_init__(self) -> None:
        if self.share_prefix and not (self.packed and self.single_row):
            raise ValueError("share_prefix needs packed=True and single_row=True")

    def __call__(self, features: Sequence[PairFeatures]) -> dict[str, Any]:
        import torch

        if self.share_prefix:
            batch = self._shared(features)
        else:
            sequences = [f.chosen_ids for f in features] + [f.rejected_ids for f in features]
            batch = self.batch_sequences(sequences)
        batch["margin"] = torch.tensor([f.margin for f in features], dtype=torch.float32)
        return batch

    def batch_sequences(self, sequences: Sequence[Sequence[int]]) -> dict[str, Any]:
        """Tensors for one forward pass over ``sequences`` (in this layout), plus lengths."""
        import torch

        lengths = [len(ids) for ids in sequences]
        if self.packed:
            batch = self._packed(sequences, lengths)
        else:
            batch = self._padded(sequences, lengths)
        batch["sequence_lengths"] = torch.tensor(lengths, dtype=torch.long)
        return batch

    def _width(self, width: int) -> int:
        multiple = self.pad_to_multiple_of
        return width if not multiple else -(-width // multiple) * multiple

    def _padded(self, sequences: Sequence[Sequence[int]], lengths: list[int]) -> dict[str, Any]:
        import torch

        width = self._width(max(lengths))
        count = len(sequences)
        input_ids = torch.full((count, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((count, width), dtype=torch.long)
        position_ids = torch.zeros((count, width), dtype=torch.long)
        end_index = torch.empty(count, dtype=torch.long)
        for row, (ids, length) in enumerate(zip(sequences, lengths, strict=True)):
            start = width - length if self.padding_side == "left" else 0
            input_ids[row, start : start + length] = torch.tensor(list(ids), dtype=torch.long)
            attention_mask[row, start : start + length] = 1
            position_ids[row, start : start + length] = torch.arange(length)
            end_index[row] = row * width + start + length - 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "end_index": end_index,
        }

    def _shared(self, features: Sequence[PairFeatures]) -> dict[str, Any]:
        """One row: per pair the chosen ids, then the rejected ids after the shared prefix."""
        import torch

        count = len(features)
        shared = [shared_prefix_length(f.chosen_ids, f.rejected_ids) for f in features]
        lengths = [len(f.chosen_ids) for f in features] + [len(f.rejected_ids) for f in features]
        width = self._width(sum(lengths) - sum(shared))
        input_ids = torch.full((1, width), self.pad_token_id, dtype=torch.long)
        position_ids = torch.zeros((1, width), dtype=torch.long)
        end_index = torch.empty(2 * count, dtype=torch.long)
        cursor = 0
        for index, (feature, prefix) in enumerate(zip(features, shared, strict=True)):
            parts = ((index, feature.chosen_ids, 0), (count + index, feature.rejected_ids, prefix))
            for slot, ids, start in parts:
                end = cursor + len(ids) - start
                input_ids[0, cursor:end] = torch.tensor(list(ids[start:]), dtype=torch.long)
                position_ids[0, cursor:end] = torch.arange(start, len(ids))
                end_index[slot] = end - 1
                cursor = end
        position_ids[0, cursor:] = torch.arange(width - cursor)  # the dummy pad sequence
        return {
            "input_ids": input_ids,
            "position_ids": position_ids,
            "end_index": end_index,
            "sequence_lengths": torch.tensor(lengths, dtype=torch.long),
            "shared_lengths": torch.tensor(shared, dtype=torch.long),
        }

    def _packed(self, sequences: Sequence[Sequence[int]], lengths: list[int]) -> dict[str, Any]:
        import torch

        if self.single_row:
            rows = [list(range(len(sequences)))]
            width = self._width(sum(lengths))
        else:
            width = self._width(max(lengths))
            rows = pack_rows(lengths, width)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        end_index = torch.empty(len(sequences), dtype=torch.long)
        for row, members in enumerate(rows):
            cursor = 0
            for index in members:
                length = lengths[index]
                input_ids[row, cursor : cursor + length] = torch.tensor(
                    list(sequences[index]), dtype=torch.long
                )
                position_ids[row, cursor : cursor + length] = torch.arange(length)
                end_index[index] = row * width + cursor + length - 1
                cursor += length
            # the tail is a dummy sequence of pads with its own positions 0..k-1
            position_ids[row, cursor:] = torch.arange(width - cursor)
        return {"input_ids": input_ids, "position_ids": position_ids, "end_index": end_index}
