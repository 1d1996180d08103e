"""Padded and packed batches: rewards do not depend on padding side or layout."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from music_aug.conversation import PreferencePair  # noqa: E402
from music_aug.reward.collate import PairCollator, pack_rows  # noqa: E402
from music_aug.reward.data import tokenize_pairs  # noqa: E402
from music_aug.reward.pooling import sequence_rewards  # noqa: E402
from music_aug.reward.scoring import RewardModel  # noqa: E402
from music_aug.reward.varlen import register_varlen_attention  # noqa: E402

from .conftest import tiny_model  # noqa: E402


def test_pack_rows_first_fit_decreasing() -> None:
    lengths = [5, 3, 8, 2, 2, 6]
    rows = pack_rows(lengths, capacity=8)
    assert sorted(i for row in rows for i in row) == list(range(6))
    assert all(sum(lengths[i] for i in row) <= 8 for row in rows)
    assert rows == [[2], [5, 3], [0, 1], [4]]  # 26 tokens need 4 rows of 8


def test_collator_layouts() -> None:
    from music_aug.reward.data import PairFeatures

    features = [PairFeatures([1, 2, 3], [4, 5]), PairFeatures([6], [7, 8, 9, 10])]
    padded = PairCollator(pad_token_id=0)(features)
    assert padded["input_ids"].tolist() == [[1, 2, 3, 0], [6, 0, 0, 0], [4, 5, 0, 0], [7, 8, 9, 10]]
    assert padded["end_index"].tolist() == [2, 4, 9, 15]
    left = PairCollator(pad_token_id=0, padding_side="left")(features)
    assert left["input_ids"][0].tolist() == [0, 1, 2, 3]
    assert left["position_ids"][0].tolist() == [0, 0, 1, 2]
    packed = PairCollator(pad_token_id=0, packed=True)(features)
    assert "attention_mask" not in packed
    flat = packed["input_ids"].reshape(-1)
    assert flat[packed["end_index"]].tolist() == [3, 6, 5, 10]
    assert packed["sequence_lengths"].sum().item() == 10
    single = PairCollator(pad_token_id=0, packed=True, single_row=True)(features)
    assert single["input_ids"].shape == (1, 10)


@pytest.mark.parametrize("varlen", [False, True], ids=["library-attention", "segmented_varlen"])
@pytest.mark.parametrize("kind", ["llama", "gemma2"])
def test_rewards_identical_across_padding_side_and_packing(
    kind: str, varlen: bool, tokenizer: Any, hh_pairs: list[PreferencePair]
) -> None:
    model = tiny_model(kind, tokenizer)
    if kind == "gemma2":
        model.config.attn_logit_softcapping = 5.0  # small cap: the tanh really bites
    features, _ = tokenize_pairs(hh_pairs[:6], tokenizer, max_length=256)
    with torch.no_grad():
        reference = sequence_rewards(model, PairCollator(tokenizer.pad_token_id)(features))
    if varlen:
        model.set_attn_implementation(register_varlen_attention())
    results = []
    for collator in (
        PairCollator(pad_token_id=tokenizer.pad_token_id),
        PairCollator(pad_token_id=tokenizer.pad_token_id, padding_side="left"),
        PairCollator(pad_token_id=tokenizer.pad_token_id, packed=True),
        PairCollator(pad_token_id=tokenizer.pad_token_id, packed=True, single_row=True),
    ):
        with torch.no_grad():
            results.append(sequence_rewards(model, collator(features)))
    for other in results:
        torch.testing.assert_close(other, reference, atol=1e-5, rtol=1e-4)
    # and each reward equals scoring the sequence alone, without any padding
    alone = []
    for ids in [f.chosen_ids for f in features] + [f.rejected_ids for f in features]:
        batch = PairCollator(pad_token_id=tokenizer.pad_token_id).batch_sequences([ids])
        with torch.no_grad():
            alone.append(sequence_rewards(model, batch))
    torch.testing.assert_close(torch.cat(alone), results[0], atol=1e-5, rtol=1e-4)


def test_reward_model_padding_side_invariant(tokenizer: Any, hh_pairs: list) -> None:
    model = tiny_model("llama", tokenizer)
    right = RewardModel(model, tokenizer, max_length=256)
    left = RewardModel(model, tokenizer, max_length=256, padding_side="left")
    chosen_r, rejected_r = right.score_pairs(hh_pairs[:6], batch_size=4)
    chosen_l, rejected_l = left.score_pairs(hh_pairs[:6], batch_size=3)
    assert chosen_l == pytest.approx(chosen_r, abs=1e-5)
    assert rejected_l == pytest.approx(rejected_r, abs=1e-5)
    assert len(set(chosen_r)) == 6  # a constant model would pass trivially


def test_segmented_varlen_honours_gemma2_sliding_window(tokenizer: Any, hh_pairs: list) -> None:
    model = tiny_model("gemma2", tokenizer)  # sliding_window=64 on alternate layers
    features, _ = tokenize_pairs(hh_pairs[:3], tokenizer, max_length=160)
    assert all(len(f.chosen_ids) > 64 for f in features)  # the window really cuts
    with torch.no_grad():
        reference = sequence_rewards(model, PairCollator(tokenizer.pad_token_id)(features))
        model.set_attn_implementation(register_varlen_attention())
        packed = PairCollator(tokenizer.pad_token_id, packed=True, single_row=True)(features)
        torch.testing.assert_close(sequence_rewards(model, packed), reference, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_flex_attention_packs_one_row_with_the_padded_rewards(
    tokenizer: Any, hh_pairs: list[PreferencePair]
) -> None:
    """flex_attention is a packing attention: one row, transformers' per-sequence block
    mask from the restarting position_ids, soft-capping in its score_mod (forward only:
    torch has no CPU backward for flex attention; training with it is for CUDA)."""
    from music_aug.reward.config import RewardTrainingConfig
    from music_aug.reward.trainer import make_collator

    config = RewardTrainingConfig(model="tiny", output_dir="/unused", max_length=256)
    collator = make_collator(config, tokenizer.pad_token_id, "flex_attention")
    assert collator.packed and collator.single_row
    model = tiny_model("gemma2", tokenizer)
    model.config.attn_logit_softcapping = 5.0  # small cap: the tanh really bites
    features, _ = tokenize_pairs(hh_pairs[:4], tokenizer, max_length=256)
    with torch.no_grad():
        reference = sequence_rewards(model, PairCollator(tokenizer.pad_token_id)(features))
        model.set_attn_implementation("flex_attention")
        packed = sequence_rewards(model, collator(features))
    torch.testing.assert_close(packed, reference, atol=1e-5, rtol=1e-4)
