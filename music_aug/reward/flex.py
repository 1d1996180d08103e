"""``segmented_flex``: the packed layout of ``segmented_varlen`` in one FlexAttention call.

``segmented_varlen`` runs one attention call per packed sequence and, for Gemma-2's
logit soft-capping, an explicit attention that holds each sequence's full score matrix.
This attention reads the same layout from ``position_ids`` (a run restarting at 0 is a
sequence, one restarting at ``p > 0`` a branch that also sees its sequence's first ``p``
keys: a shared prefix, ``PairCollator(share_prefix=True)``), turns it into one FlexAttention
block mask per packed batch and sliding window, and runs every sequence of the row in one
fused kernel, soft-capping in its ``score_mod`` (``transformers``' own flex integration,
compiled on first use). Rewards and gradients are those of the separate sequences.

Training with it needs CUDA: torch has no CPU backward for FlexAttention (the forward runs
on CPU, which is how the tests check the mask). Batches with an attention mask (padded
scoring batches) take ``segmented_varlen``'s fallback. This module does not pack batches.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FLEX_ATTENTION", "register_flex_attention", "segment_block_mask"]

FLEX_ATTENTION = "segmented_flex"
_CACHE = "_music_aug_block_mask"  # on the position_ids tensor, one per window


def segment_block_mask(position_ids: Any, sliding_window: int | None = None) -> Any:
    """The FlexAttention ``BlockMask`` of packed rows: query ``q`` sees key ``k`` when both
    belong to one sequence, ``k`` is not after ``q`` (by position) and inside the window,
    and ``k`` is in ``q``'s own run or in the sequence's first run before ``q``'s branch
    point.

    Args:
        position_ids: ``(rows, length)`` positions of packed rows (see the module docs).
        sliding_window: keys at most this many positions back (``None``: all).

    Raises:
        ValueError: a branch whose point lies past the end of its sequence's first run.
    """
    import torch
    from torch.nn.attention.flex_attention import create_block_mask

    from music_aug.reward.varlen import packed_runs

    packed_runs(position_ids)  # the same refusal as segmented_varlen's
    positions = position_ids.long()
    rows, length = positions.shape
    start = torch.ones_like(positions, dtype=torch.bool)
    start[:, 1:] = positions[:, 1:] - positions[:, :-1] != 1
    run = start.flatten().cumsum(0).view(rows, length) - 1  # run index, over all rows
    first = positions[start][run]  # each token's run's first position (0: a sequence)
    sequence = (start & (positions == 0)).flatten().cumsum(0).view(rows, length)
    window = length + 1 if sliding_window is None else int(sliding_window)

    def mask_mod(b: Any, h: Any, q: Any, k: Any) -> Any:
        pq, pk = positions[b, q], positions[b, k]
        seen = (run[b, q] == run[b, k]) | ((first[b, k] == 0) & (pk < first[b, q]))
        return (sequence[b, q] == sequence[b, k]) & (pk <= pq) & (pq - pk < window) & seen

    cuda = positions.device.type == "cuda"
    return create_block_mask(
        mask_mod, rows, None, length, length, device=positions.device, _compile=cuda
    )


def flex_attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    softcap: float | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """One FlexAttention call over packed rows (see the module docs)."""
    from transformers.integrations.flex_attention import flex_attention_forward as flex

    from music_aug.reward.varlen import per_batch, varlen_attention_forward

    position_ids = kwargs.get("position_ids")
    if attention_mask is not None or position_ids is None:
        return varlen_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, softcap, **kwargs
        )
    window = kwargs.get("sliding_window")
    mask = per_batch(
        position_ids, f"{_CACHE}_{window}", lambda: segment_block_mask(position_ids, window)
    )
    output, _ = flex(
        module, query, key, value, mask, scaling=scaling, softcap=softcap,
        dropout=dropout if module.training else 0.0,
    )  # fmt: skip
    return output, None


def register_flex_attention() -> str:
    """Register ``segmented_flex`` with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    from music_aug.reward.varlen import _varlen_mask

    AttentionInterface.register(FLEX_ATTENTION, flex_attention_forward)
    AttentionMaskInterface.register(FLEX_ATTENTION, _varlen_mask)
    return FLEX_ATTENTION
