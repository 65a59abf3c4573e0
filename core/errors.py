"""Embedscope's exception hierarchy.

Every error a user can cause is one of these. Messages name the file, the line or tensor, or the
parameter, and say what to do; the dashboard shows ``str(err)`` and the CLI prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

_Choice = TypeVar("_Choice", bound=str)


class EmbedscopeError(Exception):
    """Base class of every error Embedscope raises on purpose."""


class FormatError(EmbedscopeError, ValueError):
    """A file is malformed or not in the format we expected."""


class UnsafeFileError(FormatError):
    """A file asks to run code (a pickle global we do not allow, remote code) and was refused."""


class ParameterError(EmbedscopeError, ValueError):
    """An argument is out of range or inconsistent; the message names the parameter and the rule."""


def check_choice(name: str, value: object, choices: Sequence[_Choice], rule: str = "") -> _Choice:
    """``value`` as the one of ``choices`` it equals (so a plain string becomes its ``Literal`` type).

    Raises:
        ParameterError: ``value`` is none of them, naming ``name`` and the choices (or ``rule``).
    """
    for choice in choices:
        if value == choice:
            return choice
    raise ParameterError(f"{name}={value!r}: {rule or 'must be one of ' + ', '.join(repr(c) for c in choices)}")


class OfflineError(EmbedscopeError):
    """A download was needed but the hub cannot be reached or downloads are turned off."""


class PathNotAllowed(EmbedscopeError, PermissionError):
    """A path lies outside the folders the operator allowed."""


class OutputExistsError(EmbedscopeError, FileExistsError):
    """An output path exists already and overwriting was not asked for."""


class Cancelled(EmbedscopeError):
    """A long job was cancelled through its cancel check; nothing was written."""


class TokenNotFound(EmbedscopeError, KeyError):
    """A token or word is not in the vocabulary.

    Attributes:
        token: what was looked up.
        suggestions: the closest spellings that are in the vocabulary.
    """

    def __init__(self, token: str, suggestions: Sequence[str] = (), detail: str = "") -> None:
        self.token = token
        self.suggestions = list(suggestions)
        self.detail = detail
        super().__init__(token)

    def __str__(self) -> str:
        msg = f"{self.token!r} is not in the vocabulary"
        if self.detail:
            msg += f" ({self.detail})"
        if self.suggestions:
            msg += "; closest: " + ", ".join(repr(s) for s in self.suggestions)
        return msg


class ServerNotReady(EmbedscopeError, TimeoutError):
    """A dashboard server started for a test or benchmark did not answer its health check in time."""
