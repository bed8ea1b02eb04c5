"""Waiting for the day's files: what counts as arrived, the trigger's two outcomes, the timeout message."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from movielens import sensors

DS = "2026-11-20"


def _put(lake_url: str, zone: str, name: str) -> None:
    folder = Path(lake_url.removeprefix("file://")) / zone / f"ds={DS}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("userId,movieId,rating,timestamp\n")


def _events(trigger) -> list:
    async def collect():
        return [event async for event in trigger.run()]

    return asyncio.run(collect())


def test_a_kind_is_there_when_landed_or_already_routed(lake_url):
    assert sensors.missing_kinds(DS, ["ratings", "movies"]) == ["ratings", "movies"]
    _put(lake_url, "landing", "ratings_part1.csv")
    assert sensors.missing_kinds(DS, ["ratings", "movies"]) == ["movies"]
    _put(lake_url, "validated", "movies.csv")  # a rerun: movies were routed by the first run
    assert sensors.missing_kinds(DS, ["ratings", "movies"]) == []
    assert sensors.missing_kinds("2026-11-21", ["ratings"]) == ["ratings"], "another date's files do not count"


def test_a_compressed_file_is_landed_and_rejected_at_once_not_waited_on(lake_url, tmp_path):
    """ratings.csv.gz: land_folder lands it, the wait ends (its name claims the kind), routing rejects it saying
    why, and a half-written copy of another file (hidden) never counts as landed."""
    import gzip

    from movielens import config, pipeline
    from movielens.ingest import landing
    from movielens.lake import Lake

    source = tmp_path / "source"
    source.mkdir()
    (source / "ratings.csv.gz").write_bytes(gzip.compress(b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"))
    (source / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Animation\n")
    (source / "genome-tags.csv").write_text("tagId,tag\n1,funny\n")
    lake = Lake.from_settings(config.load())
    assert landing.land_folder(lake, source, DS) == ["movies.csv", "ratings.csv.gz"]
    _put(lake_url, "landing", ".tags.csv.partial")
    assert sensors.missing_kinds(DS, ["ratings", "movies", "tags"]) == ["tags"]
    record = pipeline.process_landed_file(DS, "manual__1", "ratings.csv.gz")
    assert record["zone"] == "rejected" and not record["passed"]
    assert record["failures"][0]["message"] == ("'ratings.csv.gz' is a compressed file (gz): land the uncompressed "
                                                ".csv (MovieLens files are plain CSV)")


def test_trigger_times_out_with_what_is_missing_then_fires_once_files_land(lake_url):
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)).isoformat()
    events = _events(sensors.LandedFilesTrigger(DS, ["ratings"], 0.01, past))
    assert [e.payload for e in events] == [{"status": "timeout", "ds": DS, "missing": ["ratings"]}]
    _put(lake_url, "landing", "ratings.csv")
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    trigger = sensors.LandedFilesTrigger(DS, ["ratings"], 0.01, future)
    assert [e.payload for e in _events(trigger)] == [{"status": "landed", "ds": DS}]
    # The triggerer rebuilds a trigger from its serialized form.
    path, kwargs = trigger.serialize()
    assert path == "movielens.sensors.LandedFilesTrigger" and sensors.LandedFilesTrigger(**kwargs).deadline == future


def test_sensor_fails_clearly_on_timeout(lake_url, monkeypatch):
    monkeypatch.setenv("MOVIELENS_WAIT_TIMEOUT_SECONDS", "5")
    sensor = sensors.LandedFilesSensor(task_id="wait_for_landed_files")
    with pytest.raises(AirflowFailException) as failure:
        sensor.execute_complete({}, {"status": "timeout", "ds": DS, "missing": ["ratings"]})
    message = str(failure.value)
    assert "timed out after 5 s" in message and "no ratings file in file://" in message and f"landing/ds={DS}" in message
    sensor.execute_complete({}, {"status": "landed", "ds": DS})  # no error once landed


def test_unknown_kinds_are_refused(monkeypatch):
    from movielens import config

    monkeypatch.setenv("MOVIELENS_WAIT_FOR_KINDS", "ratings,ratingz")
    with pytest.raises(ValueError, match="ratingz"):
        config.load()


class _FakeTI:
    """What ``unfinished_earlier_run`` uses of the running task instance: the previous Dag run."""

    def __init__(self, previous):
        self.previous = previous

    def get_previous_dagrun(self):
        return self.previous


def _run(state: str):
    from types import SimpleNamespace

    from airflow.utils.state import DagRunState

    return SimpleNamespace(run_id="backfill__2026-11-19T00:00:00+00:00", state=DagRunState(state),
                           logical_date=dt.datetime(2026, 11, 19, tzinfo=dt.timezone.utc))


@pytest.mark.parametrize("state", ["queued", "running"])
def test_a_date_waits_while_the_previous_dates_run_is_unfinished(state):
    assert sensors.unfinished_earlier_run(_FakeTI(_run(state))) == {
        "run_id": "backfill__2026-11-19T00:00:00+00:00", "state": state, "ds": "2026-11-19"}


@pytest.mark.parametrize("state", ["success", "failed"])
def test_a_finished_previous_run_or_none_does_not_hold_a_date_up(state):
    assert sensors.unfinished_earlier_run(_FakeTI(_run(state))) is None
    assert sensors.unfinished_earlier_run(_FakeTI(None)) is None
