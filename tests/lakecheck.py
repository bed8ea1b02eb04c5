"""What a rerun or a backfill must leave unchanged in a file:// lake, and how to compare two snapshots.

One definition for the end-to-end tests (``airflow dags test`` reruns, backfills on the real scheduler):

- ``.csv`` files (validated/rejected copies): byte for byte;
- ``.json`` files (routing records, reports, run summaries, model parameters): equal once the values that
  are inherently per run are dropped: ids of the run (``run_id``, the Airflow run link), when it ran
  (``generated_at``, ``routed_at``, GX's ``run_date``) and how long it took (``timings_s``, every
  ``*_s`` duration, ``seconds``);
- Parquet datasets (bronze, silver, gold, models): the same rows, whatever Spark names its part files;
  a JSON object in a text column (``gold/model_tuning``'s ``params``) is compared as JSON files are.
"""

from __future__ import annotations

import json
from pathlib import Path

PER_RUN_KEYS = {"run_id", "generated_at", "routed_at", "run_date", "airflow_run", "seconds"}


def per_run(key: str) -> bool:
    return key in PER_RUN_KEYS or key.endswith("_s")  # durations: timings_s, train_timings_s, tuning_s, ...


def without_per_run(value):
    if isinstance(value, dict):
        return {k: without_per_run(v) for k, v in value.items() if not per_run(k)}
    if isinstance(value, list):
        return [without_per_run(v) for v in value]
    return value


def parquet_rows(folder: Path) -> list[str]:
    import pyarrow.parquet as pq

    def cell(value):
        if isinstance(value, str) and value.startswith("{"):
            try:
                return without_per_run(json.loads(value))
            except ValueError:
                pass
        return value

    table = pq.read_table(folder)
    rows = ({k: cell(v) for k, v in row.items()} for row in table.to_pylist())
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)


def snapshot(root: Path) -> dict[str, object]:
    """Every .csv (bytes), .json (without per-run values) and Parquet dataset (sorted rows) under ``root``."""
    root = Path(root)
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_file() and path.suffix == ".csv":
            out[key] = path.read_bytes()
        elif path.is_file() and path.suffix == ".json":
            out[key] = without_per_run(json.loads(path.read_bytes()))
        elif path.is_dir() and any(path.glob("*.parquet")):
            out[key + "/*.parquet"] = parquet_rows(path)
    return out


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What changed between two snapshots: added, removed and changed paths (empty when none)."""
    changes = [f"added {k}" for k in sorted(set(after) - set(before))]
    changes += [f"removed {k}" for k in sorted(set(before) - set(after))]
    changes += [f"changed {k}" for k in sorted(set(before) & set(after)) if before[k] != after[k]]
    return changes


def one_writer_per_date(lake, ds: str) -> None:
    """What every backend must do with claims (the file:// lake's unit test and the S3 and Azure ones)."""
    import datetime as dt

    import pytest

    from movielens.lake import DateClaimed

    first = lake.claim_date(ds, "manual__A", "movielens_daily on host-a (http://a:8080)")
    assert lake.claim_date(ds, "manual__A", "movielens_daily on host-a (http://a:8080)") == first  # a retry, a clear
    with pytest.raises(DateClaimed) as refused:
        lake.claim_date(ds, "manual__B", "movielens_daily on host-b (http://b:8080)")
    message = str(refused.value)
    assert f"ds={ds} is being written by run 'manual__A' of movielens_daily on host-a (http://a:8080)" in message
    assert f"if that run is gone for good, delete {lake.url}/claims/ds={ds}.json" in message
    other = (dt.date.fromisoformat(ds) + dt.timedelta(days=1)).isoformat()
    assert lake.claim_date(other, "manual__B", "b")["run_id"] == "manual__B"  # other dates are free
    assert lake.release_date(ds, "manual__B") is False and lake.read_json(lake.claim_path(ds)) == first
    assert lake.release_date(ds, "manual__A") is True and not lake.claim_path(ds).exists()
    assert lake.claim_date(ds, "manual__B", "b")["run_id"] == "manual__B"
