"""Every error music_aug raises on purpose.

Two families, kept apart so callers can tell whose fault a failure is:

* ``UserInputError`` and subclasses: the caller's data or configuration is wrong. The
  message names the row / message / field and says how to fix it.
* ``ModelBehaviorError`` and ``BackendError``: an LLM misbehaved or a backend failed after
  its retries. These end up as ``status="failed"`` rows under ``on_error="mark"``.

This module does not decide *policy* (raise, mark or skip); the augmenter does.
"""

from __future__ import annotations

__all__ = [
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


class MusicAugError(Exception):
    """Root of every error music_aug raises on purpose."""


class UserInputError(MusicAugError, ValueError):
    """The caller's data or configuration is wrong; the message says how to fix it."""


class InvalidConversationError(UserInputError):
    """A conversation breaks the role-order or content rules.

    Attributes:
        index: index of the offending message (``None`` when the problem is global).
        row: index or id of the input row, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        row: int | str | None = None,
    ) -> None:
        self.index = index
        self.row = row
        self.detail = message
        where = []
        if row is not None:
            where.append(f"row {row!r}")
        if index is not None:
            where.append(f"message {index}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class UnknownFormatError(UserInputError):
    """A record matches none of the known conversation / preference formats."""

    def __init__(
        self,
        keys: list[str],
        known: list[str],
        *,
        row: int | str | None = None,
        detail: str = "",
    ) -> None:
        self.keys = keys
        self.known = known
        self.row = row
        where = f"row {row!r}: " if row is not None else ""
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{where}cannot tell the format of a record with keys {keys}{extra}. "
            f"Known formats: {', '.join(known)}. Pass format=... explicitly or rename the "
            "columns to one of these layouts."
        )


class ConfigError(UserInputError):
    """An option or combination of options is invalid."""


class TemplateError(UserInputError):
    """A prompt template is missing, fails to parse, or references an unknown variable."""


class MissingDependencyError(MusicAugError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the '{package}' package. Install it with "
            f"`pip install 'music-aug[{extra}]'`."
        )


class ModelBehaviorError(MusicAugError):
    """An LLM produced unusable output (e.g. no valid contrast instruction) after retries."""


class BackendError(MusicAugError):
    """A backend request failed after its retries were spent."""


class BackendUnusableError(MusicAugError):
    """The first results of a run show it cannot succeed (an endpoint the server lacks,
    an unknown model, rejected credentials, a request every call gets 400 for).

    Raised by ``music_aug.failfast.FailFast`` before more requests are paid for.

    Attributes:
        status: the HTTP status (401, 403, 404 or 400).
        endpoint: the path that failed, e.g. ``"/v1/completions"``.
        fix: what to change, in words (never an API key).
        rows: output rows of pairs finished before the stop (the augmenter fills this in so
            the CLI can write them); unfinished rows are not marked and are redone by a
            rerun, which the request cache makes cheap.
    """

    def __init__(self, message: str, *, status: int, endpoint: str, fix: str) -> None:
        self.status = status
        self.endpoint = endpoint
        self.fix = fix
        self.rows: list[dict[str, object]] = []
        super().__init__(f"{message}. Fix: {fix}")


class AugmentationError(MusicAugError):
    """A row could not be augmented and ``on_error="raise"`` was set.

    Attributes:
        row: index or id of the input row.
        reason: short machine-readable reason (e.g. ``"perturbation_invalid"``).
    """

    def __init__(self, message: str, *, row: int | str | None = None, reason: str = "") -> None:
        self.row = row
        self.reason = reason
        where = f"row {row!r}: " if row is not None else ""
        super().__init__(where + message)
