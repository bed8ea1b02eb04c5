"""Great Expectations on a bounded slice of the rows, cross-checked against the streaming evaluator.

The first ``gx_rows`` data rows of a file (all of them for every file up to that size, which is every
movies, links and tags file of real MovieLens, and ml-latest-small's ratings) are handed to GX Core as a
pandas DataFrame and validated with the kind's ``ExpectationSuite`` loaded from the same JSON. For each
expectation, GX's count of unexpected values on those rows must equal the evaluator's count on the same
rows; any difference is reported as the failure ``gx_disagreement`` (fail closed: a file is never
accepted on a check the two engines read differently). ``gx_rows=None`` runs GX on every batch.

The GX results kept here (``summary()``) go into ``ValidationOutcome.gx_summary`` (each result's
``gx``), next to the evaluator's full-file results, which are what the GX Data Docs of a run show
(:mod:`movielens.validation.datadocs`, built from the stored records without re-reading the file).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from movielens.validation.evaluator import Column, StreamingEvaluator, _isin
from movielens.validation.suites import COLUMN_MAP_TYPES, SuiteSpec, gx_environment, gx_suite

TYPE_TYPES = ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list")
UNIQUE_TYPES = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")
#: Most values a run-time value set (known_movie_ids) may hand GX in one validation.
GX_VALUE_SET_LIMIT = 1000
_GX_LOCK = threading.Lock()


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def gx_frame(spec: SuiteSpec, columns: dict[str, Column]):
    """The batch as pandas, typed as ``pandas.read_csv`` would type a clean file.

    int -> int64 (nullable Int64 when a value is missing), float -> float64 (NaN when missing),
    text -> object (None when missing). A column holding mistyped values is object: numbers as Python
    numbers, the mistyped values as their text, so GX's type expectation sees them.
    """
    import pandas as pd

    data = {}
    for name in spec.columns:
        column, kind = columns[name], spec.column_types[name]
        if kind == "str":
            data[name] = column.values.to_pandas()
        elif column.has_bad():
            objects = np.array(column.values.to_pylist(), dtype=object)
            objects[column.bad] = np.array(column.raw.to_pylist(), dtype=object)[column.bad]
            data[name] = pd.Series(objects, dtype=object)
        elif kind == "int" and column.null.any():
            data[name] = pd.array(column.values.to_pylist(), dtype="Int64")
        else:
            data[name] = column.np_values
    return pd.DataFrame(data, columns=spec.columns)


class GXSlices:
    """Runs GX on slices of rows and compares each result with the evaluator's."""

    def __init__(self, spec: SuiteSpec, params: dict[str, Any], leave_out: tuple[str, ...]):
        gx, _, self._batch_definition = gx_environment()
        self.version = gx.__version__
        self.spec = spec
        self.leave_out = tuple(leave_out)
        self._parameter_sets = [
            e for e in spec.expectations
            if e.type == "expect_column_values_to_be_in_set" and isinstance(e.kwargs.get("value_set"), dict)
            and e.check not in self.leave_out
        ]
        self._allowed_cache: dict[str, np.ndarray] = {}
        self._isin_cache: dict[str, dict] = {}
        self.params = {k: (sorted(v) if isinstance(v, (set, frozenset)) else v) for k, v in params.items()}
        self.rows = 0
        self.slices = 0
        self.results: dict[str, dict[str, Any]] = {}
        self.disagreements: list[dict[str, Any]] = []

    def validate(self, columns: dict[str, Column], n: int, counts: dict[str, int], first_row: int) -> None:
        frame = gx_frame(self.spec, columns)
        params = dict(self.params)
        runs = []  # (suite, frame, rows, counts)
        split: list[str] = []
        for e in self._parameter_sets:
            # GX re-serialises an expectation's value_set hundreds of times per validation (seconds for
            # thousands of values), so it gets the ids that occur in these rows, not the whole set: the
            # verdict on these rows is the same. Past GX_VALUE_SET_LIMIT distinct values, this check runs
            # on the leading rows that stay within the limit.
            column = columns[e.column]
            allowed = self._allowed(e)
            known = ~column.excluded & _isin(column.np_values, allowed, self._isin_cache.setdefault(e.check, {}))
            ids = column.np_values[known]
            distinct, first = np.unique(ids, return_index=True)
            name = e.kwargs["value_set"]["$PARAMETER"]
            if distinct.size <= GX_VALUE_SET_LIMIT:
                params[name] = distinct.tolist()
                continue
            cut = int(np.flatnonzero(known)[np.sort(first)[GX_VALUE_SET_LIMIT]])
            prefix_ids = np.unique(column.np_values[:cut][known[:cut]])
            ours = int(np.count_nonzero(~column.excluded[:cut] & ~known[:cut]))
            runs.append((gx_suite(self.spec, self._all_but(e.check)), frame.iloc[:cut], cut,
                         {e.check: ours}, {**self.params, name: prefix_ids.tolist()}))
            split.append(e.check)
        runs.insert(0, (gx_suite(self.spec, self.leave_out + tuple(split)), frame, n, counts, params))
        self.slices += 1
        self.rows += n
        for suite, data, rows, run_counts, run_params in runs:
            with _GX_LOCK:  # one shared ephemeral context and data asset per process
                batch = self._batch_definition.get_batch(batch_parameters={"dataframe": data})
                result = batch.validate(suite, result_format="SUMMARY", expectation_parameters=run_params)
            self._record(result, columns, rows, run_counts, first_row, run_params)

    def _allowed(self, e) -> np.ndarray:
        if e.check not in self._allowed_cache:
            values = self.params[e.kwargs["value_set"]["$PARAMETER"]]
            self._allowed_cache[e.check] = np.asarray(sorted(values), dtype=np.int64)
        return self._allowed_cache[e.check]

    def _all_but(self, check: str) -> tuple[str, ...]:
        return tuple(e.check for e in self.spec.expectations if e.check != check)

    def _record(self, result, columns, n, counts, first_row, params) -> None:
        by_check = {e.check: e for e in self.spec.expectations}
        mistyped = {name for name, c in columns.items() if c.has_bad()}
        for r in result.results:
            check = (r.expectation_config.meta or {}).get("check")
            spec = by_check.get(check)
            if spec is None:
                continue
            info = r.result or {}
            raised = bool((r.exception_info or {}).get("raised_exception"))
            entry = self.results.setdefault(
                check, {"success": True, "unexpected_count": None, "element_count": 0, "rows": 0, "exception": None}
            )
            entry["success"] = bool(entry["success"] and r.success)
            entry["rows"] += n
            if info.get("unexpected_count") is not None:
                entry["unexpected_count"] = (entry["unexpected_count"] or 0) + int(info["unexpected_count"])
            if info.get("element_count") is not None:
                entry["element_count"] += int(info["element_count"])
            if info.get("observed_value") is not None:
                entry["observed_value"] = jsonable(info["observed_value"])
            if raised and entry["exception"] is None:
                entry["exception"] = str((r.exception_info or {}).get("exception_message"))[:300]
            ours, theirs = self._compare(spec, columns, n, counts, mistyped, info, r.success, raised, params)
            if ours is not None and ours != theirs:
                self.disagreements.append(
                    {"check": check, "rows": [first_row + 1, first_row + n], "streaming": ours, "gx": theirs}
                )

    def _compare(self, spec, columns, n, counts, mistyped, info, success, raised, params):
        """(ours, GX's) for this slice, or (None, None) when the two cannot be compared."""
        etype = spec.type
        if etype == "expect_table_columns_to_match_ordered_list":
            return True, bool(success)
        if etype == "expect_table_row_count_to_be_between":
            low, high = spec.resolved(params).get("min_value"), spec.resolved(params).get("max_value")
            return (low is None or n >= low) and (high is None or n <= high), bool(success)
        if etype in TYPE_TYPES:
            if info.get("unexpected_count") is not None:
                return counts.get(spec.check, 0), int(info["unexpected_count"])
            return counts.get(spec.check, 0) == 0, bool(success)
        if etype in UNIQUE_TYPES:
            ours = StreamingEvaluator.duplicates_within(spec, columns)
            if ours is None:
                return None, None
            return ours, (None if raised else info.get("unexpected_count"))
        if etype in COLUMN_MAP_TYPES:
            if etype != "expect_column_values_to_not_be_null" and spec.column in mistyped:
                return None, None  # GX cannot compare numbers with the mistyped text; the type check covers it
            return counts.get(spec.check, 0), (None if raised else info.get("unexpected_count"))
        return None, None

    def summary(self) -> dict[str, Any]:
        return {check: jsonable(entry) for check, entry in self.results.items()}
