"""What every movielens DAG shares: owner, retries and the failure email (one definition for all DAGs)."""

from __future__ import annotations

import datetime as dt

#: Start of the schedule of the dated DAGs (timezone-aware, UTC).
START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def default_args() -> dict:
    from movielens.notify import FailureEmail

    return {
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "on_failure_callback": FailureEmail(),
    }


def require_ds(ds: str | None) -> str:
    """The run's date partition. A run triggered without a logical date has none: fail at once, saying so."""
    if not ds:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            "this DAG works on the date partition of its logical date, and this run has none: trigger it with "
            "a logical date (the trigger form's Logical date field, or `airflow dags trigger -l YYYY-MM-DD`)"
        )
    return ds
