"""perflab's exceptions and warnings.

Every error perflab raises on purpose derives from :class:`PerflabError`, so the
command line can print its message and exit without a traceback. Messages are full
sentences that say what was wrong, where (file and line when there is one) and what to
do.

Caveats about numbers (too few samples for a tail percentile, a tool's rounded
percentiles, a truncated file) are warnings of the :class:`PerflabWarning` family;
they are also collected into ``run.json`` and shown in the report.

Tree::

    PerflabError
    ├── InputError        a file or folder perflab was given cannot be used as it is
    ├── RunStoreError     a run folder is missing, incomplete or inconsistent
    ├── LaunchError       a load generator or the sample service failed to start or run
    └── AnalysisError     a notebook or a report step failed

    PerflabWarning
    ├── DataWarning       input was skipped, repaired or is suspect (partial results)
    └── PrecisionWarning  a number is less exact than it looks
"""

from __future__ import annotations

from pathlib import Path


class PerflabError(Exception):
    """Root of every error perflab raises on purpose."""


class InputError(PerflabError):
    """A file or folder given to perflab cannot be used as it is.

    Parameters
    ----------
    message
        What is wrong and what to do about it, as a full sentence.
    path
        The file, when there is one; it is put in front of the message.
    line
        The 1-based line number in ``path``, when known.
    """

    def __init__(self, message: str, path: str | Path | None = None, line=None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class RunStoreError(PerflabError):
    """A run folder is missing, incomplete or inconsistent."""


class LaunchError(PerflabError):
    """A load generator or the sample service failed to start or to run."""


class AnalysisError(PerflabError):
    """A notebook, a statistic or a report could not be produced."""


class PerflabWarning(UserWarning):
    """Root of perflab's warnings: caveats a reader of the numbers must see."""


class DataWarning(PerflabWarning):
    """Input was skipped, repaired or looks wrong; the result is partial."""


class PrecisionWarning(PerflabWarning):
    """A number is less exact than its digits suggest."""
