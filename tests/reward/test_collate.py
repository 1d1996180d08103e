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
    torch._dynamo.reset()  # flex attention compiled here; later tests start clean
    torch.testing.assert_close(packed, reference, atol=1e-5, rtol=1e-4)


def test_shared_prefix_layout_holds_the_prefix_once() -> None:
    from music_aug.reward.collate import shared_prefix_length
    from music_aug.reward.data import PairFeatures

    assert shared_prefix_length([1, 2, 3, 4], [1, 2, 9]) == 2
    assert shared_prefix_length([1, 2, 3], [1, 2, 3]) == 2  # each keeps its last token
    assert shared_prefix_length([5, 6], [7, 6]) == 0
    features = [PairFeatures([1, 2, 3, 4], [1, 2, 9]), PairFeatures([5, 6], [7, 6])]
    batch = PairCollator(pad_token_id=0, packed=True, single_row=True, share_prefix=True)(features)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 9, 5, 6, 7, 6]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 2, 0, 1, 0, 1]]
    assert batch["end_index"].tolist() == [3, 6, 4, 8]  # chosen ends, then rejected ends
    assert batch["sequence_lengths"].tolist() == [4, 2, 3, 2]  # both sides in full
    assert batch["shared_lengths"].tolist() == [2, 0]
    with pytest.raises(ValueError, match="single_row"):
        PairCollator(pad_token_id=0, packed=True, share_prefix=True)


@pytest.mark.parametrize("kind", ["llama", "gemma2"])
def test_shared_prefix_gives_the_rewards_and_gradients_of_separate_sequences(
    kind: str, tokenizer: Any, gemma_tokenizer: Any, hh_pairs: list[PreferencePair]
) -> None:
    """Same rewards and the same gradient of the Bradley-Terry loss for every weight as
    padded separate sequences; Gemma-2 with a biting soft-cap and a sliding window (64)
    shorter than the sequences, so both are exercised across the shared prefix."""
    from music_aug.reward.collate import shared_prefix_length
    from music_aug.reward.loss import bradley_terry_loss

    tok = gemma_tokenizer if kind == "gemma2" else tokenizer
    model = tiny_model(kind, tok)
    if kind == "gemma2":
        model.config.attn_logit_softcapping = 5.0
    features, _ = tokenize_pairs(hh_pairs[:6], tok, max_length=256)
    shared = [shared_prefix_length(f.chosen_ids, f.rejected_ids) for f in features]
    assert min(shared) > 0 and max(shared) > 64  # real shared conversations, past the window

    def rewards_and_grads(collator: PairCollator) -> tuple[Any, dict[str, Any]]:
        model.zero_grad()
        rewards = sequence_rewards(model, collator(features))
        bradley_terry_loss(rewards[: len(features)], rewards[len(features) :]).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return rewards.detach(), grads

    reference, reference_grads = rewards_and_grads(PairCollator(tok.pad_token_id))
    model.set_attn_implementation(register_varlen_attention())
    shared_collator = PairCollator(
        tok.pad_token_id, packed=True, single_row=True, share_prefix=True
    )
    batch = shared_collator(features)
    assert batch["input_ids"].shape[1] == sum(f.length for f in features) - sum(shared)
    rewards, grads = rewards_and_grads(shared_collator)
    torch.testing.assert_close(rewards, reference, atol=1e-5, rtol=1e-4)
    assert set(grads) == set(reference_grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference_grads[name], atol=1e-5, rtol=1e-3, msg=name)


def test_a_branch_off_a_shorter_sequence_is_refused(tokenizer: Any) -> None:
    model = tiny_model("llama", tokenizer)
    model.set_attn_implementation(register_varlen_attention())
    batch = {
        "input_ids": torch.tensor([[5, 6, 7, 8]]),
        "position_ids": torch.tensor([[0, 1, 5, 6]]),  # branch at 5 off a 2-token sequence
        "end_index": torch.tensor([1, 3]),
    }
    with pytest.raises(ValueError, match="share_prefix"), torch.no_grad():
        sequence_rewards(model, batch)


def test_packed_runs_are_read_once_per_batch_not_once_per_layer(
    tokenizer: Any, hh_pairs: list[PreferencePair], monkeypatch: pytest.MonkeyPatch
) -> None:
    from music_aug.reward import varlen

    calls = []
    original = varlen._runs
    monkeypatch.setattr(varlen, "_runs", lambda row: calls.append(1) or original(row))
    model = tiny_model("llama", tokenizer)  # 2 layers
    model.set_attn_implementation(register_varlen_attention())
    features, _ = tokenize_pairs(hh_pairs[:3], tokenizer, max_length=128)
    batch = PairCollator(tokenizer.pad_token_id, packed=True, single_row=True)(features)
    with torch.no_grad():
        sequence_rewards(model, batch)
    assert len(calls) == 1  # one row, two layers
    positions = torch.tensor([[0, 1, 2, 0, 1]])
    assert varlen.packed_runs(positions) == [[(3, 0), (2, 0)]]
    positions[0, 3] = 3  # changed in place: read again, not a stale layout
    assert varlen.packed_runs(positions) == [[(4, 0), (1, 1)]]
