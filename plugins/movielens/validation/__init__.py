"""Validation of landed MovieLens files: file-level checks, then the kind's Great Expectations suite.

``validate_file(path, kind, run_date, known_movie_ids=...)`` streams the file once and returns a
:class:`ValidationOutcome` (passed, rows, failures with up to 20 example lines each, notes, GX summary).

- :mod:`~movielens.validation.filechecks`: byte-level checks and the accept/normalise/reject decision
  table (empty, header only, binary, UTF-8, BOM, CRLF, quotes, truncated last line, field counts).
- :mod:`~movielens.validation.suites`: ``expectations/<kind>.json`` (GX Core suites, the source of truth
  of what is checked) and their run-time parameters (``max_timestamp``, ``known_movie_ids``).
- :mod:`~movielens.validation.evaluator`: the suite's expectations vectorised over Arrow batches, for
  every row of the file, in bounded memory.
- :mod:`~movielens.validation.gxrun`: GX Core on the first rows, cross-checked against the evaluator.
- :mod:`~movielens.validation.runner`: ``validate_file``.
- :mod:`~movielens.validation.datadocs`: GX Data Docs (HTML) of one run's validations, from the
  stored records (``build_data_docs``), and ``copy_tree`` to put them in the lake.

GX is imported on first use only (it takes seconds).
"""

from movielens.validation.datadocs import build_data_docs, copy_tree, docs_record, record_page, validation_page
from movielens.validation.filechecks import STRUCTURAL
from movielens.validation.model import FILE_KINDS, MAX_EXAMPLES, Failure, ValidationOutcome
from movielens.validation.runner import GX_DISAGREEMENT, GX_SAMPLE_ROWS, validate_file
from movielens.validation.suites import SUITES_DIR, load_spec, max_timestamp_for, suite_path

__all__ = [
    "FILE_KINDS",
    "GX_DISAGREEMENT",
    "GX_SAMPLE_ROWS",
    "MAX_EXAMPLES",
    "STRUCTURAL",
    "SUITES_DIR",
    "Failure",
    "ValidationOutcome",
    "build_data_docs",
    "copy_tree",
    "docs_record",
    "load_spec",
    "record_page",
    "max_timestamp_for",
    "suite_path",
    "validate_file",
    "validation_page",
]
