"""The GX suites in ``expectations/<kind>.json``: loading, run-time parameters, and the parsed form the
streaming evaluator runs.

The JSON files are GX Core 1.x ``ExpectationSuite.to_json_dict()`` documents and the single source of
truth of what is checked: :func:`gx_suite` loads one into GX (``ExpectationSuite(**json)``), and
:func:`load_spec` parses the same JSON for :mod:`movielens.validation.evaluator`, which refuses any
expectation type it does not implement (so a suite can never ask for a check that silently does not
happen). Every expectation carries ``meta.check``: the failure name ``validate_file`` reports.

Suite parameters (GX ``{"$PARAMETER": name}``), evaluated at run time, both by GX
(``batch.validate(..., expectation_parameters=...)``) and by the evaluator:

- ``max_timestamp``: the last second of the run date, 23:59:59 UTC, as epoch seconds
  (:func:`max_timestamp_for`); ratings and tags from after the run date are rejected.
- ``known_movie_ids``: the movieIds of this date's and earlier validated movies files, given by the
  caller (``validate_file(..., known_movie_ids=...)``). When the caller gives none, the expectations
  that use it (``movie_id_known``) are left out, and a note says so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from movielens.validation.model import FILE_KINDS

SUITES_DIR = Path(__file__).resolve().parents[3] / "expectations"

#: Expectation types the streaming evaluator implements (with the GX semantics on pandas).
COLUMN_MAP_TYPES = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_unique",
    }
)
TABLE_TYPES = frozenset({"expect_table_columns_to_match_ordered_list", "expect_table_row_count_to_be_between"})
MULTI_TYPES = frozenset({"expect_compound_columns_to_be_unique"})
SUPPORTED_TYPES = COLUMN_MAP_TYPES | TABLE_TYPES | MULTI_TYPES

# GX type_ names -> how the column is read ("int" = int64, "float" = float64, "str" = text).
_TYPE_NAMES = {
    "int": "int", "int64": "int", "Int64": "int", "long": "int",
    "float": "float", "float64": "float", "Float64": "float", "double": "float",
    "str": "str", "string": "str", "object": "str", "string_types": "str",
}


@dataclass
class ExpectationSpec:
    type: str
    check: str
    kwargs: dict[str, Any]  # as in the JSON: may hold {"$PARAMETER": ...}
    description: str = ""

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    @property
    def columns(self) -> list[str]:
        if "column_list" in self.kwargs and self.type in MULTI_TYPES:
            return list(self.kwargs["column_list"])
        return [self.column] if self.column else []

    @property
    def mostly(self) -> float | None:
        return self.kwargs.get("mostly")

    def parameters(self) -> set[str]:
        return {v["$PARAMETER"] for v in self.kwargs.values() if isinstance(v, dict) and "$PARAMETER" in v}

    def resolved(self, params: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in self.kwargs.items():
            if isinstance(value, dict) and "$PARAMETER" in value:
                value = params[value["$PARAMETER"]]
            out[key] = value
        return out


@dataclass
class SuiteSpec:
    kind: str
    name: str
    path: Path
    document: dict[str, Any]  # the JSON as loaded
    columns: list[str]  # the header, in order
    column_types: dict[str, str]  # column -> "int" | "float" | "str"
    expectations: list[ExpectationSpec] = field(default_factory=list)
    digest: str = ""  # sha256 of the JSON text

    @property
    def all_numeric(self) -> bool:
        return all(self.column_types[c] != "str" for c in self.columns)

    def parameter_names(self) -> set[str]:
        return set().union(*(e.parameters() for e in self.expectations)) if self.expectations else set()


_cache: dict[tuple, SuiteSpec] = {}
_lock = threading.Lock()


def suite_path(kind: str, suites_dir: Path | None = None) -> Path:
    if kind not in FILE_KINDS:
        raise ValueError(f"unknown file kind {kind!r}; expected one of {FILE_KINDS}")
    return (suites_dir or SUITES_DIR) / f"{kind}.json"


def load_spec(kind: str, suites_dir: Path | None = None) -> SuiteSpec:
    """Parse ``expectations/<kind>.json`` (cached while the file is unchanged)."""
    path = suite_path(kind, suites_dir)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        if key in _cache:
            return _cache[key]
    text = path.read_text(encoding="utf-8")
    spec = _parse(kind, path, json.loads(text))
    spec.digest = hashlib.sha256(text.encode()).hexdigest()
    with _lock:
        _cache[key] = spec
    return spec


def _parse(kind: str, path: Path, document: dict) -> SuiteSpec:
    where = f"{path.name}"
    expectations: list[ExpectationSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(document.get("expectations", [])):
        etype = raw.get("type")
        if etype not in SUPPORTED_TYPES:
            raise ValueError(
                f"{where}: expectation #{i} {etype!r} is not implemented by the streaming evaluator "
                f"(movielens.validation.evaluator); supported: {sorted(SUPPORTED_TYPES)}"
            )
        meta = raw.get("meta") or {}
        check = meta.get("check")
        if not check:
            raise ValueError(f"{where}: expectation #{i} ({etype}) has no meta.check name")
        if check in seen:
            raise ValueError(f"{where}: meta.check {check!r} is used twice")
        seen.add(check)
        expectations.append(ExpectationSpec(etype, check, dict(raw.get("kwargs") or {}), meta.get("description", "")))
    ordered = [e for e in expectations if e.type == "expect_table_columns_to_match_ordered_list"]
    if len(ordered) != 1:
        raise ValueError(f"{where}: needs exactly one expect_table_columns_to_match_ordered_list (the header)")
    columns = list(ordered[0].kwargs["column_list"])
    types: dict[str, str] = {c: "str" for c in columns}
    for e in expectations:
        for c in e.columns:
            if c not in columns:
                raise ValueError(f"{where}: {e.check} uses column {c!r}, not in the header {columns}")
        if e.type == "expect_column_values_to_be_of_type":
            names = [e.kwargs["type_"]]
        elif e.type == "expect_column_values_to_be_in_type_list":
            names = list(e.kwargs["type_list"])
        else:
            continue
        kinds = {_TYPE_NAMES.get(n) for n in names}
        if None in kinds or len(kinds) != 1:
            raise ValueError(f"{where}: {e.check}: type(s) {names} not understood (use one of {sorted(_TYPE_NAMES)})")
        types[e.column] = kinds.pop()
    for e in expectations:
        if e.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
            if any(types[c] != "int" for c in e.columns) or len(e.columns) > 2:
                raise ValueError(f"{where}: {e.check}: uniqueness is implemented for one or two integer columns")
    return SuiteSpec(kind, document.get("name", kind), path, document, columns, types, expectations)


def max_timestamp_for(run_date: dt.date) -> int:
    """Epoch seconds of 23:59:59 UTC on ``run_date`` (the suite parameter ``max_timestamp``)."""
    end = dt.datetime.combine(run_date, dt.time(23, 59, 59), tzinfo=dt.timezone.utc)
    return int(end.timestamp())


def run_parameters(spec: SuiteSpec, run_date: dt.date, known_movie_ids) -> tuple[dict[str, Any], list[str], list[str]]:
    """(parameters, checks left out for want of a parameter, notes)."""
    available: dict[str, Any] = {"max_timestamp": max_timestamp_for(run_date)}
    if known_movie_ids is not None:
        available["known_movie_ids"] = known_movie_ids
    used = spec.parameter_names()
    unknown = used - {"max_timestamp", "known_movie_ids"}
    if unknown:
        raise ValueError(f"{spec.path.name}: unknown suite parameter(s) {sorted(unknown)}")
    skipped, notes = [], []
    for e in spec.expectations:
        missing = e.parameters() - set(available)
        if missing:
            skipped.append(e.check)
            notes.append(f"{e.check}: not checked (no {', '.join(sorted(missing))} given)")
    if known_movie_ids is not None and "known_movie_ids" not in used:
        notes.append(f"known_movie_ids given but the {spec.kind} suite does not use them")
    params = {k: v for k, v in available.items() if k in used}
    return params, skipped, notes


# --- GX objects (imported on first use: `import great_expectations` takes seconds) -----------------

_gx_lock = threading.Lock()
_gx_env: dict[str, Any] = {}
_gx_suites: dict[tuple, Any] = {}


def gx_environment():
    """(great_expectations module, ephemeral context, pandas whole-dataframe batch definition), once."""
    with _gx_lock:
        if not _gx_env:
            import logging

            import great_expectations as gx

            # GX logs internal chatter at INFO for every expectation ("_get_default_value called ...").
            logging.getLogger("great_expectations").setLevel(logging.WARNING)
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            asset = context.data_sources.add_pandas("movielens_validation").add_dataframe_asset("landed_rows")
            _gx_env.update(gx=gx, context=context, batch_definition=asset.add_batch_definition_whole_dataframe("rows"))
        return _gx_env["gx"], _gx_env["context"], _gx_env["batch_definition"]


def gx_suite(spec: SuiteSpec, leave_out: tuple[str, ...] = ()):
    """The kind's suite as a GX ``ExpectationSuite``, built from the same JSON (cached)."""
    gx, _, _ = gx_environment()
    key = (spec.digest, leave_out)
    with _gx_lock:
        if key not in _gx_suites:
            document = dict(spec.document)
            document["expectations"] = [
                e for e in spec.document["expectations"] if (e.get("meta") or {}).get("check") not in leave_out
            ]
            _gx_suites[key] = gx.ExpectationSuite(**document)
        return _gx_suites[key]
