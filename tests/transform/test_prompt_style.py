"""prompt_style (issue 15): the rule, explicit templates, provenance, fingerprint, schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from music_aug import MusicAugmenter, MusicConfig
from music_aug.backends.cache import CachedBackend
from music_aug.backends.fake import EchoBackend
from music_aug.errors import ConfigError
from music_aug.pairs import output_table
from music_aug.prompt_style import resolve_prompt_style
from music_aug.templates import load_template


class NamedEcho(EchoBackend):
    """An EchoBackend that reports another backend kind (an API provider, vLLM)."""

    def __init__(self, name: str) -> None:
        super().__init__(model=f"{name}-model")
        self.name = name


@pytest.mark.parametrize(
    ("kind", "style"),
    [("llamacpp", "completion"), ("fake", "completion"), ("openai", "chat"), ("vllm", "chat"),
     ("my-backend", "chat")],
)  # fmt: skip
def test_auto_follows_the_backend_kind(kind: str, style: str) -> None:
    assert resolve_prompt_style("auto", kind) == style
    assert resolve_prompt_style("auto", NamedEcho(kind)) == style
    assert resolve_prompt_style("completion", kind) == "completion"
    assert resolve_prompt_style("chat", kind) == "chat"


def test_a_cached_backend_keeps_the_inner_kind(tmp_path: Path) -> None:
    cached = CachedBackend(NamedEcho("openai"), tmp_path / "c.sqlite")
    assert MusicAugmenter(MusicConfig(), cached).prompt_style == "chat"


def test_unknown_style_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="prompt_style"):
        MusicConfig(prompt_style="fewshot")


def _kinds(backend: EchoBackend) -> set[str]:
    return {request.kind for request in backend.requests}


def test_chat_style_sends_only_chat_requests_and_is_recorded(make_record: Any) -> None:
    backend = NamedEcho("openai")
    augmenter = MusicAugmenter(MusicConfig(max_turns=3), backend)
    rows = augmenter.augment_records([make_record(2), make_record(3, "d")])
    assert _kinds(backend) == {"chat"}
    metas = [row["music_metadata"] for row in rows]
    assert [m["status"] for m in metas] == ["ok", "ok"]
    assert {m["prompt_style"] for m in metas} == {"chat"}
    assert metas[0]["template_hashes"]["contrast"] == load_template("contrast_chat").hash
    assert metas[0]["seed_honoured"] is True
    table = output_table(
        {k: [r[k] for r in rows] for k in ("chosen", "rejected", "music_metadata")}
    )
    assert str(table.schema.field("music_metadata").type.field("prompt_style").type) == "string"
    assert str(table.schema.field("music_metadata").type.field("seed_honoured").type) == "bool"


def test_completion_style_on_the_fakes_and_explicit_templates_win(make_record: Any) -> None:
    backend = EchoBackend()
    MusicAugmenter(MusicConfig(max_turns=2), backend).augment_records([make_record(2)])
    assert "completion" in _kinds(backend)
    chat = NamedEcho("openai")
    config = MusicConfig(max_turns=2, contrast_template="contrast_fewshot")
    augmenter = MusicAugmenter(config, chat)
    assert augmenter.prompt_style == "chat"
    assert augmenter.perturber.template.name == "contrast_fewshot"
    assert augmenter.user.template.name == "user_chat"


def test_style_changes_the_fingerprint() -> None:
    backend = NamedEcho("openai")
    auto = MusicAugmenter(MusicConfig(), backend).fingerprint
    assert MusicAugmenter(MusicConfig(prompt_style="chat"), backend).fingerprint != auto
    assert (
        MusicAugmenter(MusicConfig(prompt_style="completion"), backend).fingerprint
        != MusicAugmenter(MusicConfig(prompt_style="chat"), backend).fingerprint
    )
