"""The result types of :func:`movielens.validation.validate_file` (plain dataclasses, JSON-ready)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FILE_KINDS = ("ratings", "movies", "tags", "links")

#: Examples kept per failure (lines of the file with the offending value).
MAX_EXAMPLES = 20


@dataclass
class Failure:
    """One reason a file is rejected.

    ``check`` is a file-level reason code (see :mod:`movielens.validation.filechecks`), the ``meta.check``
    name of an expectation in the kind's GX suite (``expectations/<kind>.json``), or ``gx_disagreement``.
    ``examples`` holds up to :data:`MAX_EXAMPLES` ``{"line": int, "value": str}``; ``line`` is the 1-based
    line of the file (the header is line 1).
    """

    check: str
    message: str
    examples: list[dict] = field(default_factory=list)


@dataclass
class ValidationOutcome:
    kind: str
    passed: bool
    rows: int | None  # data records read (header and blank lines excluded); None when never parsed
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gx_summary: dict | None = None  # full-file results per expectation (runner._gx_summary); JSON; None if the suite never ran

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def checks(self) -> list[str]:
        """The ``check`` names of the failures, in order (handy in logs and tests)."""
        return [f.check for f in self.failures]
