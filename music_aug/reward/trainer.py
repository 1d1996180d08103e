"""Bradley-Terry reward-model training on ``transformers.Trainer``.

``RewardTrainer`` is a thin ``Trainer`` subclass: its own loss (chosen and rejected
sequences of a batch in one forward pass, see ``music_aug.reward.collate``), a
length-grouped sampler, and extra logged metrics (accuracy, mean margin, reward mean/std,
real tokens seen, padding fraction). Everything else (optimiser, schedule, mixed
precision, gradient checkpointing, accelerate / FSDP / DeepSpeed launching, checkpoints)
is the ``Trainer``'s. ``train_reward_model`` wires config, data and model together and
writes the output directory.

This module does not parse command lines (``music_aug.cli.train``) and does not score
new data (``music_aug.reward.scoring``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from music_aug.errors import MissingDependencyError
from music_aug.reward.collate import PairCollator
from music_aug.reward.config import RewardTrainingConfig, is_varlen_attention, packs_sequences
from music_aug.reward.flex import FLEX_ATTENTION
from music_aug.reward.loss import bradley_terry_loss, pair_statistics
from music_aug.reward.pooling import sequence_rewards
from music_aug.reward.precision import warn_if_updates_vanish
from music_aug.reward.varlen import VARLEN_ATTENTION

try:
    import torch
    from torch.utils.data import Sampler
    from transformers import Trainer
except ImportError:  # pragma: no cover - exercised only without the train extra
    raise MissingDependencyError("transformers", "train", "Reward-model training") from None

__all__ = ["LengthGroupedPairSampler", "RewardTrainer", "make_collator"]

logger = logging.getLogger(__name__)


class LengthGroupedPairSampler(Sampler[int]):
    """Random mega-batches of ``batch_size * mega_batch_factor`` pairs, sorted by length.

    Batches cut from a sorted mega-batch hold pairs of similar length, so padding stays
    small; the order of the batches is then shuffled (the batch holding the longest pair
    goes first, so an out-of-memory error shows at step one, and the one partial batch
    goes last, so the data loader's batch boundaries stay aligned). The permutation changes
    every epoch and is reproducible from ``seed`` - also when the whole data set fits in
    one mega-batch.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, mega_batch_factor: int, seed: int
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.mega_batch_factor = mega_batch_factor
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        mega = self.batch_size * max(1, self.mega_batch_factor)
        batches: list[list[int]] = []
        for start in range(0, len(order), mega):
            group = sorted(order[start : start + mega], key=lambda i: -self.lengths[i])
            batches += [
                group[k : k + self.batch_size] for k in range(0, len(group), self.batch_size)
            ]
        # Only the last mega-batch can end in a partial batch; keep it last.
        tail = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        if batches:
            longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b][0]])
            batches[0], batches[longest] = batches[longest], batches[0]
        return iter([index for batch in batches + tail for index in batch])


class RewardTrainer(Trainer):
    """``Trainer`` with the Bradley-Terry loss over ``PairCollator`` batches.

    Args:
        reward_config: the run's ``RewardTrainingConfig`` (loss and sampler options).
        *args: passed to ``transformers.Trainer``.
        **kwargs: passed to ``transformers.Trainer``.
    """

    def __init__(self, *args: Any, reward_config: RewardTrainingConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reward_config = reward_config
        self.loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean
        self.model_accepts_loss_kwargs = False
        self.real_tokens_seen = 0
        self.positions_seen = 0
        self.shared_tokens_seen = 0
        self.frozen_update_fraction: float | None = None
        self._window: dict[str, list[float]] = defaultdict(list)

    def create_optimizer(self, *args: Any, **kwargs: Any) -> Any:
        """The ``Trainer``'s optimizer, checked for half-precision weights it steps in place
        (``music_aug.reward.precision``; DeepSpeed's optimizer keeps float32 masters)."""
        optimizer = super().create_optimizer(*args, **kwargs)
        if not self.is_deepspeed_enabled:
            self.frozen_update_fraction = warn_if_updates_vanish(optimizer, self.args.learning_rate)
        return optimizer

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset: Any = train_dataset if train_dataset is not None else self.train_dataset
        if not self.reward_config.group_by_length:
            return super()._get_train_sampler(dataset)
        lengths = [feature.length for feature in dataset]
        return LengthGroupedPairSampler(
            lengths,
            self.args.per_device_train_batch_size,
            self.reward_config.mega_batch_factor,
            self.args.seed,
        )

    def _rewards(self, model: Any, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        rewards = sequence_rewards(model, inputs).float()
        pairs = inputs["margin"].shape[0]
        return rewards[:pairs], rewards[pairs:]

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        chosen, rejected = self._rewards(model, inputs)
        margin = inputs["margin"] if self.reward_config.margin_column else None
        loss = bradley_terry_loss(
            chosen, rejected, margin, self.reward_config.center_rewards_coefficient
        )
        if model.training:
            real = int(inputs["sequence_lengths"].sum())  # both sides in full, as TRL counts
            shared = inputs.get("shared_lengths")
            shared_tokens = int(shared.sum()) if shared is not None else 0
            positions = int(inputs["input_ids"].numel())
            self.real_tokens_seen += real
            self.positions_seen += positions
            self.shared_tokens_seen += shared_tokens
            self._window["padding_fraction"].append(1.0 - (real - shared_tokens) / positions)
            if shared is not None:  # tokens held once for both sides of their pair
                self._window["shared_prefix_fraction"].append(shared_tokens / real)
            self._window["loss_unscaled"].append(loss.item())
            for key, value in pair_statistics(chosen, rejected).items():
                self._window[key].append(value)
        if return_outputs:
            return loss, {"rewards_chosen": chosen, "rewards_rejected": rejected}
        return loss

    def token_counts(self) -> tuple[int, int, int]:
        """Real tokens, shared-prefix tokens and computed positions seen in training so far,
        summed over all processes (a collective: every process must call it)."""
        real, shared, positions = (
            self.real_tokens_seen,
            self.shared_tokens_seen,
            self.positions_seen,
        )
        if self.accelerator.num_processes > 1:
            local = torch.tensor([real, shared, positions], device=self.accelerator.device)
            real, shared, positions = self.accelerator.reduce(local, "sum").tolist()
        return real, shared, positions

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # every process logs each training step after the same micro-steps (the Trainer
        # gathers the loss there too), so the collective in token_counts is safe; the
        # window means (padding, accuracy, ...) stay this process's
        if "loss" in logs and self._window:
            for key, values in self._window.items():
                if key != "loss_unscaled":
                    logs[key] = sum(values) / len(values)
            logs["tokens_seen"] = float(self.token_counts()[0])
            self._window.clear()
        super().log(logs, start_time)

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Loss, accuracy, mean margin and reward mean/std over the whole eval set."""
        del ignore_keys
        dataloader = self.get_eval_dataloader(eval_dataset)
        model: Any = self.model
        was_training = model.training
        model.eval()
        all_chosen: list[torch.Tensor] = []
        all_rejected: list[torch.Tensor] = []
        margins: list[torch.Tensor] = []
        with torch.no_grad():
            for inputs in dataloader:
                inputs = self._prepare_inputs(inputs)
                chosen, rejected = self._rewards(model, inputs)
                gather = self.accelerator.gather_for_metrics  # all processes' pairs
                all_chosen.append(gather(chosen).cpu())
                all_rejected.append(gather(rejected).cpu())
                margins.append(gather(inputs["margin"].float()).cpu())
        model.train(was_training)
        chosen_t, rejected_t = torch.cat(all_chosen), torch.cat(all_rejected)
        margin = torch.cat(margins) if self.reward_config.margin_column else None
        loss = bradley_terry_loss(
            chosen_t, rejected_t, margin, self.reward_config.center_rewards_coefficient
        )
        metrics = {"loss": loss.item(), **pair_statistics(chosen_t, rejected_t)}
        metrics = {f"{metric_key_prefix}_{key}": value for key, value in metrics.items()}
        self.log(metrics)
        return metrics


def make_collator(
    config: RewardTrainingConfig, pad_token_id: int, attn_implementation: str | None = None
) -> PairCollator:
    """The collator for the attention that runs (packed rows under padding-free mode).

    Args:
        config: the run's config.
        pad_token_id: the tokenizer's pad id.
        attn_implementation: the attention the model actually uses, when the config left
            it to the run (``None``: the config's).
    """
    attn = attn_implementation or config.attn_implementation
    packed = packs_sequences(config.padding_free, attn)
    single_row = packed and is_varlen_attention(attn)
    share = single_row and config.share_prefix and attn in (VARLEN_ATTENTION, FLEX_ATTENTION)
    return PairCollator(
        pad_token_id=pad_token_id, packed=packed, single_row=single_row, share_prefix=share
    )
