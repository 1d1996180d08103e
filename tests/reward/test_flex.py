"""``segmented_flex``: the shared-prefix packed layout in one FlexAttention call.

Forward only: torch has no CPU backward for FlexAttention, so training with it is checked
on a GPU (``benchmarks/gpu/bench_gemma2.py --attn segmented_flex``). The mask itself is
checked here against the dense rule, and the rewards against padded separate sequences.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from music_aug.conversation import PreferencePair  # noqa: E402
from music_aug.reward.collate import PairCollator  # noqa: E402
from music_aug.reward.data import tokenize_pairs  # noqa: E402
from music_aug.reward.flex import FLEX_ATTENTION, segment_block_mask  # noqa: E402
from music_aug.reward.pooling import sequence_rewards  # noqa: E402
from music_aug.reward.varlen import register_varlen_attention  # noqa: E402

from .conftest import tiny_model  # noqa: E402


def _dense(mask: Any) -> list[list[int]]:
    length = mask.shape[-1]
    rows = torch.arange(length)
    grid = mask.mask_mod(torch.tensor(0), torch.tensor(0), rows[:, None], rows[None, :])
    return grid.int().tolist()


def test_block_mask_of_two_sequences_and_a_branch() -> None:
    # sequence A = [0 1 2 3], its branch after 2 tokens = [2 3], sequence B = [0 1]
    positions = torch.tensor([[0, 1, 2, 3, 2, 3, 0, 1]])
    assert _dense(segment_block_mask(positions)) == [
        [1, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 1, 0, 0, 0],  # the branch sees A's first 2 keys, not A's own 2 and 3
        [1, 1, 0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1, 1],
    ]
    windowed = _dense(segment_block_mask(positions, sliding_window=2))
    assert windowed[3] == [0, 0, 1, 1, 0, 0, 0, 0] and windowed[5] == [0, 0, 0, 0, 1, 1, 0, 0]
    assert windowed[4] == [0, 1, 0, 0, 1, 0, 0, 0]  # position 2 sees position 1 (A's)
    with pytest.raises(ValueError, match="share_prefix"):
        segment_block_mask(torch.tensor([[0, 1, 5, 6]]))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["llama", "gemma2"])
def test_segmented_flex_gives_the_rewards_of_separate_sequences(
    kind: str, tokenizer: Any, gemma_tokenizer: Any, hh_pairs: list[PreferencePair]
) -> None:
    """Shared prefixes in one flex call; Gemma-2 with a biting soft-cap and a sliding window
    (64) shorter than the shared prefixes."""
    from music_aug.reward.config import RewardTrainingConfig
    from music_aug.reward.trainer import make_collator

    tok = gemma_tokenizer if kind == "gemma2" else tokenizer
    model = tiny_model(kind, tok)
    if kind == "gemma2":
        model.config.attn_logit_softcapping = 5.0
    features, _ = tokenize_pairs(hh_pairs[:4], tok, max_length=256)
    config = RewardTrainingConfig(model="tiny", output_dir="/unused", max_length=256)
    collator = make_collator(config, tok.pad_token_id, FLEX_ATTENTION)
    assert collator.share_prefix
    batch = collator(features)
    assert max(batch["shared_lengths"].tolist()) > 64
    with torch.no_grad():
        reference = sequence_rewards(model, PairCollator(tok.pad_token_id)(features))
        model.set_attn_implementation(register_varlen_attention())
        varlen = sequence_rewards(model, batch)
        model.set_attn_implementation(FLEX_ATTENTION)
        flex = sequence_rewards(model, batch)
    torch._dynamo.reset()  # flex attention compiled here; later tests start clean
    torch.testing.assert_close(varlen, reference, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(flex, reference, atol=1e-5, rtol=1e-4)
