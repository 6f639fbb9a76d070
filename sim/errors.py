"""The one error type users see for bad input."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable


class SagasimError(Exception):
    """Bad input (scenario file, override, flag): the message says what and where.

    The CLI prints the message and exits with status 2; it never shows a
    traceback for this error.
    """


class ScenarioError(SagasimError):
    """A scenario file or an override that does not validate.

    ``problems`` holds one line per problem: the field path, the bad value and
    what is allowed.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1:
            text = f"{source}: {problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in problems)
            text = f"{source}: {len(problems)} problems:\n{lines}"
        super().__init__(text)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a close match exists, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def show_value(value: object, limit: int = 80) -> str:
    """A value as the user wrote it (JSON spelling), cut to ``limit`` characters."""
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
