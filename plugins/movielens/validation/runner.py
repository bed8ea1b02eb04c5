"""Validate one landed file: file-level checks, then its Great Expectations suite, chunk by chunk.

Rows are read in chunks of ``CHUNK_ROWS`` (bounded memory whatever the file size), typed (a value
that is not a number where one is expected becomes null, so GX's not-null expectation reports it, with
the raw text as the example), and validated with the suite of the file's kind. Uniqueness that spans
chunks (ratings' (userId, movieId), movies' movieId) is checked with sorted int64 keys at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from movielens.config import PROJECT_ROOT
from movielens.validation.filechecks import MAX_EXAMPLES, Failure, iter_records, scan_bytes

SUITES_DIR = PROJECT_ROOT / "expectations"
CHUNK_ROWS = 500_000

# How each column is read before GX sees it: int / float (non-numbers -> null), str (empty -> null),
# or text (kept as written; empty -> null; used for ids with leading zeros and optional fields).
COLUMNS: dict[str, dict[str, str]] = {
    "ratings": {"userId": "int", "movieId": "int", "rating": "float", "timestamp": "int"},
    "movies": {"movieId": "int", "title": "str", "genres": "str"},
    "tags": {"userId": "int", "movieId": "int", "tag": "str", "timestamp": "int"},
    "links": {"movieId": "int", "imdbId": "text", "tmdbId": "text"},
}
FILE_KINDS = tuple(COLUMNS)
_INT = re.compile(r"^-?\d+$")


@dataclass
class ValidationOutcome:
    kind: str
    passed: bool
    rows: int | None
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gx_summary: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=None)
def load_suite_dict(kind: str) -> str:
    path = SUITES_DIR / f"{kind}.json"
    if not path.exists():
        raise FileNotFoundError(f"no Great Expectations suite for kind {kind!r} at {path}")
    return path.read_text()


@lru_cache(maxsize=1)
def _gx():
    """One ephemeral GX context with a pandas batch definition, built on first use (GX imports slowly)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("movielens_landing").add_dataframe_asset("landed_file")
    return gx, asset.add_batch_definition_whole_dataframe("chunk")


def _typed_frame(lines: list[int], rows: list[list[str]], kind: str):
    import pandas as pd

    raw = pd.DataFrame(rows, columns=list(COLUMNS[kind]), index=pd.Index(lines, name="line"))
    typed = pd.DataFrame(index=raw.index)
    for column, how in COLUMNS[kind].items():
        values = raw[column].str.strip()
        if how == "int":
            ok = values.str.fullmatch(_INT.pattern)
            typed[column] = pd.to_numeric(values.where(ok), errors="coerce").astype("Int64")
        elif how == "float":
            typed[column] = pd.to_numeric(values, errors="coerce")
        else:
            typed[column] = raw[column].where(raw[column].str.strip() != "", None)
    return raw, typed


def _check_name(config: dict) -> str:
    meta = config.get("meta") or {}
    if meta.get("check"):
        return meta["check"]
    kwargs = config["kwargs"]
    column = kwargs.get("column") or "+".join(kwargs.get("column_list", [])) or "table"
    return f"{column}:{config['type']}"


def _examples(result: dict, raw, column: str | None) -> list[dict]:
    out = []
    for item in (result.get("unexpected_index_list") or [])[:MAX_EXAMPLES]:
        line = item.get("line") if isinstance(item, dict) else item
        if line is None:
            continue
        if column and column in raw.columns:
            value = raw.at[line, column]
        else:
            value = ",".join(str(v) for v in raw.loc[line].tolist())
        out.append({"line": int(line), "value": str(value)})
    return out


class _Accumulator:
    """Collects per-chunk GX results into one verdict per expectation."""

    def __init__(self):
        self.by_check: dict[str, dict] = {}

    def add(self, gx_result: dict, raw) -> None:
        for r in gx_result["results"]:
            config = r["expectation_config"]
            name = _check_name(config)
            entry = self.by_check.setdefault(
                name,
                {"config": config, "unexpected": 0, "elements": 0, "examples": [], "success": True, "observed": None},
            )
            result = r.get("result") or {}
            entry["unexpected"] += int(result.get("unexpected_count") or 0)
            entry["elements"] += int(result.get("element_count") or 0)
            if result.get("observed_value") is not None:
                entry["observed"] = result["observed_value"]
            room = MAX_EXAMPLES - len(entry["examples"])
            if room > 0 and result.get("unexpected_count"):
                entry["examples"] += _examples(result, raw, config["kwargs"].get("column"))[:room]
            if not r["success"]:
                entry["success"] = False

    def verdicts(self) -> tuple[list[Failure], list[str], dict]:
        failures, notes, summary = [], [], {}
        for name, e in self.by_check.items():
            mostly = e["config"]["kwargs"].get("mostly")
            if mostly and e["elements"]:
                # Chunk verdicts on a `mostly` expectation are combined over the whole file.
                e["success"] = e["unexpected"] <= (1 - mostly) * e["elements"] + 1e-9
            summary[name] = {"success": e["success"], "unexpected_count": e["unexpected"], "element_count": e["elements"]}
            if not e["success"]:
                what = f"{e['unexpected']} of {e['elements']} value(s) fail" if e["elements"] else f"observed {e['observed']}"
                failures.append(Failure(name, f"{e['config']['type']} {json.dumps(_printable_kwargs(e['config']['kwargs']))}: {what}", e["examples"]))
            elif e["unexpected"]:
                notes.append(
                    f"{name}: {e['unexpected']} of {e['elements']} value(s) fail, within mostly={mostly}; "
                    f"tolerated (e.g. line {e['examples'][0]['line']}: {e['examples'][0]['value']})" if e["examples"] else ""
                )
        return failures, [n for n in notes if n], summary


def _printable_kwargs(kwargs: dict) -> dict:
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, (list, set)) and len(value) > 12:
            out[key] = f"<{len(value)} values>"
        else:
            out[key] = value
    return out


def _duplicates(keys, lines) -> tuple[int, list[dict]]:
    import numpy as np

    if keys.size == 0:
        return 0, []
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1]) + 1
    examples = [{"line": int(lines[order][i]), "value": str(int(sorted_keys[i]))} for i in dup[:MAX_EXAMPLES]]
    return int(dup.size), examples


def validate_file(path, kind: str, run_date: dt.date, *, known_movie_ids: "set[int] | None" = None) -> ValidationOutcome:
    """Validate a landed file (anything with ``.open('rb')``) as ``kind`` for the run date."""
    import numpy as np

    if kind not in COLUMNS:
        raise ValueError(f"unknown file kind {kind!r}; one of {FILE_KINDS}")
    with path.open("rb") as handle:
        scan = scan_bytes(handle)
    outcome = ValidationOutcome(kind=kind, passed=False, rows=None, failures=list(scan.failures), notes=list(scan.notes))
    if outcome.failures:
        return outcome

    gx, batch_definition = _gx()
    suite = gx.ExpectationSuite(**json.loads(load_suite_dict(kind)))
    end_of_day = dt.datetime.combine(run_date, dt.time(23, 59, 59), tzinfo=dt.timezone.utc)
    parameters: dict[str, Any] = {"max_timestamp": int(end_of_day.timestamp())}
    uses_known = any((e.meta or {}).get("check") == "movie_id_known" for e in suite.expectations)
    if uses_known:
        if known_movie_ids is None:
            suite.expectations = [e for e in suite.expectations if (e.meta or {}).get("check") != "movie_id_known"]
            outcome.notes.append("movie_id_known: not checked (no known movie ids were given)")
        else:
            parameters["known_movie_ids"] = sorted(known_movie_ids)
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["line"], "partial_unexpected_count": MAX_EXAMPLES}

    accumulator = _Accumulator()
    structural: list[Failure] = []
    key_parts, line_parts = [], []
    rows = 0
    lines: list[int] = []
    buffer: list[list[str]] = []

    def flush():
        raw, typed = _typed_frame(lines, buffer, kind)
        batch = batch_definition.get_batch(batch_parameters={"dataframe": typed})
        accumulator.add(batch.validate(suite, result_format=result_format, expectation_parameters=parameters).to_json_dict(), raw)
        if kind == "ratings":
            u = typed["userId"].fillna(0).to_numpy(dtype="int64")
            m = typed["movieId"].fillna(0).to_numpy(dtype="int64")
            key_parts.append((u << 32) | (m & 0xFFFFFFFF))
        elif kind in ("movies", "links"):
            key_parts.append(typed["movieId"].fillna(0).to_numpy(dtype="int64"))
        line_parts.append(np.asarray(lines, dtype="int64"))

    with path.open("rb") as handle:
        for line, fields in iter_records(handle, list(COLUMNS[kind]), scan, structural):
            lines.append(line)
            buffer.append(fields)
            rows += 1
            if len(buffer) >= CHUNK_ROWS:
                flush()
                lines, buffer = [], []
        if buffer:
            flush()
    outcome.rows = rows
    if structural:
        outcome.failures += structural
        return outcome
    if not scan.ends_with_newline:
        outcome.notes.append("no line break after the last line: accepted (the last line is complete)")

    failures, notes, summary = accumulator.verdicts()
    # Uniqueness across chunks (within one chunk GX already saw it; report once, from the whole file).
    if len(key_parts) > 1:
        count, examples = _duplicates(np.concatenate(key_parts), np.concatenate(line_parts))
        name = "userId+movieId:expect_compound_columns_to_be_unique" if kind == "ratings" else "movieId:expect_column_values_to_be_unique"
        if kind in ("ratings", "movies", "links") and count and all(f.check != name for f in failures):
            failures.append(Failure(name, f"{count} duplicate key(s) across the file", examples))
    outcome.failures += failures
    outcome.notes += notes
    outcome.gx_summary = {
        "suite": suite.name,
        "evaluated_expectations": len(summary),
        "successful_expectations": sum(1 for s in summary.values() if s["success"]),
        "unsuccessful_expectations": sum(1 for s in summary.values() if not s["success"]),
        "chunks": len(line_parts),
        "results": summary,
    }
    outcome.passed = not outcome.failures
    return outcome
