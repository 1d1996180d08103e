"""The frozen configuration of a reward-model training run.

``RewardTrainingConfig`` holds what the user asked for. Values computed at run time
(resolved padding-free mode, tokenizer pad token, truncation counts) live in the trainer and
in ``TrainResult``, never written back here. This module does not know about presets (see
``music_aug.reward.presets``) and does not import torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from music_aug.errors import ConfigError

__all__ = [
    "TRUNCATION_POLICIES",
    "RewardTrainingConfig",
    "TruncationPolicy",
    "is_varlen_attention",
    "packs_sequences",
]

TruncationPolicy = Literal["drop_oldest_turns", "truncate_left", "filter"]
TRUNCATION_POLICIES: tuple[str, ...] = ("drop_oldest_turns", "truncate_left", "filter")


def is_varlen_attention(name: str | None) -> bool:
    """Whether attention ``name`` runs per packed sequence: flash-attention's varlen kernels,
    ``segmented_varlen``, or ``flex_attention`` (transformers builds a per-sequence block
    mask from the restarting ``position_ids``; it trains on CUDA only, torch has no CPU
    backward for it)."""
    name = name or ""
    packed = ("segmented_varlen", "segmented_flex", "flex_attention")
    return name.startswith("flash_attention") or name in packed


def packs_sequences(padding_free: bool | str, attn_implementation: str | None) -> bool:
    """Whether batches are packed: an explicit ``padding_free``, else under varlen attention."""
    if padding_free == "auto":
        return is_varlen_attention(attn_implementation)
    return bool(padding_free)


class RewardTrainingConfig(BaseModel):
    """Everything a Bradley-Terry reward-model run needs; frozen.

    Attributes:
        model: hub id or local path of a model ``AutoModelForSequenceClassification`` can
            load (a causal LM checkpoint gets a fresh one-output ``score`` head).
        preset: name of the preset this config came from (informational).
        output_dir: where the trained model, tokenizer, config and ``metrics.json`` go.
        max_length: token budget of one conversation (chosen and rejected each).
        truncation: what to do with a side longer than ``max_length``:
            ``drop_oldest_turns`` removes whole earliest turns (after any system message)
            from both sides until both fit, left-truncating only when the final turn alone
            is too long; ``truncate_left`` keeps the last ``max_length`` tokens;
            ``filter`` drops the pair. Every touched pair is counted and logged.
        repair: read rows leniently (merge consecutive same-role messages, drop empty
            ones, as ``PreferencePair.from_record(repair=True)``); default strict, so a
            malformed row raises an error naming it.
        margin_column: optional dataset column with a per-pair margin ``m`` used in
            ``-logsigmoid(r_chosen - r_rejected - m)``.
        center_rewards_coefficient: weight of ``mean((r_chosen + r_rejected)^2)``
            (Eisenstein et al., 2023); ``None`` disables it.
        fold_system: fold a system message into the first user message; ``"auto"`` folds
            only when the chat template rejects the system role (Gemma-2).
        learning_rate: peak learning rate.
        per_device_batch_size: preference pairs per device per micro-step (each pair is two
            sequences in the same forward pass).
        gradient_accumulation_steps: micro-steps per optimizer step.
        num_epochs: passes over the data (ignored when ``max_steps`` > 0).
        max_steps: optimizer steps; ``-1`` means use ``num_epochs``.
        warmup_ratio: fraction of the steps spent warming up the learning rate.
        lr_scheduler: any ``transformers`` scheduler name ("cosine", "linear", "constant"...).
        weight_decay: AdamW weight decay.
        max_grad_norm: gradient clipping norm.
        bf16: train in bfloat16 mixed precision (GPU presets).
        dtype: dtype to load the weights in ("float32", "bfloat16", "auto").
        gradient_checkpointing: recompute activations in the backward pass.
        attn_implementation: "eager", "sdpa", "flash_attention_2", "flex_attention" (CUDA),
            "segmented_varlen" (``music_aug.reward.varlen``: padding-free attention without
            flash-attention, one SDPA call per packed sequence), or "segmented_flex" (CUDA,
            ``music_aug.reward.flex``: that layout in one FlexAttention call); ``None``: the
            fastest correct choice for the hardware (``music_aug.reward.autotune``) when the
            model is loaded by name, the model's own when it is passed in memory.
        padding_free: pack sequences with ``position_ids`` instead of padding them;
            ``"auto"`` packs under flash-attention, flex attention and the segmented
            attentions (attention restricted to each sequence) and pads otherwise.
        share_prefix: under ``segmented_varlen`` and ``segmented_flex``, hold each pair's
            shared leading tokens (the common conversation before the answers differ) once
            per packed row instead of twice; rewards and gradients are those of the
            separate sequences (``music_aug.reward.collate``). Other attentions cannot read
            that layout, so it is off for them.
        group_by_length: sort pairs by length inside random mega-batches so batches need
            little padding.
        mega_batch_factor: batches per mega-batch for ``group_by_length``.
        lora: train LoRA adapters plus the ``score`` head instead of all weights (needs
            the ``lora`` extra, i.e. peft).
        lora_r: LoRA rank.
        lora_alpha: LoRA alpha.
        lora_dropout: LoRA dropout.
        seed: seed of initialisation, shuffling and dropout.
        logging_steps: optimizer steps between log lines.
        eval_steps: steps between evaluations when an eval set is given (``None``: at the
            end only).
        save_checkpoints: keep intermediate checkpoints (off: only the final model).
        dataloader_num_workers: DataLoader worker processes.
        report_to: ``transformers`` integrations to report to ("none", "wandb", ...).
        disable_tqdm: hide the progress bar.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model: str
    preset: str | None = None
    output_dir: str = "reward_model"
    max_length: int = Field(2048, gt=8)
    truncation: TruncationPolicy = "drop_oldest_turns"
    repair: bool = False
    margin_column: str | None = None
    center_rewards_coefficient: float | None = Field(None, ge=0)
    fold_system: bool | Literal["auto"] = "auto"
    learning_rate: float = Field(1e-5, gt=0)
    per_device_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_epochs: float = Field(1.0, gt=0)
    max_steps: int = -1
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    lr_scheduler: str = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    bf16: bool = False
    dtype: str = "float32"
    gradient_checkpointing: bool = False
    attn_implementation: str | None = None
    padding_free: bool | Literal["auto"] = "auto"
    share_prefix: bool = True
    group_by_length: bool = True
    mega_batch_factor: int = Field(50, ge=1)
    lora: bool = False
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    seed: int = 0
    logging_steps: int = Field(10, ge=1)
    eval_steps: int | None = None
    save_checkpoints: bool = False
    dataloader_num_workers: int = Field(0, ge=0)
    report_to: str = "none"
    disable_tqdm: bool = False

    @classmethod
    def build(cls, **values: Any) -> RewardTrainingConfig:
        """Construct, turning pydantic errors into a ``ConfigError`` that names the field."""
        try:
            return cls(**values)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first.get("loc", ())) or "config"
            raise ConfigError(
                f"invalid reward-training option {field!r}: {first['msg']} "
                f"(got {first.get('input')!r})"
            ) from None

    def effective_batch_size(self, world_size: int = 1) -> int:
        """Pairs per optimizer step across ``world_size`` processes."""
        return self.per_device_batch_size * self.gradient_accumulation_steps * world_size

    def resolved_padding_free(self) -> bool:
        """Whether to pack sequences under the configured attention (see ``packs_sequences``)."""
        return packs_sequences(self.padding_free, self.attn_implementation)

    def varlen_attention(self) -> bool:
        """Whether the configured attention runs per packed sequence."""
        return is_varlen_attention(self.attn_implementation)
