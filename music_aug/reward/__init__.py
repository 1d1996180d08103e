"""Bradley-Terry reward-model training and scoring (needs the ``train`` extra).

Importing this package is light: torch and transformers are imported by the functions
that need them, so ``import music_aug.reward`` works without the ``train`` extra and
fails with ``MissingDependencyError`` only when a model is loaded or trained.
"""

from music_aug.reward.config import TRUNCATION_POLICIES, RewardTrainingConfig, TruncationPolicy
from music_aug.reward.data import PairFeatures, TruncationStats, fold_system_message, tokenize_pairs
from music_aug.reward.flex import FLEX_ATTENTION
from music_aug.reward.loading import SMOLLM2_MODEL, load_model_and_tokenizer
from music_aug.reward.loss import bradley_terry_loss, pair_statistics
from music_aug.reward.presets import PRESETS, preset_config
from music_aug.reward.scoring import RewardModel
from music_aug.reward.smollm2 import load_smollm2_for_sequence_classification, smollm2_checkpoint
from music_aug.reward.training import TrainResult, train_reward_model
from music_aug.reward.varlen import VARLEN_ATTENTION, register_varlen_attention

__all__ = [
    "FLEX_ATTENTION",
    "PRESETS",
    "SMOLLM2_MODEL",
    "TRUNCATION_POLICIES",
    "VARLEN_ATTENTION",
    "PairFeatures",
    "RewardModel",
    "RewardTrainingConfig",
    "TrainResult",
    "TruncationPolicy",
    "TruncationStats",
    "bradley_terry_loss",
    "fold_system_message",
    "load_model_and_tokenizer",
    "load_smollm2_for_sequence_classification",
    "pair_statistics",
    "preset_config",
    "register_varlen_attention",
    "smollm2_checkpoint",
    "tokenize_pairs",
    "train_reward_model",
]
