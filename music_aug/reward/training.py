"""``train_reward_model``: config + preference data in, trained reward model directory out.

Light to import (torch and transformers are imported when training starts). The output
directory holds a model ``AutoModelForSequenceClassification.from_pretrained`` loads (LoRA
adapters are merged first), the tokenizer, ``training_config.json`` (the config used) and
``metrics.json`` (final metrics, truncation counts, throughput, log history).

This module does not define the loss or the batching (``music_aug.reward.trainer``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from music_aug.errors import ConfigError, MissingDependencyError
from music_aug.reward.config import RewardTrainingConfig
from music_aug.reward.data import TruncationStats, tokenize_pairs
from music_aug.reward.loading import ensure_pad_token, load_model_and_tokenizer
from music_aug.reward.precision import require_bf16_device

__all__ = ["TrainResult", "train_reward_model"]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        output_dir: where the model was saved (``None`` when ``save=False``).
        metrics: final metrics (train loss, eval metrics, tokens/s, padding fraction...).
        truncation: what the truncation policy did to the training pairs.
        eval_truncation: the same for the eval pairs, if any.
        log_history: the ``Trainer``'s log lines.
        model: the trained model (LoRA merged), in memory.
        tokenizer: its tokenizer.
    """

    output_dir: Path | None
    metrics: dict[str, Any]
    truncation: TruncationStats
    eval_truncation: TruncationStats | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)
    model: Any = None
    tokenizer: Any = None


def _apply_lora(model: Any, config: RewardTrainingConfig) -> Any:
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError:
        raise MissingDependencyError("peft", "lora", "LoRA reward-model training") from None
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        modules_to_save=["score"],
    )
    return get_peft_model(model, lora)


def training_arguments(config: RewardTrainingConfig, has_eval: bool) -> Any:
    import torch
    from transformers import TrainingArguments

    evaluate_during = has_eval and config.eval_steps is not None
    names = {item.name for item in dataclasses.fields(TrainingArguments)}
    # transformers 5 renamed gradient checkpointing to activation checkpointing
    prefix = "activation" if "activation_checkpointing" in names else "gradient"
    checkpointing: dict[str, Any] = {
        f"{prefix}_checkpointing": config.gradient_checkpointing,
        f"{prefix}_checkpointing_kwargs": {"use_reentrant": False},
    }
    return TrainingArguments(
        output_dir=config.output_dir,
        per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type=config.lr_scheduler,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        bf16=config.bf16,
        **checkpointing,
        logging_steps=config.logging_steps,
        eval_strategy="steps" if evaluate_during else "no",
        eval_steps=config.eval_steps if evaluate_during else None,
        save_strategy="steps" if config.save_checkpoints else "no",
        seed=config.seed,
        report_to=config.report_to,
        disable_tqdm=config.disable_tqdm,
        remove_unused_columns=False,
        dataloader_num_workers=config.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        # without an accelerator, say so: only then does accelerate join the processes of
        # a launcher (torchrun) into one gloo group instead of training a copy in each
        use_cpu=not _has_accelerator(),
        include_num_input_tokens_seen="no",
    )


def _has_accelerator() -> bool:
    """Whether torch sees a GPU or another accelerator (CUDA, ROCm, XPU, MPS, ...)."""
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    if accelerator is not None:
        return bool(accelerator.is_available())
    return bool(torch.cuda.is_available())


def train_reward_model(
    config: RewardTrainingConfig,
    train_dataset: Iterable[Any],
    eval_dataset: Iterable[Any] | None = None,
    *,
    model: Any = None,
    tokenizer: Any = None,
    save: bool = True,
) -> TrainResult:
    """Train a Bradley-Terry reward model.

    Args:
        config: the run's configuration.
        train_dataset: preference rows (TRL conversational pairs, HH text, ... or
            ``PreferencePair`` objects); a ``datasets.Dataset`` or any iterable of rows.
        eval_dataset: optional held-out rows, evaluated at the end (and every
            ``config.eval_steps`` steps when set).
        model: an in-memory sequence-classification model to train instead of loading
            ``config.model`` (tests, custom architectures).
        tokenizer: its tokenizer (required with ``model``).
        save: write the output directory.

    Returns:
        A ``TrainResult``; the metrics include ``train_real_tokens_per_second`` (both
        sides of every pair in full, as TRL counts), ``train_padding_fraction`` (padded
        positions over computed ones), ``train_shared_prefix_fraction`` (tokens held
        once for both sides of their pair, over all) and, when the optimizer steps
        bf16/fp16 weights in place, ``train_frozen_update_fraction`` (the share of them
        a step of the learning rate cannot change; above 1% it is also logged as a
        warning, see ``music_aug.reward.precision``).

    Raises:
        ConfigError: ``bf16=True`` on a machine without a bfloat16 GPU, a flex attention
            without CUDA, or another invalid option.
    """
    try:
        from transformers import set_seed

        from music_aug.reward.trainer import RewardTrainer, make_collator
    except ImportError:
        raise MissingDependencyError("transformers", "train", "Reward-model training") from None
    if config.bf16:
        require_bf16_device()
    set_seed(config.seed)
    loaded = model is None
    if model is None:
        model, tokenizer = load_model_and_tokenizer(
            config.model, dtype=config.dtype, attn_implementation=config.attn_implementation
        )
    elif tokenizer is None:
        raise ValueError("pass the tokenizer together with an in-memory model")
    attn = _attention(config, model, loaded)
    ensure_pad_token(tokenizer, model)
    options: dict[str, Any] = {
        "max_length": config.max_length,
        "truncation": config.truncation,
        "fold_system": config.fold_system,
        "margin_column": config.margin_column,
        "repair": config.repair,
    }
    train_features, stats = tokenize_pairs(train_dataset, tokenizer, **options)
    logger.info("training pairs: %s", stats.format())
    eval_features, eval_stats = None, None
    if eval_dataset is not None:
        eval_features, eval_stats = tokenize_pairs(eval_dataset, tokenizer, **options)
        logger.info("eval pairs: %s", eval_stats.format())
    if config.lora:
        model = _apply_lora(model, config)
    trainer = RewardTrainer(
        model=model,
        args=training_arguments(config, eval_features is not None),
        data_collator=make_collator(config, tokenizer.pad_token_id, attn),
        train_dataset=train_features,
        eval_dataset=eval_features,
        processing_class=tokenizer,
        reward_config=config,
    )
    started = time.perf_counter()
    output = trainer.train()
    elapsed = time.perf_counter() - started
    metrics: dict[str, Any] = dict(output.metrics)
    metrics["attn_implementation"] = attn
    real, shared, positions = trainer.token_counts()  # all processes together
    metrics["train_real_tokens"] = real
    metrics["train_real_tokens_per_second"] = real / max(elapsed, 1e-9)
    metrics["train_padding_fraction"] = 1.0 - (real - shared) / max(positions, 1)
    metrics["train_shared_prefix_fraction"] = shared / max(real, 1)
    if trainer.frozen_update_fraction is not None:  # half-precision weights stepped in place
        metrics["train_frozen_update_fraction"] = trainer.frozen_update_fraction
    if eval_features is not None:
        metrics.update(trainer.evaluate())
    trained: Any = trainer.model
    if config.lora:
        trained = trained.merge_and_unload()
    result = TrainResult(
        output_dir=Path(config.output_dir) if save else None,
        metrics=metrics,
        truncation=stats,
        eval_truncation=eval_stats,
        log_history=list(trainer.state.log_history),
        model=trained,
        tokenizer=tokenizer,
    )
    if save:
        _save(trainer, result, config)
    return result


def _attention(config: RewardTrainingConfig, model: Any, loaded: bool) -> str:
    """Set and return the attention that runs: the config's, else the hardware default
    (``music_aug.reward.autotune``) for a model loaded by name, else the model's own."""
    import torch

    from music_aug.reward.autotune import default_attention
    from music_aug.reward.flex import FLEX_ATTENTION
    from music_aug.reward.varlen import register_varlen_attention

    attn = config.attn_implementation
    if attn is None and loaded:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        attn = default_attention(model.config.model_type, device, model.dtype)
    if attn is None:
        return str(getattr(model.config, "_attn_implementation", None) or "eager")
    if attn in ("flex_attention", FLEX_ATTENTION) and not torch.cuda.is_available():
        raise ConfigError(
            f"attn_implementation={attn!r} trains on CUDA only (torch has no CPU backward for "
            "FlexAttention): use 'segmented_varlen' here, or leave it unset for the default"
        )
    register_varlen_attention()
    if getattr(model.config, "_attn_implementation", None) != attn:
        model.set_attn_implementation(attn)
    logger.info("attention: %s", attn)
    return attn


def _save(trainer: Any, result: TrainResult, config: RewardTrainingConfig) -> None:
    directory = Path(config.output_dir)
    if config.lora:
        if trainer.is_world_process_zero():
            result.model.save_pretrained(directory)
            result.tokenizer.save_pretrained(directory)
    else:
        trainer.save_model(str(directory))  # gathers FSDP / ZeRO-3 shards
    if not trainer.is_world_process_zero():
        return
    (directory / "training_config.json").write_text(
        json.dumps(config.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8"
    )
    payload = {
        "metrics": result.metrics,
        "truncation": result.truncation.to_dict(),
        "eval_truncation": result.eval_truncation.to_dict() if result.eval_truncation else None,
        "log_history": result.log_history,
    }
    (directory / "metrics.json").write_text(
        json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8"
    )
