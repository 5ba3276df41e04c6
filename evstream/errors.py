"""One error type for everything a user can get wrong.

Every problem a user can cause (bad file, unreachable host, wrong shape, missing checkpoint) raises an
``EvstreamError`` (or a subclass) whose ``str()`` is one line naming the thing and the problem. The CLI
prints that line and exits with status 2 -- never a traceback.
"""

from __future__ import annotations

import os


class EvstreamError(Exception):
    """A user-facing error with a one-line message.

    ``where`` names the file or host, ``offset`` is a byte offset when known.
    """

    def __init__(self, message: str, where: str | os.PathLike | None = None, offset: int | None = None):
        self.problem = message
        self.where = None if where is None else os.fspath(where)
        self.offset = offset
        parts = []
        if self.where is not None:
            parts.append(self.where)
        if offset is not None:
            parts.append(f"byte {offset}")
        prefix = ": ".join([", ".join(parts)]) if parts else ""
        text = f"{prefix}: {message}" if prefix else message
        super().__init__(" ".join(text.split()))  # always one line


class FormatError(EvstreamError):
    """A file that is not, or no longer, what its format says (wrong magic, corrupt, truncated)."""


class StreamError(EvstreamError):
    """A live source (network stream, camera) that cannot be reached or went away."""


class CheckpointError(EvstreamError):
    """A model checkpoint that is missing, truncated, foreign, or does not fit the input."""
