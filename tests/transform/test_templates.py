"""Prompt templates: golden renders, StrictUndefined, the sandbox, hashes, declared kinds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from music_aug.errors import TemplateError
from music_aug.templates import PACKAGE_TEMPLATES, load_template, template_hash

GOLDEN = Path(__file__).parent / "golden"
HISTORY = [
    {"role": "user", "content": "How do I braise pork belly?"},
    {"role": "assistant", "content": "Brown it, then simmer it in soy sauce,\nsugar and wine."},
]
VARIABLES = {
    "contrast_fewshot": {"instruction": "Now make it\nspicier.", "history": HISTORY},
    "contrast_chat": {"instruction": "Now make it spicier.", "history": HISTORY},
    "user_fewshot": {"history": HISTORY},
    "user_chat": {"history": HISTORY},
    "assistant_system": {"history": [*HISTORY, {"role": "user", "content": "Thanks!"}]},
    "assistant_fewshot": {
        "history": [
            {"role": "system", "content": "Be brief."},
            *HISTORY,
            {"role": "user", "content": "Thanks!"},
        ]
    },
}


def _render(name: str) -> str:
    template = load_template(name)
    rendered = template.render(**VARIABLES[name])
    return (
        f"kind: {rendered.kind}\nstop: {list(rendered.stop)!r}\n"
        f"--- system\n{rendered.system}\n--- text\n{rendered.text}\n"
    )


@pytest.mark.parametrize("name", PACKAGE_TEMPLATES)
def test_golden_render(name: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("MUSIC_AUG_UPDATE_GOLDEN"):
        path.write_text(_render(name), encoding="utf-8")
    assert _render(name) == path.read_text(encoding="utf-8"), (
        f"{name}.jinja renders differently from {path}; if the change is intended, rerun with "
        "MUSIC_AUG_UPDATE_GOLDEN=1 and review the diff"
    )


def test_completion_templates_end_with_the_cue_and_stop_at_newline() -> None:
    contrast = load_template("contrast_fewshot").render(**VARIABLES["contrast_fewshot"])
    assert contrast.text.endswith("Original: Now make it spicier.\nDifferent:")
    assert contrast.stop == ("\n",)
    user = load_template("user_fewshot").render(**VARIABLES["user_fewshot"])
    assert user.text.endswith("sugar and wine.\nUser:")


def test_strict_undefined_names_the_variable() -> None:
    with pytest.raises(TemplateError, match="instruction"):
        load_template("contrast_fewshot").render(history=HISTORY)


def test_user_template_file_is_sandboxed_and_hashed(tmp_path: Path) -> None:
    path = tmp_path / "mine.jinja"
    path.write_text(
        '{% set kind = "chat" %}{% set system %}Be brief.{% endset %}Q: {{ instruction }}'
    )
    template = load_template(path)
    rendered = template.render(instruction="hi", history=[])
    assert (rendered.kind, rendered.system, rendered.text) == ("chat", "Be brief.", "Q: hi")
    assert template.hash == template_hash(path.read_text())
    path.write_text("{{ instruction.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        load_template(path).render(instruction="x")
    path.write_text("changed {{ instruction }}")
    assert load_template(path).hash != template.hash


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ('{% set kind = "poem" %}x', "kind"),
        ("{% set kind = other %}x", "literal constant"),
        ("{% if %}", "does not parse"),
        ("{% set stop = [1] %}x", "stop"),
    ],
)
def test_bad_templates_raise_template_error(tmp_path: Path, source: str, match: str) -> None:
    path = tmp_path / "bad.jinja"
    path.write_text(source)
    with pytest.raises(TemplateError, match=match):
        load_template(path)


def test_unknown_names_and_missing_files() -> None:
    with pytest.raises(TemplateError, match="no package template"):
        load_template("nope")
    with pytest.raises(TemplateError, match="does not exist"):
        load_template("/does/not/exist.jinja")
