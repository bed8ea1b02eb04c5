"""movielens_daily with `airflow dags test` when the data cannot be trained on: the file:// lake and a real
local SMTP server. A run that succeeds on the file:// lake (zones, summary, report, emails, reruns, reuse of the
tuning) is tested once, on the deployed stack: tests/integration/test_airflow_stack.py."""

from __future__ import annotations

import pytest

from devenv import local_airflow
from tests import e2e

pytestmark = pytest.mark.e2e

DS = "2026-11-20"


def airflow_env_for(tmp_path, mailbox, source) -> dict[str, str]:
    return e2e.airflow_env_for(tmp_path, mailbox, source, {"MOVIELENS_DEMO_USERS": "1"})


def run_dag(tmp_path, mailbox, source, ds: str = DS):
    env = airflow_env_for(tmp_path, mailbox, source)
    e2e.migrate(env)
    return local_airflow.dags_test("movielens_daily", ds, env, conf={"ingest": "folder"}, log_file=tmp_path / "dags_test.log")


def test_no_valid_ratings_fails_the_run_with_a_failure_email(tmp_path, mailbox):
    """Only a movies file and a bad ratings file land: the run refuses to train and emails the team."""
    folder = tmp_path / "only_bad_ratings"
    folder.mkdir()
    (folder / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n")
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,9.0,964982703\n")
    state = run_dag(tmp_path, mailbox, folder)
    log = (tmp_path / "dags_test.log").read_text()
    assert state == "failed", log[-3000:]
    assert "no validated ratings file with ds <= 2026-11-20" in log
    lake = tmp_path / "lake"
    assert (lake / "rejected" / f"ds={DS}" / "ratings.csv").read_bytes() == (folder / "ratings.csv").read_bytes()
    assert not (lake / "bronze").exists(), "Spark never ran on rejected data"
    failures = [m for m in mailbox.messages() if "FAILED" in m["Subject"]]
    assert [m["Subject"] for m in failures] == [f"[movielens] FAILED movielens_daily.check_training_data for {DS} (try 1)"]
    for kind in ("html", "plain"):
        body = failures[0].get_body(preferencelist=(kind,)).get_content()
        assert "no validated ratings file" in body and "check_training_data" in body and "/tasks/check_training_data" in body


def test_files_that_never_land_time_out_with_a_failure_email(tmp_path, mailbox):
    """Nothing lands for the date: the deferred wait gives up after its timeout and emails the team."""
    env = airflow_env_for(tmp_path, mailbox, tmp_path / "no_source")
    env.update(MOVIELENS_WAIT_TIMEOUT_SECONDS="3", MOVIELENS_WAIT_POKE_SECONDS="1")
    e2e.migrate(env)
    state = local_airflow.dags_test("movielens_daily", DS, env, conf={"ingest": "none"}, log_file=tmp_path / "dags_test.log")
    log = (tmp_path / "dags_test.log").read_text()
    assert state == "failed", log[-3000:]
    assert f"timed out after 3 s waiting for the files of ds={DS}" in log
    assert not (tmp_path / "lake" / "bronze").exists(), "nothing ran after the wait"
    failures = [m for m in mailbox.messages() if "FAILED" in m["Subject"]]
    assert [m["Subject"] for m in failures] == [f"[movielens] FAILED movielens_daily.wait_for_landed_files for {DS} (try 1)"]
    body = failures[0].get_body(preferencelist=("html",)).get_content()
    assert "no ratings file in file://" in body and f"landing/ds={DS}" in body
