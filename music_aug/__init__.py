"""music_aug: MUSIC (MUlti-Step Instruction Contrast) augmentation for multi-turn reward models.

Import cost is kept low on purpose: nothing here imports torch, transformers, vllm or
llama_cpp (other RLHF code imports us).
"""

from music_aug.augmenter import MusicAugmenter
from music_aug.backends.base import Backend, ChatRequest, ChatResult, SamplingParams
from music_aug.backends.cache import CachedBackend
from music_aug.backends.llamacpp import LlamaCppBackend
from music_aug.backends.openai import OpenAIBackend
from music_aug.backends.registry import create_backend
from music_aug.backends.vllm import VLLMBackend
from music_aug.config import MusicConfig
from music_aug.conversation import Conversation, Message, PreferencePair, Turn
from music_aug.errors import (
    AugmentationError,
    BackendError,
    BackendUnusableError,
    ConfigError,
    InvalidConversationError,
    MissingDependencyError,
    ModelBehaviorError,
    MusicAugError,
    TemplateError,
    UnknownFormatError,
    UserInputError,
)
from music_aug.estimate import RunEstimate, estimate_run
from music_aug.evaluation import (
    PairwiseJudge,
    Scorer,
    evaluate_pairs,
    evaluate_rewardbench,
    run_bon_experiment,
)
from music_aug.pairs import PairBuilder, mix
from music_aug.perturb import InstructionPerturber
from music_aug.quality import QualityReport, inspect_pairs
from music_aug.selection import TurnSelector
from music_aug.simulate import AssistantSimulator, UserSimulator
from music_aug.summary import Prices, RunSummary

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 - grouped by topic
    "__version__",
    # data model
    "Conversation",
    "Message",
    "PreferencePair",
    "Turn",
    # MUSIC transform
    "AssistantSimulator",
    "InstructionPerturber",
    "MusicAugmenter",
    "MusicConfig",
    "PairBuilder",
    "RunSummary",
    # cost
    "Prices",
    "RunEstimate",
    "estimate_run",
    "TurnSelector",
    "UserSimulator",
    "mix",
    # backends
    "Backend",
    "ChatRequest",
    "ChatResult",
    "SamplingParams",
    "CachedBackend",
    "LlamaCppBackend",
    "OpenAIBackend",
    "VLLMBackend",
    "create_backend",
    # evaluation
    "PairwiseJudge",
    "Scorer",
    "evaluate_pairs",
    "evaluate_rewardbench",
    "run_bon_experiment",
    # pair quality
    "QualityReport",
    "inspect_pairs",
    # errors
    "AugmentationError",
    "BackendError",
    "BackendUnusableError",
    "ConfigError",
    "InvalidConversationError",
    "MissingDependencyError",
    "ModelBehaviorError",
    "MusicAugError",
    "TemplateError",
    "UnknownFormatError",
    "UserInputError",
]
