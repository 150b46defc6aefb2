"""User-facing errors.

Every problem caused by the user's input (a bad file, a bad config key, a missing partner image)
is raised as :class:`PnganError` with a one-line message that names the file and what is wrong.
The CLI prints ``pngan: error: <message>`` and exits with status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class PnganError(Exception):
    """An error in the user's input, reported as one line without a traceback."""

    def __init__(self, message: str, path: str | Path | None = None):
        if path is not None:
            message = f"{path}: {message}"
        super().__init__(message)
        self.path = None if path is None else Path(path)


class DivergenceError(PnganError):
    """A NaN/Inf loss or gradient stopped training."""
