"""Prompt templates: loading, rendering and content hashes.

Every prompt MUSIC sends is a ``.jinja`` file. The package's own templates live in
``music_aug/templates/`` and are rendered by one ``jinja2.Environment`` with
``StrictUndefined`` (a misspelt variable is an error, never an empty string). Templates a
user passes as a file path go through a ``SandboxedEnvironment`` with the same settings.

A template declares how its output is sent to the model with two top-level constants:

* ``{% set kind = "completion" %}`` (the default): the rendered text is a raw completion
  prompt. Small models (SmolLM2-135M) follow few-shot completion prompts far better than
  chat instructions (issue 3).
* ``{% set kind = "chat" %}``: the rendered text is the user message; an optional
  ``{% set system %}...{% endset %}`` block becomes the system message.

``{% set stop = ["\\n"] %}`` declares stop strings. ``kind`` and ``stop`` must be literal
constants (they are read from the template's syntax tree once, not per render).

This module does not build requests or talk to backends; see ``perturb.py`` and
``simulate.py``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

from music_aug.errors import TemplateError

__all__ = [
    "PACKAGE_TEMPLATES",
    "PromptTemplate",
    "RenderedPrompt",
    "load_template",
    "template_hash",
]

_TEMPLATE_DIR = Path(__file__).parent / "templates"
PACKAGE_TEMPLATES = (
    "contrast_fewshot",
    "contrast_chat",
    "user_fewshot",
    "user_chat",
    "assistant_system",
    "assistant_fewshot",
)


def _oneline(value: str) -> str:
    """Collapse all whitespace (newlines included) into single spaces."""
    return " ".join(str(value).split())


def _clip(value: str, limit: int = 400) -> str:
    """Keep at most ``limit`` characters, marking a cut with an ellipsis."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _configure(env: jinja2.Environment) -> jinja2.Environment:
    env.filters["oneline"] = _oneline
    env.filters["clip"] = _clip
    return env


_PACKAGE_ENV = _configure(
    jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
)
_USER_ENV = _configure(
    SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
)


def template_hash(source: str) -> str:
    """First 16 hex digits of the sha256 of a template's source text."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """One rendered template: a completion ``text``, or a chat user message + ``system``."""

    kind: str
    text: str
    system: str | None
    stop: tuple[str, ...]


class PromptTemplate:
    """A loaded template with its declared ``kind``, ``stop`` strings and content hash.

    Attributes:
        name: package template name or the user file's path.
        source: the template text.
        hash: ``template_hash(source)``; goes into provenance and the augmenter fingerprint.
        kind: ``"completion"`` or ``"chat"``.
        stop: stop strings declared by the template.
    """

    def __init__(self, name: str, source: str, *, sandboxed: bool) -> None:
        self.name = name
        self.source = source
        self.hash = template_hash(source)
        env = _USER_ENV if sandboxed else _PACKAGE_ENV
        try:
            tree = env.parse(source)
            self._template = env.from_string(source)
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(
                f"template {name!r} does not parse: {error.message} (line {error.lineno})"
            ) from None
        constants = _top_level_constants(tree)
        kind = constants.get("kind", "completion")
        if kind not in ("completion", "chat"):
            raise TemplateError(f"template {name!r} sets kind={kind!r}; use 'completion' or 'chat'")
        stop = constants.get("stop", ())
        if isinstance(stop, str):
            stop = (stop,)
        if not isinstance(stop, list | tuple) or not all(isinstance(s, str) for s in stop):
            raise TemplateError(f"template {name!r}: stop must be a list of strings")
        self.kind: str = kind
        self.stop: tuple[str, ...] = tuple(stop)

    def render(self, **variables: Any) -> RenderedPrompt:
        """Render with ``variables``; unknown or missing variables raise ``TemplateError``."""
        try:
            if self.kind == "completion":
                return RenderedPrompt(
                    "completion", self._template.render(variables), None, self.stop
                )
            module = self._template.make_module(variables)
        except jinja2.UndefinedError as error:
            raise TemplateError(
                f"template {self.name!r} uses an undefined variable: {error.message}. "
                f"Available: {sorted(variables)}"
            ) from None
        except jinja2.exceptions.SecurityError as error:
            raise TemplateError(f"template {self.name!r} is not allowed: {error}") from None
        system = getattr(module, "system", None)
        system_text = str(system).strip() if system is not None else None
        return RenderedPrompt("chat", str(module).strip(), system_text or None, self.stop)

    def __repr__(self) -> str:
        return f"PromptTemplate({self.name!r}, kind={self.kind!r}, hash={self.hash!r})"


def _top_level_constants(tree: nodes.Template) -> dict[str, Any]:
    constants: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
            name = node.target.name
            if name in ("kind", "stop"):
                try:
                    if not isinstance(node.node, nodes.Expr):
                        raise nodes.Impossible()
                    constants[name] = node.node.as_const()
                except nodes.Impossible:
                    raise TemplateError(
                        f"'{name}' must be set to a literal constant, e.g. "
                        '{% set kind = "chat" %}'
                    ) from None
    return constants


_CACHE: dict[str, PromptTemplate] = {}


def load_template(spec: str | Path) -> PromptTemplate:
    """Load a package template by name (``"contrast_fewshot"``) or a user file by path.

    A ``Path``, or a string containing a path separator or ending in ``.jinja``, is read
    from disk and rendered in the sandbox. Package templates are cached per process.
    """
    text = str(spec)
    is_file = isinstance(spec, Path) or "/" in text or "\\" in text or text.endswith(".jinja")
    if not is_file:
        if text not in _CACHE:
            path = _TEMPLATE_DIR / f"{text}.jinja"
            if not path.is_file():
                raise TemplateError(
                    f"no package template named {text!r}; choose one of {PACKAGE_TEMPLATES} "
                    "or pass the path of your own .jinja file"
                )
            _CACHE[text] = PromptTemplate(text, path.read_text(encoding="utf-8"), sandboxed=False)
        return _CACHE[text]
    path = Path(text).expanduser()
    if not path.is_file():
        raise TemplateError(f"template file {str(path)!r} does not exist")
    return PromptTemplate(str(path), path.read_text(encoding="utf-8"), sandboxed=True)
