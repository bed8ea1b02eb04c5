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
