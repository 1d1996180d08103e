"""``segmented_varlen``: padding-free attention without flash-attention (CPU, any GPU).

Flash-attention's varlen kernels let a packed row of several sequences attend
sequence-by-sequence; without them transformers builds a dense block-diagonal mask over
the whole packed row and computes every masked block too. This attention function reads
the sequence starts from ``position_ids`` (every sequence restarts at 0) and runs
``scaled_dot_product_attention`` causally on each sequence's slice, so a packed batch costs
exactly what its sequences cost: no padding in the linear layers, no wasted attention.
Gemma-2's logit soft-capping and sliding window are honoured (with a small explicit
attention for that segment).

Shared prefixes (``PairCollator(share_prefix=True)``): a run of positions that restarts at
``p > 0`` instead of 0 is a branch of the current sequence. Its queries attend to that
sequence's first ``p`` keys and causally to its own, which is what they would see as a
separate sequence ``prefix + branch``; the shared prefix is computed once.

Batches with an attention mask (padded batches, e.g. scoring) fall back to the library's
``sdpa`` path (``eager`` when soft-capping is needed). This module does not pack batches
(``music_aug.reward.collate``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["VARLEN_ATTENTION", "register_varlen_attention"]

VARLEN_ATTENTION = "segmented_varlen"
_RUNS_CACHE = "_music_aug_runs"  # on the position_ids tensor


def _segment_attention(
    query: Any,
    key: Any,
    value: Any,
    *,
    scaling: float | None,
    softcap: float | None,
    sliding_window: int | None,
    dropout: float,
) -> Any:
    """Causal attention of one sequence; with more keys than queries, the queries are the
    last ones (a branch after a shared prefix: query ``i`` sits at key position
    ``offset + i``)."""
    import torch
    import torch.nn.functional as F

    length, keys = query.shape[2], key.shape[2]
    offset = keys - length
    windowed = sliding_window is not None and keys > sliding_window
    if softcap is None and not windowed and offset == 0:
        return F.scaled_dot_product_attention(
            query, key, value, is_causal=True, scale=scaling, dropout_p=dropout
        )
    rows = torch.arange(offset, keys, device=query.device)
    columns = torch.arange(keys, device=query.device)
    allowed = rows[:, None] >= columns[None, :]
    if windowed:
        allowed &= rows[:, None] - columns[None, :] < int(sliding_window or 0)
    if softcap is None:
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=allowed, scale=scaling, dropout_p=dropout
        )
    weights = _softcapped_scores(query, key, scaling, softcap)
    weights = weights.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=dropout > 0)
    return torch.matmul(weights, value)


def varlen_attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    softcap: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention over packed rows, one causal SDPA call per sequence (see module docs)."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    if attention_mask is not None or position_ids is None:
        if softcap is None:
            return sdpa_attention_forward(
                module, query, key, value, attention_mask, dropout=dropout, scaling=scaling
            )
        return _eager_fallback(module, query, key, value, attention_mask, scaling, softcap)
    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    drop = dropout if module.training else 0.0
    attend: dict[str, Any] = {
        "scaling": scaling,
        "softcap": softcap,
        "sliding_window": kwargs.get("sliding_window"),
        "dropout": drop,
    }
    rows = []
    # unbind / split, not slicing: the backward of a slice writes a zero-filled gradient as
    # large as the whole row for every segment (profiled in issue 14: fill_/copy_/add_
    # took more time than the attention itself); split's backward is one concatenation.
    # A branch slices its prefix keys out of one sequence's piece only (cost: that piece).
    layout = packed_runs(position_ids)
    for row, (q_row, k_row, v_row) in enumerate(
        zip(query.unbind(0), key.unbind(0), value.unbind(0), strict=True)
    ):
        runs = layout[min(row, len(layout) - 1)]
        sizes = [length for length, _ in runs]
        pieces = zip(
            q_row.split(sizes, dim=1), k_row.split(sizes, dim=1), v_row.split(sizes, dim=1),
            strict=True,
        )  # fmt: skip
        outputs = []
        base: Any = None  # keys and values of the current sequence (packed_runs checked it)
        for (q, k, v), (_, first) in zip(pieces, runs, strict=True):
            if first == 0:  # a sequence of its own
                base = (k, v)
            else:  # a branch after the first `first` tokens of the current sequence
                k = torch.cat([base[0][:, :first], k], dim=1)
                v = torch.cat([base[1][:, :first], v], dim=1)
            outputs.append(_segment_attention(q[None], k[None], v[None], **attend))
        rows.append(torch.cat(outputs, dim=2))
    return torch.cat(rows, dim=0).transpose(1, 2).contiguous(), None


def per_batch(position_ids: Any, name: str, build: Callable[[], Any]) -> Any:
    """``build()``, once per batch: cached on the ``position_ids`` tensor, which every layer
    (and a recomputed forward) receives, and built again if it was changed in place."""
    version, value = getattr(position_ids, name, (None, None))
    if value is None or version != position_ids._version:
        value = build()
        setattr(position_ids, name, (position_ids._version, value))
    return value


def packed_runs(position_ids: Any) -> list[list[tuple[int, int]]]:
    """``_runs`` of every row of ``position_ids``, checked and read once per batch
    (``per_batch``): the device-to-host copy the lengths need happens once per forward,
    not once per layer.

    Raises:
        ValueError: a branch whose point lies past the end of its sequence's first run.
    """
    return per_batch(position_ids, _RUNS_CACHE, lambda: [_checked(row) for row in position_ids])


def _checked(positions: Any) -> list[tuple[int, int]]:
    runs = _runs(positions)
    base = 0
    for size, first in runs:
        if first == 0:
            base = size
        elif first >= base:
            raise ValueError(
                f"position_ids branch at {first} off a sequence shorter than that: "
                "pack shared prefixes with PairCollator(share_prefix=True)"
            )
    return runs


def _runs(positions: Any) -> list[tuple[int, int]]:
    """``(length, first position)`` of each run of consecutive positions in a packed row: a
    run starting at 0 is a sequence, one starting at ``p > 0`` a branch (shared prefix)."""
    import torch

    starts = torch.nonzero(positions[1:] - positions[:-1] != 1).flatten() + 1
    starts = torch.cat([starts.new_zeros(1), starts])
    # one transfer for both lists (a single device sync on CUDA)
    found = torch.cat([starts, positions[starts]]).tolist()
    begins, firsts = found[: len(found) // 2], found[len(found) // 2 :]
    ends = [*begins[1:], positions.shape[0]]
    return [(end - begin, first) for begin, end, first in zip(begins, ends, firsts, strict=True)]


def _softcapped_scores(query: Any, key: Any, scaling: float | None, softcap: float) -> Any:
    """Gemma-2's attention logits: ``softcap * tanh(q k^T * scale / softcap)``."""
    import torch

    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return torch.tanh(torch.matmul(query, key.transpose(2, 3)) * scale / softcap) * softcap


def _eager_fallback(
    module: Any, query: Any, key: Any, value: Any, mask: Any, scaling: Any, softcap: float
) -> tuple[Any, None]:
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv

    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    weights = _softcapped_scores(query, key, scaling, softcap)
    lowest = torch.finfo(weights.dtype).min  # not -inf: fully masked pad rows stay finite
    if mask is None:
        length = query.shape[2]
        causal = torch.ones(length, length, dtype=torch.bool, device=query.device).tril()
        weights = weights.masked_fill(~causal, lowest)
    elif mask.dtype == torch.bool:
        weights = weights.masked_fill(~mask[..., : key.shape[2]], lowest)
    else:
        weights = weights + mask[..., : key.shape[2]]
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def _varlen_mask(**kwargs: Any) -> Any:
    """No mask for packed rows (segments come from position_ids); sdpa's mask otherwise."""
    if kwargs.get("attention_mask") is None:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(**kwargs)


def register_varlen_attention() -> str:
    """Register ``segmented_varlen`` with transformers (idempotent); returns its name.

    Also registers ``segmented_flex`` (``music_aug.reward.flex``), which reads the same
    layout, so a config or saved model may name either."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    from music_aug.reward.flex import register_flex_attention

    register_flex_attention()
    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention_forward)
    AttentionMaskInterface.register(VARLEN_ATTENTION, _varlen_mask)
    return VARLEN_ATTENTION
