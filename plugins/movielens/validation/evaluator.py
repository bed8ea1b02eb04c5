"""The streaming evaluator: the expectations of a GX suite, vectorised over Arrow record batches.

GX Core validates a pandas DataFrame held in memory; a 25 M-row ratings file does not fit that budget
(nor the time: GX costs ~0.5 s per million rows per suite, on top of pandas). So every row of every file
is checked here, batch by batch with numpy/pyarrow compute, implementing each expectation type of the
suite with GX's pandas semantics, and GX itself validates a bounded slice of the same rows (see
:mod:`movielens.validation.runner`), whose per-expectation counts must match this evaluator's exactly.

Semantics (as GX on pandas):

- map expectations count ``unexpected`` among the non-missing values; ``mostly`` is decided on the
  whole file: ``(nonmissing - unexpected) / nonmissing >= mostly``;
- missing = empty field (and NaN for floats, which pandas counts as null);
- a value that is present but not of the column's type (strict parse: ``-?[0-9]+`` for int,
  ``-?(digits[.digits]|.digits)([eE][+-]?digits)?`` for float) fails the ``*_type`` expectation and is
  left out of that column's other expectations (GX cannot compare it either);
- uniqueness (one or two int columns): all rows of a repeated key are unexpected, like pandas
  ``duplicated(keep=False)``; it is evaluated across the whole file with int64 keys (two columns pack
  as ``a * 2**32 + b``, valid for 0 <= a, b < 2**31, which the id range expectations require anyway;
  rows with a missing, mistyped or out-of-range key are left out of it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from movielens.validation.model import MAX_EXAMPLES
from movielens.validation.suites import COLUMN_MAP_TYPES, ExpectationSpec, SuiteSpec

INT_PATTERN = r"^-?[0-9]+$"
FLOAT_PATTERN = r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"
ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
_KEY_LIMIT = 1 << 31
_TABLE_SPAN = 1 << 26  # value sets spanning fewer ints are looked up in a bool table


@dataclass
class Column:
    """One column of a batch, typed."""

    values: pa.Array  # typed; null where missing or not parseable
    null: np.ndarray  # bool: missing (empty field; NaN for floats)
    bad: np.ndarray | None = None  # bool: present but not of the column's type (strict parse only)
    raw: pa.Array | None = None  # the text as read (strict parse only), for examples
    np_values: np.ndarray | None = None  # numbers with missing filled (0, or NaN for floats)

    @property
    def excluded(self) -> np.ndarray:
        return self.null if self.bad is None else (self.null | self.bad)

    def has_bad(self) -> bool:
        return self.bad is not None and bool(self.bad.any())

    def text(self, i: int) -> str:
        if self.raw is not None:
            value = self.raw[i].as_py()
        else:
            value = self.values[i].as_py()
        if value is None:
            return ""
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return f"{value:.1f}"
        return str(value)


def _np_bool(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def typed_column(array: pa.Array, kind: str) -> Column:
    """A column parsed by Arrow as its type (fast parse), or a text column."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if kind == "str":
        return Column(array, np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool))
    if kind == "float":
        np_values = pc.fill_null(array, math.nan).to_numpy(zero_copy_only=False) if array.null_count else array.to_numpy(zero_copy_only=False)
        return Column(array, np.isnan(np_values), np_values=np_values)
    null = (np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool) if array.null_count
            else np.zeros(len(array), dtype=bool))
    np_values = pc.fill_null(array, 0).to_numpy(zero_copy_only=False) if array.null_count else array.to_numpy(zero_copy_only=False)
    return Column(array, null, np_values=np_values)


def parse_text_column(raw: pa.Array, kind: str) -> Column:
    """A number column read as text (strict parse): values matching the strict pattern, the rest bad."""
    if isinstance(raw, pa.ChunkedArray):
        raw = raw.combine_chunks()
    target = ARROW_TYPES[kind]
    null = np.asarray(raw.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    ok = _np_bool(pc.match_substring_regex(raw, INT_PATTERN if kind == "int" else FLOAT_PATTERN))
    bad = ~ok & ~null
    source = pc.if_else(pa.array(ok), raw, pa.nulls(len(raw), pa.string())) if bad.any() else raw
    try:
        values = pc.cast(source, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Matches the pattern but does not fit (e.g. an int beyond int64): value by value.
        python = source.to_pylist()
        out: list[Any] = []
        for i, text in enumerate(python):
            if text is None:
                out.append(None)
                continue
            try:
                number = int(text) if kind == "int" else float(text)
                if kind == "int" and not -(1 << 63) <= number < (1 << 63):
                    raise OverflowError
                out.append(number)
            except (ValueError, OverflowError):
                out.append(None)
                bad[i] = True
        values = pa.array(out, type=target)
    column = typed_column(values, kind)
    column.null = null  # missing = empty field; a mistyped value is `bad`, not missing (NaN cannot match)
    column.bad = bad
    column.raw = raw
    return column


def _value_set(values: list, kind: str):
    if kind == "str":
        return pa.array([str(v) for v in values], type=pa.string())
    if kind == "int" and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return np.fromiter(sorted(values), dtype=np.int64, count=len(values))
    return np.asarray(list(values), dtype=np.float64)


def _isin(values: np.ndarray, allowed: np.ndarray, cache: dict) -> np.ndarray:
    if allowed.size == 0:
        return np.zeros(values.shape, dtype=bool)
    if allowed.dtype.kind == "i" and values.dtype.kind == "i":
        if "table" not in cache:
            low, high = int(allowed[0]), int(allowed[-1])
            cache["table"] = None
            if high - low < _TABLE_SPAN:
                table = np.zeros(high - low + 1, dtype=bool)
                table[allowed - low] = True
                cache["table"] = (low, table)
        if cache["table"] is not None:
            low, table = cache["table"]
            index = values - low
            inside = (index >= 0) & (index < table.size)
            out = np.zeros(values.shape, dtype=bool)
            out[inside] = table[index[inside]]
            return out
        pos = np.searchsorted(allowed, values)
        pos[pos >= allowed.size] = 0
        return allowed[pos] == values
    return np.isin(values, allowed)


@dataclass
class Tally:
    """The running result of one expectation over the file."""

    spec: ExpectationSpec
    kwargs: dict[str, Any]  # resolved (parameters filled in)
    unexpected: int = 0
    elements: int = 0
    missing: int = 0
    examples: list[tuple[int, str]] = field(default_factory=list)  # (row index, value)
    observed: Any = None
    success: bool | None = None
    cache: dict = field(default_factory=dict)
    keys: list[np.ndarray] = field(default_factory=list)  # uniqueness
    increasing: bool = True
    last_key: int | None = None

    @property
    def check(self) -> str:
        return self.spec.check

    @property
    def nonmissing(self) -> int:
        return self.elements - self.missing

    def decide(self) -> bool:
        mostly = self.kwargs.get("mostly")
        if self.spec.type in COLUMN_MAP_TYPES or self.spec.type == "expect_compound_columns_to_be_unique":
            if mostly is not None and mostly < 1:
                n = self.nonmissing
                self.success = n == 0 or (n - self.unexpected) / n >= mostly
            else:
                self.success = self.unexpected == 0
        return bool(self.success)

    def add_examples(self, mask: np.ndarray, column: Column | None, base: int, value=None) -> None:
        room = MAX_EXAMPLES - len(self.examples)
        if room <= 0:
            return
        for i in np.flatnonzero(mask)[:room].tolist():
            text = value(i) if value else (column.text(i) if column is not None else "")
            self.examples.append((base + i, text))


class StreamingEvaluator:
    """Feed it batches (``process``), then ``finish``; read ``tallies``."""

    def __init__(self, spec: SuiteSpec, params: dict[str, Any], leave_out: tuple[str, ...] = ()):
        self.spec = spec
        self.rows = 0
        self.tallies = [Tally(e, e.resolved(params)) for e in spec.expectations if e.check not in leave_out]

    # --- per batch ------------------------------------------------------------------------------

    def process(self, columns: dict[str, Column], n: int) -> dict[str, int]:
        """Evaluate one batch of ``n`` rows; returns each check's unexpected count in this batch."""
        base = self.rows
        counts: dict[str, int] = {}
        for t in self.tallies:
            etype = t.spec.type
            if etype in ("expect_table_columns_to_match_ordered_list", "expect_table_row_count_to_be_between"):
                continue
            if etype in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
                self._keys(t, columns, n, base)
                continue
            column = columns[t.spec.column]
            mask, missing = self._map(t, column, n)
            count = int(np.count_nonzero(mask))
            counts[t.check] = count
            t.unexpected += count
            t.elements += n
            t.missing += missing
            if count:
                t.add_examples(mask, column, base)
        self.rows += n
        return counts

    def _map(self, t: Tally, column: Column, n: int) -> tuple[np.ndarray, int]:
        etype = t.spec.type
        kind = self.spec.column_types[t.spec.column]
        if etype == "expect_column_values_to_not_be_null":
            return column.null, 0
        if etype in ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list"):
            mask = column.bad if column.bad is not None else np.zeros(n, dtype=bool)
            return mask, int(np.count_nonzero(column.null))
        excluded = column.excluded
        missing = int(np.count_nonzero(excluded))
        kw = t.kwargs
        if etype == "expect_column_values_to_be_between":
            if kind == "str":
                raise ValueError(f"{t.check}: between on a text column is not implemented")
            v = column.np_values
            ok = np.ones(n, dtype=bool)
            low, high = kw.get("min_value"), kw.get("max_value")
            if low is not None:
                ok &= (v > low) if kw.get("strict_min") else (v >= low)
            if high is not None:
                ok &= (v < high) if kw.get("strict_max") else (v <= high)
            return ~ok & ~excluded, missing
        if etype == "expect_column_values_to_be_in_set":
            if "allowed" not in t.cache:
                t.cache["allowed"] = _value_set(list(kw["value_set"]), kind)
            allowed = t.cache["allowed"]
            if kind == "str":
                ok = _np_bool(pc.is_in(column.values, value_set=allowed))
            else:
                ok = _isin(column.np_values, allowed, t.cache)
            return ~ok & ~excluded, missing
        if etype == "expect_column_values_to_match_regex":
            if kind != "str":
                raise ValueError(f"{t.check}: regex on a number column is not implemented")
            ok = _np_bool(pc.match_substring_regex(column.values, kw["regex"]))
            return ~ok & ~excluded, missing
        raise ValueError(f"{t.check}: {etype} is not a column map expectation")

    def _keys(self, t: Tally, columns: dict[str, Column], n: int, base: int) -> None:
        cols = [columns[c] for c in t.spec.columns]
        t.elements += n
        if len(cols) == 1:
            v = cols[0].np_values
            valid = ~cols[0].excluded & (v >= 0)
            keys = v.astype(np.int64, copy=True)
        else:
            a, b = cols[0].np_values, cols[1].np_values
            valid = ~cols[0].excluded & ~cols[1].excluded & (a >= 0) & (a < _KEY_LIMIT) & (b >= 0) & (b < _KEY_LIMIT)
            keys = (a.astype(np.int64) << 32) | b.astype(np.int64)
        if not valid.all():
            # Left out of the uniqueness check: a unique negative stand-in per row.
            keys[~valid] = -(base + np.flatnonzero(~valid) + 1)
            t.missing += int(np.count_nonzero(~valid))
        if t.increasing and keys.size:
            if (t.last_key is not None and keys[0] <= t.last_key) or not bool(np.all(keys[1:] > keys[:-1])):
                t.increasing = False
            t.last_key = int(keys[-1])
        t.keys.append(keys)

    @staticmethod
    def duplicates_within(spec: ExpectationSpec, columns: dict[str, Column]) -> int | None:
        """Rows of this batch whose key repeats within the batch (None if a key is missing/out of range)."""
        cols = [columns[c] for c in spec.columns]
        if any(c.excluded.any() for c in cols):
            return None
        if len(cols) == 1:
            keys = cols[0].np_values
        else:
            a, b = cols[0].np_values, cols[1].np_values
            if (a < 0).any() or (a >= _KEY_LIMIT).any() or (b < 0).any() or (b >= _KEY_LIMIT).any():
                return None
            keys = (a.astype(np.int64) << 32) | b.astype(np.int64)
        if keys.size < 2:
            return 0
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        return int(np.count_nonzero(counts[inverse] > 1))

    # --- end of file ----------------------------------------------------------------------------

    def finish(self) -> list[Tally]:
        for t in self.tallies:
            etype = t.spec.type
            if etype == "expect_table_row_count_to_be_between":
                low, high = t.kwargs.get("min_value"), t.kwargs.get("max_value")
                t.observed = self.rows
                t.success = (low is None or self.rows >= low) and (high is None or self.rows <= high)
            elif etype == "expect_table_columns_to_match_ordered_list":
                t.observed = list(self.spec.columns)
                t.success = True  # the header was checked before any row was read
            elif etype in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
                self._finish_unique(t)
                t.decide()
            else:
                t.decide()
        return self.tallies

    def _finish_unique(self, t: Tally) -> None:
        if t.increasing or not t.keys:
            t.keys = []
            return
        keys = np.concatenate(t.keys)
        t.keys = []
        ordered = np.sort(keys)
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        del ordered
        if repeated.size == 0:
            return
        repeated = np.unique(repeated)
        mask = np.isin(keys, repeated, assume_unique=False)
        t.unexpected = int(np.count_nonzero(mask))
        names = t.spec.columns

        def show(i: int) -> str:
            k = int(keys[i])
            if len(names) == 1:
                return f"{names[0]}={k}"
            return f"{names[0]}={k >> 32}, {names[1]}={k & 0xFFFFFFFF}"

        t.add_examples(mask, None, 0, value=show)
        t.observed = {"repeated_keys": int(repeated.size)}
