"""``validate_file``: one streaming pass over a landed file.

1. :class:`~movielens.validation.filechecks.ByteChecker` checks the bytes as they stream (decision
   table in :mod:`movielens.validation.filechecks`), and reads the header, which must be the suite's
   ``expect_table_columns_to_match_ordered_list`` exactly.
2. ``pyarrow.csv.open_csv`` parses the rest in blocks of ``BLOCK_SIZE`` bytes (bounded memory at any
   file size; lines with the wrong field count are collected with their line numbers, not fatal).
3. :class:`~movielens.validation.evaluator.StreamingEvaluator` evaluates every expectation of the
   kind's GX suite on every batch, vectorised; uniqueness across the file is decided at the end from
   int64 keys (8 bytes a row, sorted once, and not even that when the keys arrive sorted, as
   MovieLens ratings do).
4. GX Core validates the first ``gx_rows`` rows with the same suite (pandas), and its per-expectation
   counts must equal the evaluator's on those rows (:mod:`movielens.validation.gxrun`).

Parsing: a file whose columns are all numbers (ratings, links) is parsed typed by Arrow (fast), once a
byte filter has made sure its data lines contain nothing but digits, ``-.eE,"`` and line breaks; any
other byte, or an Arrow conversion error, re-reads the file with the
strict parse (numbers read as text and matched against strict patterns). Files
with text columns (movies, tags) use the strict parse from the start.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

from movielens.validation import filechecks as fc
from movielens.validation.evaluator import ARROW_TYPES, StreamingEvaluator, Tally, parse_text_column, typed_column
from movielens.validation.filechecks import ByteChecker, FileCheckError, NeedsStrictParse
from movielens.validation.model import FILE_KINDS, MAX_EXAMPLES, Failure, ValidationOutcome
from movielens.validation.suites import SuiteSpec, load_spec, run_parameters

__all__ = ["FILE_KINDS", "GX_SAMPLE_ROWS", "BLOCK_SIZE", "ValidationOutcome", "validate_file"]

#: Rows validated by GX itself (the first rows of the file); every row is validated by the evaluator.
GX_SAMPLE_ROWS = 200_000
#: Bytes per parsed block (and per read from the lake).
BLOCK_SIZE = 8 << 20
GX_DISAGREEMENT = "gx_disagreement"


class _Restart(Exception):
    """The fast typed parse gives way to the strict one (the file is read again from the start)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _InvalidRows:
    """Lines the parser could not split into the right number of fields (pyarrow's invalid_row_handler)."""

    def __init__(self, width: int):
        self.width = width
        self.count = 0
        self.unnumbered = 0
        self.numbers: list[int] = []  # record numbers (1 = first line after the header, blank lines not counted)
        self.examples: list[tuple[int, str, int]] = []  # (record number, text, fields)

    def __call__(self, row) -> str:
        self.count += 1
        if row.number is None:
            self.unnumbered += 1
        elif len(self.numbers) < fc.LINE_LIMIT_STORED:
            self.numbers.append(int(row.number))
            if len(self.examples) <= MAX_EXAMPLES:
                self.examples.append((int(row.number), row.text, int(row.actual_columns)))
        return "skip"


def _expand(x: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Positions ``x`` counted without ``gaps`` -> positions counting them (both 1-based, gaps sorted)."""
    if gaps.size == 0:
        return x
    shifted = gaps - np.arange(gaps.size)
    return x + np.searchsorted(shifted, x, side="right")


class _LineMap:
    def __init__(self, invalid: _InvalidRows, blank_lines: list[int]):
        self.invalid = np.asarray(sorted(invalid.numbers), dtype=np.int64)
        self.blank = np.asarray(sorted(blank_lines), dtype=np.int64)

    def of_records(self, numbers) -> list[int]:
        """Record numbers (pyarrow's, 1-based after the header) -> file lines."""
        return _expand(np.asarray(numbers, dtype=np.int64) + 1, self.blank).tolist()

    def of_rows(self, rows) -> list[int]:
        """Parsed row indexes (0-based, bad lines skipped) -> file lines."""
        records = _expand(np.asarray(rows, dtype=np.int64) + 1, self.invalid)
        return self.of_records(records)


def _as_date(run_date) -> dt.date:
    if isinstance(run_date, dt.datetime):
        return run_date.date()
    if isinstance(run_date, dt.date):
        return run_date
    return dt.date.fromisoformat(str(run_date))


def validate_file(
    path,
    kind: str,
    run_date: dt.date,
    *,
    known_movie_ids: "set[int] | None" = None,
    gx_rows: int | None = GX_SAMPLE_ROWS,
    suites_dir=None,
) -> ValidationOutcome:
    """Validate one file of ``kind`` (one of :data:`FILE_KINDS`) for ``run_date``.

    ``path``: anything with ``.open("rb")`` and ``.name`` (``pathlib.Path``, Airflow's
    ``ObjectStoragePath``); it is streamed, never assumed local, and opened a second time only when the
    fast typed parse has to give way to the strict one (a file with bad values). ``known_movie_ids``:
    the movieIds every ratings/tags movieId must be in (``movie_id_known``); None leaves that check
    out. ``gx_rows``: how many leading rows GX Core validates itself (None: all rows, slower).
    Problems of the file are reported in the outcome; only I/O errors (and a broken suite) raise.
    """
    if kind not in FILE_KINDS:
        raise ValueError(f"unknown file kind {kind!r}; expected one of {FILE_KINDS}")
    spec = load_spec(kind, suites_dir)
    params, leave_out, notes = run_parameters(spec, _as_date(run_date), known_movie_ids)
    strict = not spec.all_numeric
    restarts: list[str] = []
    while True:
        try:
            outcome = _scan(path, spec, params, tuple(leave_out), strict=strict, gx_rows=gx_rows)
        except _Restart as again:
            if strict:
                raise RuntimeError(f"validation of {getattr(path, 'name', path)} cannot restart: {again.reason}") from None
            restarts.append(again.reason)
            strict = True
            continue
        outcome.notes[:0] = notes + [f"read again with the strict parser: {r}" for r in restarts]
        if outcome.gx_summary is not None:
            outcome.gx_summary["run_date"] = _as_date(run_date).isoformat()
        return outcome


def _scan(path, spec: SuiteSpec, params: dict, leave_out: tuple[str, ...], *, strict: bool, gx_rows) -> ValidationOutcome:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    outcome = ValidationOutcome(kind=spec.kind, passed=False, rows=None)
    with path.open("rb") as raw:
        checker = ByteChecker(raw, numeric_alphabet=not strict)
        try:
            header = checker.read_header()
        except FileCheckError as err:
            outcome.failures.append(err.failure)
            return outcome
        names = fc.parse_header(header)
        if names != spec.columns:
            outcome.failures.append(
                Failure(fc.COLUMNS, fc.describe_header(names, spec.columns), [{"line": 1, "value": fc._show(header)}])
            )
            return outcome

        invalid = _InvalidRows(len(spec.columns))
        read_types = {c: (pa.string() if strict else ARROW_TYPES[spec.column_types[c]]) for c in spec.columns}
        evaluator = StreamingEvaluator(spec, params, leave_out)
        gx = None
        gx_left = gx_rows or 0
        try:
            reader = pacsv.open_csv(
                checker,
                read_options=pacsv.ReadOptions(column_names=spec.columns, block_size=BLOCK_SIZE, use_threads=False),
                parse_options=pacsv.ParseOptions(invalid_row_handler=invalid, newlines_in_values=False, ignore_empty_lines=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=read_types, null_values=[""], strings_can_be_null=True,
                    quoted_strings_can_be_null=True, check_utf8=False,
                ),
            )
            pending: list = []  # the leading rows for GX, validated together as one DataFrame

            def run(part, to_gx: bool) -> None:
                nonlocal gx
                columns = {
                    name: (parse_text_column(part.column(i), spec.column_types[name])
                           if strict and spec.column_types[name] != "str"
                           else typed_column(part.column(i), spec.column_types[name]))
                    for i, name in enumerate(spec.columns)
                }
                first = evaluator.rows
                counts = evaluator.process(columns, part.num_rows)
                if to_gx:
                    if gx is None:
                        from movielens.validation.gxrun import GXSlices

                        gx = GXSlices(spec, params, leave_out)
                    gx.validate(columns, part.num_rows, counts, first)

            for batch in reader:
                n = batch.num_rows
                if not n:
                    continue
                if gx_rows is None:
                    run(batch, True)
                elif gx_left > 0:
                    take = min(n, gx_left)
                    pending.append(batch.slice(0, take))
                    gx_left -= take
                    if gx_left == 0:
                        run(pa.Table.from_batches(pending), True)
                        pending = []
                    if take < n:
                        run(batch.slice(take), False)
                else:
                    run(batch, False)
            if pending:
                run(pa.Table.from_batches(pending), True)
            checker.drain()
        except NeedsStrictParse:
            raise _Restart("a data line holds a character other than digits, '-', '.', 'e', ',' and quotes") from None
        except FileCheckError as err:
            outcome.failures.append(err.failure)
            return outcome
        except pa.ArrowInvalid as err:
            message = str(err)
            empty = message.startswith("Empty CSV file") and not evaluator.rows and not invalid.count
            if not strict and not empty and "conversion error" in message.lower():
                raise _Restart(f"a value does not parse as its column's type ({message})") from None
            try:
                checker.drain()  # every byte checked; a byte-level cause further on explains an error better
            except FileCheckError as cause:
                outcome.failures.append(cause.failure)
                return outcome
            if not empty:  # (empty: nothing but blank lines after the header -> header_only below)
                outcome.failures.append(Failure(fc.CSV_PARSE_ERROR, f"the CSV parser stopped: {message}"))
                return outcome
        if invalid.unnumbered:  # only happens with use_threads=True (measured no faster through the checker)
            raise RuntimeError("the CSV parser gave bad lines without their line numbers")

    summary = checker.summary
    outcome.notes += fc.notes_for(summary)
    lines = _LineMap(invalid, summary.blank_lines)
    outcome.rows = evaluator.rows + invalid.count

    # Line-level failures.
    bad_lines = list(invalid.examples)
    bad_count = invalid.count
    if not summary.ends_with_newline and summary.last_line_complete and summary.lines > 1:
        fields = fc.field_count(summary.last_line)
        if fields != len(spec.columns):
            outcome.failures.append(
                Failure(fc.TRUNCATED_LAST_LINE,
                        f"the last line (line {summary.lines}) has {fields} field(s), not {len(spec.columns)}, and no line "
                        "break after it: the file looks cut short (incomplete upload?)",
                        [{"line": summary.lines, "value": fc._show(summary.last_line)}])
            )
            mapped = lines.of_records([e[0] for e in bad_lines]) if bad_lines else []
            keep = [e for e, line in zip(bad_lines, mapped) if line != summary.lines]
            bad_count -= len(bad_lines) - len(keep)
            bad_lines = keep
        else:
            outcome.notes.append(
                f"no line break after the last line (line {summary.lines}): accepted, the line has all {fields} fields"
            )
    if bad_count:
        mapped = lines.of_records([e[0] for e in bad_lines[:MAX_EXAMPLES]])
        outcome.failures.append(
            Failure(fc.COLUMN_COUNT,
                    f"{bad_count} line(s) do not have {len(spec.columns)} fields (first at line {mapped[0]}: "
                    f"{bad_lines[0][2]} fields); those lines were skipped, every other row was checked",
                    [{"line": line, "value": fc._show(text.encode())} for (_, text, _), line in zip(bad_lines, mapped)])
        )
    if summary.blank_count:
        outcome.failures.append(fc.blank_line_failure(summary))
    if outcome.rows == 0:
        outcome.failures.append(Failure(fc.HEADER_ONLY, "the file has a header line but no data rows"))
        return outcome

    # Expectations.
    tallies = evaluator.finish()
    for t in tallies:
        if not t.success:
            outcome.failures.append(
                Failure(t.check, _message(t), [{"line": line, "value": value} for line, value in _examples(t, lines)])
            )
        elif t.unexpected:
            first = _examples(t, lines)[:1]
            example = f" (e.g. line {first[0][0]}: {first[0][1]!r})" if first else ""
            outcome.notes.append(
                f"{t.check}: {t.unexpected} of {t.nonmissing} values fail, within mostly={t.kwargs.get('mostly')}: tolerated{example}"
            )
    if gx is not None:
        for d in gx.disagreements[:MAX_EXAMPLES]:
            outcome.failures.append(
                Failure(GX_DISAGREEMENT,
                        f"{d['check']}: GX counts {d['gx']} unexpected on rows {d['rows'][0]}-{d['rows'][1]}, the streaming "
                        f"evaluator {d['streaming']}: the file is not accepted on a check the two engines read differently",
                        [])
            )
    outcome.gx_summary = _gx_summary(spec, params, tallies, gx, evaluator.rows, lines, leave_out)
    outcome.passed = not outcome.failures
    return outcome


def _examples(t: Tally, lines: _LineMap) -> list[tuple[int, str]]:
    if not t.examples:
        return []
    mapped = lines.of_rows([row for row, _ in t.examples])
    return [(line, value) for line, (_, value) in zip(mapped, t.examples)]


def _printable(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in kwargs.items():
        if key in ("column", "column_list", "mostly"):
            continue
        if isinstance(value, (list, tuple, set, frozenset)) and len(value) > 12:
            value = f"<{len(value)} values>"
        out[key] = value
    return out


def _describe(kwargs: dict[str, Any]) -> str:
    parts = []
    for key, value in _printable(kwargs).items():
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if key in ("min_value", "max_value") and isinstance(value, int) and "timestamp" in str(kwargs.get("column")):
            when = dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            value = f"{value} ({when})"
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def _message(t: Tally) -> str:
    spec = t.spec
    etype = spec.type
    why = f" [{spec.description}]" if spec.description else ""
    if etype == "expect_table_row_count_to_be_between":
        return f"{t.observed} data rows; {etype} {_describe(t.kwargs)}{why}"
    if etype in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        repeated = (t.observed or {}).get("repeated_keys")
        return (f"{t.unexpected} rows share their ({', '.join(spec.columns)}) with another row "
                f"({repeated} repeated keys); {etype}{why}")
    what = f"{t.unexpected} of {t.nonmissing if etype != 'expect_column_values_to_not_be_null' else t.elements} values of {spec.column}"
    detail = _describe(t.kwargs)
    mostly = t.kwargs.get("mostly")
    tolerance = ""
    if mostly is not None and t.nonmissing:
        # Both shares as precise as the requirement, the found one rounded down (a failing 99.899 % is not 99.90 %).
        found = math.floor((1 - t.unexpected / t.nonmissing) * 10_000) / 100
        tolerance = f"; mostly={mostly} needs {mostly * 100:g}% to pass, {found:.2f}% do"
    return f"{what} fail {etype}" + (f" ({detail})" if detail else "") + tolerance + why


def _stored_kwargs(t: Tally) -> dict[str, Any]:
    """The expectation's kwargs as evaluated (suite parameters filled in, as GX records them), except
    that a parameter holding a collection (``known_movie_ids``: thousands of ids) stays the reference
    ``{"$PARAMETER": name}``; ``suite_parameters`` of the summary says what it held."""
    from movielens.validation.gxrun import jsonable

    out = {}
    for key, raw in t.spec.kwargs.items():
        value = t.kwargs.get(key, raw)
        if isinstance(raw, dict) and "$PARAMETER" in raw and isinstance(value, (set, frozenset, list, tuple)):
            value = dict(raw)
        out[key] = jsonable(value)
    return out


def _gx_summary(spec: SuiteSpec, params: dict, tallies: list[Tally], gx, rows: int, lines: _LineMap,
                leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """The per-expectation results over the whole file (JSON), kept in the routing record.

    Besides the counts, each result holds what GX Data Docs need to render it without the file
    (:mod:`movielens.validation.datadocs`): ``kwargs`` as evaluated, ``partial_unexpected_list`` (up
    to ``MAX_EXAMPLES`` unexpected values, as written in the file; ``None`` for a missing value) and
    ``partial_unexpected_lines`` (their lines in the file, the header being line 1).
    """
    from movielens.validation.gxrun import jsonable

    gx_results = gx.summary() if gx is not None else {}
    results = []
    for t in tallies:
        examples = _examples(t, lines)
        missing_value = t.spec.type == "expect_column_values_to_not_be_null"
        entry = {
            "check": t.check,
            "expectation_type": t.spec.type,
            "column": t.spec.column,
            "success": bool(t.success),
            "unexpected_count": t.unexpected if t.spec.type not in (
                "expect_table_row_count_to_be_between", "expect_table_columns_to_match_ordered_list") else None,
            "element_count": t.elements or None,
            "missing_count": t.missing or 0,
            "unexpected_percent": (100.0 * t.unexpected / t.nonmissing) if t.nonmissing else None,
            "observed_value": jsonable(t.observed),
            "kwargs": _stored_kwargs(t),
            "partial_unexpected_list": [None if missing_value else value for _, value in examples],
            "partial_unexpected_lines": [line for line, _ in examples],
            "gx": gx_results.get(t.check),
        }
        results.append(entry)
    ok = sum(1 for r in results if r["success"])
    shown_params = {k: (f"<{len(v)} movie ids>" if k == "known_movie_ids" else v) for k, v in params.items()}
    gx_ok = sum(1 for r in gx_results.values() if r.get("success"))
    return {
        "suite": spec.name,
        "suite_file": f"expectations/{spec.path.name}",
        "suite_sha256": spec.digest,
        "run_date": None,  # set by validate_file
        "left_out": list(leave_out),
        "suite_parameters": shown_params,
        "engine": "streaming evaluator of the GX suite on every row; GX Core on the first rows, cross-checked",
        "gx_version": gx.version if gx is not None else None,
        "rows": rows,
        "gx_rows": gx.rows if gx is not None else 0,
        "gx_covers_file": gx is not None and gx.rows == rows,
        "gx_disagreements": len(gx.disagreements) if gx is not None else 0,
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": ok,
            "unsuccessful_expectations": len(results) - ok,
            "success_percent": 100.0 * ok / len(results) if results else 100.0,
        },
        "gx_statistics": {
            "evaluated_expectations": len(gx_results),
            "successful_expectations": gx_ok,
            "unsuccessful_expectations": len(gx_results) - gx_ok,
        },
        "results": results,
    }
