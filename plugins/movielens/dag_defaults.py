"""What every movielens DAG shares: owner, retries, time limits and the failure email (one definition for all DAGs)."""

from __future__ import annotations

import datetime as dt

#: Start of the schedule of the dated DAGs (timezone-aware, UTC).
START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
# Runs of movielens_daily at once: dates still run in order (wait_for_earlier_runs), but a date waiting for its
# files (the scheduled run of today, for hours) does not keep a manual run of another date queued.
MAX_ACTIVE_RUNS = 3


#: Time limits (read when the DAG is parsed), each a variable of minutes or hours; see docs/configuration.md.
#: A task's execution_timeout bounds one try's own work (a deferred wait has its own timeout: the landing sensor's
#: MOVIELENS_WAIT_TIMEOUT_SECONDS, the remote runs' MOVIELENS_DATABRICKS_TIMEOUT / MOVIELENS_EMR_TIMEOUT).
TIMEOUTS = {
    # Any task but Spark: the slowest measured is routing a 25 M-row ratings file (~40 s, bench/RESULTS.md).
    "task": ("MOVIELENS_TASK_TIMEOUT_MINUTES", 60.0, "minutes"),
    # The local Spark job: ML-25M end to end took ~21 min here (bench/RESULTS.md); tiny data ~2 min.
    "spark": ("MOVIELENS_SPARK_TIMEOUT_MINUTES", 240.0, "minutes"),
    # A whole run: up to 6 h waiting for files, up to 24 h for the run of the date before, then the work.
    "dagrun": ("MOVIELENS_DAGRUN_TIMEOUT_HOURS", 36.0, "hours"),
}


def timeout(kind: str) -> dt.timedelta:
    """The time limit of ``kind`` (a key of :data:`TIMEOUTS`), from its variable or its default."""
    import os

    env, default, unit = TIMEOUTS[kind]
    raw = os.environ.get(env, "").strip() or str(default)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{env} must be a number of {unit}, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{env} must be more than 0 {unit}, got {raw!r}")
    return dt.timedelta(**{unit: value})


#: Retries of a failed task (read when the DAG is parsed), each a variable: how many, and the wait before each.
#: Tasks whose external call is not idempotent set their own (``movielens.compute.tasks.NOT_RETRIED``: none).
RETRIES = {
    "retries": ("MOVIELENS_TASK_RETRIES", 2, 0, 10),
    "retry_delay_s": ("MOVIELENS_RETRY_DELAY_SECONDS", 30, 0, 3600),
}


def retry_setting(kind: str) -> int:
    """The whole number of :data:`RETRIES` ``kind``, from its variable or its default, within its bounds."""
    import os

    env, default, low, high = RETRIES[kind]
    raw = os.environ.get(env, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{env} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{env} must be between {low} and {high}, got {raw!r}")
    return value


def default_args() -> dict:
    from movielens.notify import FailureEmail

    return {
        "owner": "data-platform",
        "retries": retry_setting("retries"),
        "retry_delay": dt.timedelta(seconds=retry_setting("retry_delay_s")),
        "execution_timeout": timeout("task"),
        "on_failure_callback": FailureEmail(),
    }


def release_claim(ds: str | None, run_id: str | None) -> None:
    """Let go of ``run_id``'s claim on ``ds`` (:meth:`movielens.lake.Lake.claim_date`) when the run fails, so
    that another run of the date can write it; a clear takes it back. Never raises (a callback)."""
    import logging

    try:
        from movielens import pipeline

        if ds and run_id:
            pipeline.release_date(ds, run_id)
    except Exception:  # noqa: BLE001 - the claim's message then says how to drop it by hand
        logging.getLogger(__name__).exception("could not release the claim of %s on ds=%s", run_id, ds)


def release_date_of_failed_run(context) -> None:
    """The daily DAG's ``on_failure_callback`` (a run that failed without a task failing: its timeout)."""
    dag_run = context["dag_run"]
    release_claim(dag_run.logical_date.date().isoformat() if dag_run.logical_date else None, dag_run.run_id)


#: Hours after a date's logical date by which its lists should be published (MOVIELENS_PUBLISH_DEADLINE_HOURS).
DEFAULT_PUBLISH_DEADLINE_HOURS = 8.0


def publish_deadline():
    """The daily DAG's Deadline Alert: the missed-deadline email (:mod:`movielens.notify.deadline`) when a run has
    not finished ``MOVIELENS_PUBLISH_DEADLINE_HOURS`` after its logical date; ``off``: none. Read when the DAG
    is parsed (a deadline is part of the DAG's definition): a change takes effect at the next parse."""
    import os

    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    raw = os.environ.get("MOVIELENS_PUBLISH_DEADLINE_HOURS", "").strip() or str(DEFAULT_PUBLISH_DEADLINE_HOURS)
    if raw.lower() == "off":
        return None
    try:
        hours = float(raw)
    except ValueError:
        raise ValueError(f"MOVIELENS_PUBLISH_DEADLINE_HOURS must be a number of hours, got {raw!r}") from None
    if not 0 < hours <= 24 * 7:
        raise ValueError(f"MOVIELENS_PUBLISH_DEADLINE_HOURS must be between 0 and 168, got {raw!r}")
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=dt.timedelta(hours=hours),
                         callback=AsyncCallback("movielens.notify.deadline.email_missed_deadline"),
                         name="publish deadline")


def require_ds(ds: str | None) -> str:
    """The run's date partition. A run triggered without a logical date has none: fail at once, saying so."""
    if not ds:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            "this DAG works on the date partition of its logical date, and this run has none: trigger it with "
            "a logical date (the trigger form's Logical date field, or `airflow dags trigger -l YYYY-MM-DD`)"
        )
    return ds
