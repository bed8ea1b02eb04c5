"""Validation of landed files: file-level checks, then the Great Expectations suite of the file's kind.

``validate_file(path, kind, run_date, known_movie_ids=...)`` returns a :class:`ValidationOutcome`
(passed, rows, failures with up to 20 example lines, notes, GX summary). The decision table for
file-level problems is in :mod:`movielens.validation.filechecks`. GX is imported on first use only.
"""

from movielens.validation.filechecks import Failure
from movielens.validation.runner import FILE_KINDS, ValidationOutcome, validate_file

__all__ = ["FILE_KINDS", "Failure", "ValidationOutcome", "validate_file"]
