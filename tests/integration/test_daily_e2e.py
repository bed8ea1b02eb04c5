"""movielens_daily when the data cannot be trained on, through `make demo` (Airflow's components on SQLite) and
`airflow dags test`: the file:// lake and a real local SMTP server. A run that succeeds on the file:// lake (zones, summary, report, emails, reruns, reuse of the
tuning) is tested once, on the deployed stack: tests/integration/test_airflow_stack.py."""

from __future__ import annotations

import pytest

from devenv import local_airflow
from tests import e2e
from tests.servers import free_port

pytestmark = pytest.mark.e2e

DS = "2026-11-20"


def airflow_env_for(tmp_path, mailbox, source) -> dict[str, str]:
    return e2e.airflow_env_for(tmp_path, mailbox, source, {"MOVIELENS_DEMO_USERS": "1"})


def test_make_demo_runs_on_airflows_components_and_says_why_a_run_failed(tmp_path, monkeypatch, capsys):
    """`make demo` (devenv.cli.demo) when nothing can be trained on (only a movies file and a bad ratings file
    land): it refuses to start while another process holds the Airflow home; then it runs the date on the
    scheduler and its workers (as `make ui` shows runs: the run's real start, a log per task), prints the failed
    task with its error and log, and the team gets the failure email; Spark never runs on rejected data."""
    import datetime as dt
    import shutil
    import sqlite3

    from devenv import cli
    from devenv.mailbox import Mailbox

    folder = tmp_path / "only_bad_ratings"
    folder.mkdir()
    (folder / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n")
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,9.0,964982703\n")
    lake = tmp_path / "lake"
    for key, value in {"MOVIELENS_DIR": str(folder), "MOVIELENS_LAKE_URL": lake.as_uri(),
                       "MOVIELENS_EMAIL_TO": "team@example.test", "MOVIELENS_CACHE_DIR": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    var = tmp_path / "var"
    port = free_port()

    with local_airflow.home_lock(var / "airflow", "`make ui` on http://localhost:8080"):
        assert cli.demo(DS, port=port, var_dir=var) == 1
    refused = capsys.readouterr().err
    assert "`make ui` on http://localhost:8080 (pid " in refused and "trigger the date from the UI" in refused
    assert not (var / "airflow" / "airflow.db").exists(), "nothing ran while the home was held"

    shutil.copyfile(e2e.migrated_db(), var / "airflow" / "airflow.db")  # (the session's; migrate then has nothing to do)
    started = dt.datetime.now(dt.timezone.utc)
    assert cli.demo(DS, port=port, var_dir=var) == 1
    out = capsys.readouterr().out
    task_log = var / "airflow" / "logs" / "dag_id=movielens_daily"
    assert "check_training_data: " in out and "no validated ratings file with ds <= 2026-11-20" in out, out[-3000:]
    [log] = task_log.glob("run_id=*/task_id=check_training_data/attempt=*.log")
    assert f"log: {log}" in out and "no validated ratings file" in log.read_text()
    assert len(list(task_log.glob("run_id=*/task_id=*/attempt=*.log"))) >= 4  # a log per task that ran
    with sqlite3.connect(var / "airflow" / "airflow.db") as db:
        [(state, start, run_type)] = db.execute("SELECT state, start_date, run_type FROM dag_run").fetchall()
    assert (state, run_type) == ("failed", "manual")
    assert dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc) >= started - dt.timedelta(seconds=5)

    assert (lake / "rejected" / f"ds={DS}" / "ratings.csv").read_bytes() == (folder / "ratings.csv").read_bytes()
    assert not (lake / "bronze").exists(), "Spark never ran on rejected data"
    assert not (lake / "claims" / f"ds={DS}.json").exists(), "the failed run let go of its date"
    failures = [m for m in Mailbox(var / "mail").messages() if "FAILED" in m["Subject"]]
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


def test_a_spark_job_past_its_time_limit_is_killed_retried_and_emailed(tmp_path, mailbox):
    """The local Spark job outlives MOVIELENS_SPARK_TIMEOUT_MINUTES (a hung job, as far as Airflow can tell):
    each try is stopped at its limit with its Spark processes (no writer is left behind for the retry), the last
    try's failure emails the team, and the run lets go of its date."""
    import datetime as dt

    import psutil

    from movielens.ingest import synthetic
    from spark_jobs.common import layout

    source = tmp_path / "source"
    synthetic.generate_size(source, "tiny", seed=3, end=dt.date.fromisoformat(DS))
    env = airflow_env_for(tmp_path, mailbox, source)
    env.update(MOVIELENS_SPARK_TIMEOUT_MINUTES="0.25", MOVIELENS_TASK_RETRIES="1", MOVIELENS_RETRY_DELAY_SECONDS="1")
    e2e.migrate(env)
    state = local_airflow.dags_test("movielens_daily", DS, env, conf={"ingest": "folder"}, log_file=tmp_path / "dags_test.log")
    log = (tmp_path / "dags_test.log").read_text()
    assert state == "failed", log[-3000:]
    lake = tmp_path / "lake"

    def spark_of_this_lake() -> list[str]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if str(lake) in cmdline and "daily.py" in cmdline:
                found.append(f"{proc.pid}: {cmdline[:200]}")
        return found

    assert spark_of_this_lake() == [], "a timed-out try leaves no Spark process writing the date"
    failures = [m for m in mailbox.messages() if "FAILED" in m["Subject"]]
    assert [m["Subject"] for m in failures] == [f"[movielens] FAILED movielens_daily.spark.local for {DS} (try 2)"]
    body = failures[0].get_body(preferencelist=("plain",)).get_content()
    assert "AirflowTaskTimeout" in body and "spark.local" in body, body[:2000]
    reports = lake / layout.REPORTS / f"ds={DS}"
    assert (reports / layout.ROUTING_RECORDS).is_dir() and not (reports / layout.RUN_SUMMARY).exists(), "routed, no summary"
    assert "Sending kill signal to spark-submit" in log and log.count("AirflowTaskTimeout") >= 2, "each try stopped at its limit"
    assert sorted(p.name for p in (lake / "validated" / f"ds={DS}").iterdir()) == sorted(p.name for p in source.glob("*.csv"))
    assert not (lake / "claims" / f"ds={DS}.json").exists(), "the failed run let go of its date"
