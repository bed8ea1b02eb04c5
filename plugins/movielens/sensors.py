"""Waiting for the day's files: a deferrable sensor over the lake's landing zone (file://, s3://, abfs://).

The day's files have arrived when every kind in ``MOVIELENS_WAIT_FOR_KINDS`` (default ``ratings``) has a
file in ``landing/ds=D/``, or has already been routed for D (a rerun or backfill of a date whose files
went to ``validated/`` or ``rejected/`` must not wait for them again). While they have not, the task
defers to :class:`LandedFilesTrigger`, which lists the lake from the triggerer every
``MOVIELENS_WAIT_POKE_SECONDS`` and gives up after ``MOVIELENS_WAIT_TIMEOUT_SECONDS``: the task then
fails without retrying (``AirflowFailException``: waiting again is what the timeout already did; retries
still cover a listing that errors) with a message saying what is missing
and where, and the failure email goes out.

A date also waits for the run of the date before it (:func:`unfinished_earlier_run`): routing checks
ratings against the movies validated up to D, and Spark builds silver from every bronze partition up
to D, so two dates processed at once (a backfill runs up to ``--max-active-runs`` dates together, 10 by
default on the command line; the DAG's ``max_active_runs`` does not bound backfills) would each read
a half-written history. Waiting for the previous date, which itself waited for its own, processes the
dates in order whatever the concurrency.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent


def missing_kinds(ds: str, kinds: list[str]) -> list[str]:
    """The kinds with no file in landing for ``ds`` and none routed for ``ds`` yet. A file whose name claims a
    kind counts even when it cannot be read as one (``ratings.csv.gz``): routing rejects it with the reason at
    once, rather than the run waiting its whole timeout beside it."""
    from movielens import config
    from movielens.lake import Lake
    from spark_jobs.common import layout

    lake = Lake.from_settings(config.load())
    present = {layout.claimed_kind(p.name) for p in lake.landed_files(ds)}
    for zone in (layout.VALIDATED, layout.REJECTED):
        present |= {layout.claimed_kind(p.name) for p in lake.files(zone, ds)}
    return [kind for kind in kinds if kind not in present]


class LandedFilesTrigger(BaseTrigger):
    """Polls the lake until no kind is missing or the deadline passes; one event either way."""

    def __init__(self, ds: str, kinds: list[str], poke_seconds: float, deadline: str):
        super().__init__()
        self.ds, self.kinds, self.poke_seconds, self.deadline = ds, list(kinds), float(poke_seconds), deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"ds": self.ds, "kinds": self.kinds, "poke_seconds": self.poke_seconds, "deadline": self.deadline},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = dt.datetime.fromisoformat(self.deadline)
        while True:
            # Listing an object store is blocking I/O: off the triggerer's event loop.
            missing = await asyncio.to_thread(missing_kinds, self.ds, self.kinds)
            if not missing:
                yield TriggerEvent({"status": "landed", "ds": self.ds})
                return
            if dt.datetime.now(dt.timezone.utc) >= deadline:
                yield TriggerEvent({"status": "timeout", "ds": self.ds, "missing": missing})
                return
            await asyncio.sleep(self.poke_seconds)


class LandedFilesSensor(BaseSensorOperator):
    """Waits, deferred, until the day's files are in landing (or already routed); settings read at run time."""

    def execute(self, context) -> None:
        from movielens import config

        settings = config.load()
        ds = context["ds"]
        missing = missing_kinds(ds, settings.wait_for_kinds)
        if not missing:
            self.log.info("the files of ds=%s are there (%s)", ds, ", ".join(settings.wait_for_kinds))
            return
        deadline = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=settings.wait_timeout_seconds)
        self.log.info("waiting for %s files of ds=%s in landing until %s", ", ".join(missing), ds, deadline.isoformat())
        self.defer(
            trigger=LandedFilesTrigger(ds, settings.wait_for_kinds, settings.wait_poke_seconds, deadline.isoformat()),
            method_name="execute_complete",
        )

    def execute_complete(self, context, event: dict[str, Any]) -> None:
        if event["status"] != "landed":
            from movielens import config
            from movielens.lake import Lake
            from spark_jobs.common import layout

            settings = config.load()
            lake = Lake.from_settings(settings)
            where = lake.uri(lake.zone(layout.LANDING, event["ds"]))
            raise AirflowFailException(
                f"timed out after {settings.wait_timeout_seconds} s waiting for the files of ds={event['ds']}: "
                f"no {', '.join(event['missing'])} file in {where} (MOVIELENS_WAIT_FOR_KINDS="
                f"{','.join(settings.wait_for_kinds)}, MOVIELENS_WAIT_TIMEOUT_SECONDS)"
            )
        self.log.info("the files of ds=%s have landed", event["ds"])


#: Dag run states of a run that has not finished yet.
UNFINISHED_RUN_STATES = ("queued", "running")


def wait_for_earlier_run(ti) -> bool:
    """True (done waiting) unless the previous date's run is queued or running; logs which one it waits for."""
    earlier = unfinished_earlier_run(ti)
    if earlier:
        print(f"waiting for the run of ds={earlier['ds']} ({earlier['run_id']}, {earlier['state']}) to finish: "
              "this date reads the history that run writes")
    return earlier is None


def unfinished_earlier_run(ti) -> dict[str, str] | None:
    """The previous run of this DAG (latest logical date before this run's) when it has not finished.

    ``ti`` is the running task instance (``context["ti"]``); the metadata DB is reached through the
    Task SDK (``get_previous_dagrun``). A finished previous run, failed or not, does not hold a date up.
    """
    previous = ti.get_previous_dagrun()
    if previous is None or str(getattr(previous.state, "value", previous.state)) not in UNFINISHED_RUN_STATES:
        return None
    logical = previous.logical_date
    return {
        "run_id": previous.run_id,
        "state": str(getattr(previous.state, "value", previous.state)),
        "ds": logical.date().isoformat() if logical else "",
    }
