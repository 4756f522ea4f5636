"""The one error a config problem raises, whichever stage checks it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem, with the offending key in the message (at most
    ``MAX_MESSAGE`` characters: a message never carries an unbounded value)."""

    MAX_MESSAGE = 2_000

    def __init__(self, message: str = "") -> None:
        message = str(message)
        if len(message) > self.MAX_MESSAGE:
            cut = len(message) - self.MAX_MESSAGE
            message = f"{message[: self.MAX_MESSAGE]}... ({cut:,} more characters)"
        super().__init__(message)
