"""``segmented_varlen``: padding-free attention without flash-attention (CPU, any GPU).

Flash-attention's varlen kernels let a packed row of several sequences attend
sequence-by-sequence; without them transformers builds a dense block-diagonal mask over
the whole packed row and computes every masked block too. This attention function reads
the sequence starts from ``position_ids`` (every sequence restarts at 0) and runs
``scaled_dot_product_attention`` causally on each sequence's slice, so a packed batch costs
exactly what its sequences cost: no padding in the linear layers, no wasted attention.
Gemma-2's logit soft-capping and sliding window are honoured (with a small explicit
attention for that segment).

Batches with an attention mask (padded batches, e.g. scoring) fall back to the library's
``sdpa`` path (``eager`` when soft-capping is needed). This module does not pack batches
(``music_aug.reward.collate``).
"""

from __future__ import annotations

import itertools
from typing import Any

__all__ = ["VARLEN_ATTENTION", "register_varlen_attention"]

VARLEN_ATTENTION = "segmented_varlen"


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
    import torch
    import torch.nn.functional as F

    length = query.shape[2]
    windowed = sliding_window is not None and length > sliding_window
    if softcap is None and not windowed:
        return F.scaled_dot_product_attention(
            query, key, value, is_causal=True, scale=scaling, dropout_p=dropout
        )
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    weights = torch.matmul(query, key.transpose(2, 3)) * scale
    if softcap is not None:
        weights = torch.tanh(weights / softcap) * softcap
    rows = torch.arange(length, device=query.device)
    allowed = rows[:, None] >= rows[None, :]
    if windowed:
        allowed &= rows[:, None] - rows[None, :] < int(sliding_window or 0)
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
    rows = []
    # unbind / split, not slicing: the backward of a slice writes a zero-filled gradient as
    # large as the whole row for every segment (profiled in issue 14: fill_/copy_/add_
    # took more time than the attention itself); split's backward is one concatenation.
    for row, (q_row, k_row, v_row) in enumerate(
        zip(query.unbind(0), key.unbind(0), value.unbind(0), strict=True)
    ):
        sizes = _segment_sizes(position_ids[min(row, position_ids.shape[0] - 1)])
        segments = [
            _segment_attention(
                q[None],
                k[None],
                v[None],
                scaling=scaling,
                softcap=softcap,
                sliding_window=kwargs.get("sliding_window"),
                dropout=drop,
            )
            for q, k, v in zip(
                q_row.split(sizes, dim=1),
                k_row.split(sizes, dim=1),
                v_row.split(sizes, dim=1),
                strict=True,
            )
        ]
        rows.append(torch.cat(segments, dim=2))
    return torch.cat(rows, dim=0).transpose(1, 2).contiguous(), None


def _segment_sizes(positions: Any) -> list[int]:
    """Lengths of the sequences of one packed row (each restarts at position 0)."""
    import torch

    starts = torch.nonzero(positions == 0).flatten().tolist()
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    return [end - start for start, end in itertools.pairwise([*starts, positions.shape[0]])]


def _eager_fallback(
    module: Any, query: Any, key: Any, value: Any, mask: Any, scaling: Any, softcap: float
) -> tuple[Any, None]:
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv

    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    weights = torch.tanh(torch.matmul(query, key.transpose(2, 3)) * scale / softcap) * softcap
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
    """Register ``segmented_varlen`` with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention_forward)
    AttentionMaskInterface.register(VARLEN_ATTENTION, _varlen_mask)
    return VARLEN_ATTENTION
