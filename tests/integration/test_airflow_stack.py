"""Airflow 3 as deployed, without Docker: ``airflow api-server``, ``scheduler`` (LocalExecutor),
``dag-processor`` and ``triggerer`` as separate processes (``devenv.local_airflow.AirflowStack``, what
``make ui`` runs) on a real PostgreSQL metadata DB, with generated data, the file:// lake, local Spark and a
real SMTP server.

One stack and one lake serve the module, in the order a team meets them:

- ``movielens_daily`` triggered through the REST API (token, unpause, ``POST .../dagRuns`` with a conf
  and a logical date), landing a folder with one bad file beside the good ones: the lake's zones and
  tables, the run summary, the report, the Data Docs, the success and incident emails, and the
  recommendations published to the serving database (a second database of the same PostgreSQL). Its
  movies file names genres as ml-100k/ml-1m/ml-10m do (Children's, unknown). This first date tunes both models;
- the same run cleared (``POST .../dagRuns/{id}/clear``), so it runs again, its Spark job killed (SIGKILL)
  mid-write and retried by Airflow: nothing in the lake changes but the per-run values, tuning included;
- ``airflow backfill create`` of the next two dates, whose files landed beforehand, with the command
  line's default max active runs (the dates must still run in date order): each reuses the first date's
  tuned parameters; then the same dates again with ``--reprocess-behavior completed``: nothing changes;
- the web UI in a real Chromium (Playwright): the login page, the DAG list, ``movielens_similar_movies``
  from the trigger form, the run's success and the answer in the task log; and a movie the model does not
  know, through the REST API: the run fails saying so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Callable
from urllib.parse import quote, unquote, urljoin

import pytest

from devenv import local_airflow
from devenv.mailbox import Mailbox
from spark_jobs.common import layout, spec
from tests import lakecheck
from tests.servers import free_port

API = "/movielens/api/v1"

pytestmark = pytest.mark.e2e

DAILY = "movielens_daily"
SIMILAR = "movielens_similar_movies"
TODAY = dt.date.today()
# The first date tunes; the backfill's dates follow it within the tuning interval (7 days), so they reuse.
DS = (TODAY - dt.timedelta(days=13)).isoformat()
BACKFILL_DATES = [(TODAY - dt.timedelta(days=n)).isoformat() for n in (12, 11)]
RANKING_KEYS = {"precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10", "hit_rate_at_10", "catalog_coverage"}
METRIC_KEYS = {"rmse", "mae"} | RANKING_KEYS
SUCCESS = f"[movielens] {DAILY} {DS}: 4 files validated, 1 rejected"
CHROMIUM = "/usr/bin/chromium"


@dataclasses.dataclass
class Deployment:
    stack: local_airflow.AirflowStack
    lake: Path
    work: Path
    source: Path  # MOVIELENS_DIR: what the REST run lands
    mail: Mailbox
    serving: Callable[[str], list[tuple]]  # SQL on the serving database
    metadata: Callable[[str], list[tuple]]  # SQL on Airflow's metadata database

    def summary(self, ds: str) -> dict:
        return json.loads((self.lake / layout.REPORTS / f"ds={ds}" / layout.RUN_SUMMARY).read_text())

    def spark_report(self, ds: str) -> dict:
        return json.loads((self.lake / layout.REPORTS / f"ds={ds}" / layout.SPARK_REPORT).read_text())

    def latest_ds(self) -> str:
        """The latest date with a run summary: the model a run triggered now answers from."""
        summaries = (self.lake / layout.REPORTS).glob(f"ds=*/{layout.RUN_SUMMARY}")
        return max(p.parent.name.removeprefix("ds=") for p in summaries)

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        task = self.stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        [log] = task.glob("attempt=*.log")
        return log.read_text()

    def explain(self, dag_id: str, run_id: str) -> str:
        """Task states and where the logs are, for an assertion message."""
        return f"tasks: {self.stack.task_states(dag_id, run_id)}; component logs: {self.stack.log_dir}; task logs: {self.stack.home / 'logs'}"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres_server):
    from movielens.ingest import synthetic

    work = tmp_path_factory.mktemp("stack")
    source = work / "source"
    synthetic.generate_size(source, "tiny", seed=7, end=dt.date.fromisoformat(DS))
    # The genre names of the older releases, as a CSV another tool made of ml-100k would have them.
    movies = (source / "movies.csv").read_text()
    assert "|Children" in movies and layout.NO_GENRES in movies
    (source / "movies.csv").write_text(movies.replace("Children", "Children's").replace(layout.NO_GENRES, "unknown"))
    # One bad file beside the good ones: it must be rejected with a report while the run goes on.
    (source / "ratings_broken.csv").write_text("userId,movieId,rating,timestamp\n1,1,7.5,964982703\n2,1,4.0,964982703\n")
    serving_db = postgres_server.create_database("movielens_serving")
    with Mailbox(work / "mail") as mail:
        env = local_airflow.airflow_env(
            home=work / "airflow",
            smtp_conn=mail.connection_uri_json(),
            lake_url=(work / "lake").as_uri(),
            api_port=free_port(),
            extra={
                "MOVIELENS_DIR": str(source),
                "MOVIELENS_EMAIL_TO": "team@example.test",
                "MOVIELENS_DEMO_USERS": "1",
                "MOVIELENS_CACHE_DIR": str(work / "cache"),
                "MOVIELENS_SPARK_DRIVER_MEMORY": "1g",
                "MOVIELENS_SERVING_CONN_ID": "movielens_serving",
                "MOVIELENS_RETRY_DELAY_SECONDS": "5",  # the clear test's killed Spark job is retried
                "AIRFLOW_CONN_MOVIELENS_SERVING": postgres_server.connection_json(serving_db),
                # Unpausing must not start today's scheduled run: the tests make every run themselves.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                # The DAG files do not change during the module: parse them once, not every 30 s (each parse
                # of the two files costs the shared 2 cores about a second).
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "1800",
            },
        )
        database = postgres_server.create_database("airflow_stack")
        stack = local_airflow.AirflowStack(env, log_dir=work / "logs", sql_alchemy_conn=postgres_server.sqlalchemy_url(database))
        try:
            stack.start()
            stack.wait_for_dags([DAILY, SIMILAR])
            stack.unpause(DAILY)
            yield Deployment(stack, work / "lake", work, source, mail,
                             lambda sql: postgres_server.execute(sql, database=serving_db),
                             lambda sql: postgres_server.execute(sql, database=database))
        finally:
            stack.stop()


@pytest.fixture(scope="module")
def daily_run(deployment) -> dict:
    """``movielens_daily`` for DS through the REST API, landing MOVIELENS_DIR's files; the finished run."""
    run = deployment.stack.trigger(DAILY, DS, conf={"ingest": "folder"})
    return deployment.stack.wait_for_run(DAILY, run["dag_run_id"], timeout=900)


def test_the_stack_runs_on_postgresql_and_needs_a_login(deployment):
    stack = deployment.stack
    health = stack.health()
    assert {health[k]["status"] for k in ("metadatabase", "scheduler", "dag_processor", "triggerer")} == {"healthy"}
    config = stack.airflow(["config", "get-value", "database", "sql_alchemy_conn"], capture_output=True, text=True)
    assert config.stdout.strip().startswith("postgresql+psycopg2://"), config.stdout + config.stderr
    with pytest.raises(local_airflow.AirflowError, match="HTTP 401"):
        stack.request("GET", "/api/v2/dags", auth=False)
    with pytest.raises(local_airflow.AirflowError, match="HTTP 401"):
        stack.request("POST", "/auth/token", {"username": "admin", "password": "wrong"}, auth=False)
    for component in local_airflow.COMPONENTS:
        assert stack.log_file(component).stat().st_size > 0, component


def test_daily_run_triggered_through_the_rest_api(deployment, daily_run):
    run_id = daily_run["dag_run_id"]
    assert daily_run["state"] == "success", deployment.explain(DAILY, run_id)
    assert daily_run["run_type"] == "manual" and daily_run["logical_date"].startswith(DS)
    assert daily_run["conf"] == {"ingest": "folder"}

    summary = deployment.summary(DS)
    assert summary["ds"] == DS and summary["run_id"] == run_id
    assert summary["files_validated"] == 4 and summary["files_rejected"] == 1
    assert sorted(f["file"] for f in summary["files"]) == [
        "links.csv", "movies.csv", "ratings.csv", "ratings_broken.csv", "tags.csv"]
    assert summary["compute"]["backend"] == "local"
    assert summary["metrics"]["als_explicit"]["rmse"] > 0
    assert summary["links"]["airflow_run"].endswith(f"/dags/{DAILY}/runs/{quote(run_id, safe='')}")
    recs = summary["sample_recommendations"]["1"]
    assert len(recs) == 10
    # Published to the serving database: user 1's list as the summary shows it, with the run's date.
    assert summary["serving"]["rows"]["recommendations"] > 0 and summary["serving"]["rows"]["similar_movies"] > 0
    served = deployment.serving("SELECT rank, movie_id, title, ds::text FROM movielens_recommendations WHERE user_id = 1 AND rank <= 10 ORDER BY rank")
    assert served == [(r["rank"], r["movieId"], r["title"], DS) for r in recs]
    assert deployment.serving("SELECT count(*) FROM movielens_recommendations") == [(summary["serving"]["rows"]["recommendations"],)]

    # The first date publishes; nothing was served before it to backtest.
    assert summary["publication"]["published"] and summary["publication"]["champion_ds"] is None
    assert summary["backtest"]["status"] == f"no lists were served before {DS}: nothing to score yet"

    # The DAG's publish deadline is registered, and this run of a past date missed it at once: the triggerer
    # ran the callback, which emails only about scheduled runs (this one is manual).
    assert deployment.metadata("SELECT count(*) FROM deadline_alert WHERE name = 'publish deadline'")[0][0] >= 1
    deadline = dt.datetime.now() + dt.timedelta(seconds=120)
    while not deployment.metadata("SELECT state FROM callback WHERE state = 'success'") and dt.datetime.now() < deadline:
        time.sleep(2)
    assert deployment.metadata("SELECT state FROM callback WHERE state = 'success'"), deployment.metadata(
        "SELECT state, output FROM callback")
    assert not [m for m in deployment.mail.messages() if "LATE" in m["Subject"]]

    success = [m for m in deployment.mail.messages() if f"{DAILY} {DS}:" in m["Subject"]]
    assert [m["Subject"] for m in success] == [SUCCESS]
    body = success[0].get_body(preferencelist=("html", "plain")).get_content()
    assert "team@example.test" in success[0]["To"] and recs[0]["title"] in body


def test_the_run_lands_validates_trains_and_reports(deployment, daily_run):
    """The REST run's lake, summary, report and emails: the bad file rejected, the good ones through every zone."""
    assert daily_run["state"] == "success", deployment.explain(DAILY, daily_run["dag_run_id"])
    lake, source = deployment.lake, deployment.source

    validated = sorted(p.name for p in (lake / "validated" / f"ds={DS}").iterdir())
    assert validated == ["links.csv", "movies.csv", "ratings.csv", "tags.csv"]
    rejected = sorted(p.name for p in (lake / "rejected" / f"ds={DS}").iterdir())
    assert rejected == ["ratings_broken.csv", "ratings_broken.report.json"]
    for name in validated:
        assert (lake / "validated" / f"ds={DS}" / name).read_bytes() == (source / name).read_bytes()
    import pyarrow.parquet as pq

    genres = {g for row in pq.read_table(lake / "silver" / "movies" / f"ds={DS}").column("genre_list").to_pylist() for g in row}
    assert "Children" in genres and genres <= set(layout.GENRES), "the older releases' names are normalised"
    assert not any((lake / "landing" / f"ds={DS}").iterdir()), "landing is cleared after routing"
    assert not (lake / layout.CLAIMS / f"ds={DS}.json").exists(), "the finished run let go of its date"
    tables = ("bronze/ratings", "silver/ratings", "silver/movie_stats", "gold/recommendations", "gold/similar_movies",
              "gold/popular_movies", "gold/ratings_by_year", "gold/rating_distribution", "gold/model_metrics",
              "gold/model_tuning")
    for table in tables:
        assert list((lake / table / f"ds={DS}").glob("*.parquet")), table
    for model in ("als_explicit", "als_explicit_bias/items", "ease_ials/items"):
        assert (lake / "models" / f"ds={DS}" / model).is_dir(), model

    summary = deployment.summary(DS)
    broken = next(f for f in summary["files"] if f["file"] == "ratings_broken.csv")
    assert broken["zone"] == "rejected" and broken["reasons"], broken
    assert METRIC_KEYS <= set(summary["metrics"]["als_explicit"])
    assert 0 < summary["metrics"]["als_explicit"]["rmse"] < 2
    assert RANKING_KEYS <= set(summary["metrics"]["popularity"]) and RANKING_KEYS <= set(summary["metrics"]["ease_ials"])
    # The models' artifacts are recorded relative to the lake root, and are there.
    for model in ("als_explicit", "ease_ials"):
        for name, rel in summary["models"][model]["artifacts"].items():
            assert not rel.startswith(("/", "file:")) and (lake / rel).is_dir(), (model, name, rel)
    tuned = summary["models"]["ease_ials"]["params"]
    assert tuned["tuning_s"] > 0 and tuned["ease_reg"] > 0, "the default run tunes the top-N model"
    assert {k: summary["tuning"][k] for k in ("action", "source_ds", "version", "tune_every_days")} == {
        "action": "tune", "source_ds": None, "version": spec.TUNING_VERSION, "tune_every_days": 7}
    assert summary["tuning"]["reason"].startswith("no run from ds=")
    # iALS factors are kept when the tuned blend uses them (weight 0 is EASE alone).
    assert (lake / "models" / f"ds={DS}" / "ease_ials" / "user_factors").is_dir() == (tuned["ials_weight"] > 0)
    assert summary["row_counts"]["silver"]["ratings"] > 0
    assert {"bronze", "silver", "gold", "train", "similar"} <= set(summary["timings_s"]["spark"])
    docs = lake / "reports" / f"ds={DS}" / "data_docs"
    assert summary["outputs"]["data_docs"].endswith(f"reports/ds={DS}/data_docs/index.html")
    index = (docs / "index.html").read_text()
    for f in summary["files"]:
        assert f["file"] in index
        assert (docs / f["data_docs"].split("/data_docs/", 1)[1]).is_file(), f
    recs = summary["sample_recommendations"]["1"]
    assert len(recs) == 10 and all(r["title"] for r in recs)
    report = lake / "reports" / f"ds={DS}" / layout.RUN_REPORT
    assert summary["outputs"]["report"].endswith(f"reports/ds={DS}/{layout.RUN_REPORT}") and report.is_file()
    report_html = report.read_text(encoding="utf-8")
    plots = set(re.findall(r'<img alt="([^"]+)" src="data:image/svg\+xml;base64,', report_html))  # inside the file
    assert {"Model metrics against the popularity baseline", "Metrics over recent runs", "Metrics across the tuning grid",
            "Rating distribution", "Ratings per year"} <= plots, plots  # (no movie of the tiny data has 50 ratings)
    assert f"{summary['metrics']['ease_ials']['ndcg_at_10']:.4f}" in report_html and "No previous run" in report_html

    messages = deployment.mail.messages()
    [success] = [m for m in messages if m["Subject"] == SUCCESS]
    assert success.get_content_type() == "multipart/alternative"
    for part in (success.get_body(preferencelist=("html",)).get_content(),
                 success.get_body(preferencelist=("plain",)).get_content()):
        assert "ratings_broken.csv" in part and "rmse" in part.lower() and "No previous run" in part
        assert recs[0]["title"] in part
        assert summary["outputs"]["data_docs"] in part, "the email links the Data Docs"
        assert summary["outputs"]["report"] in part, "the email links the report"
        assert summary["links"]["airflow_run"] in part
    incidents = [m for m in messages if "data incident" in m["Subject"]]
    assert [m["Subject"] for m in incidents] == [f"[movielens] data incident: ratings_broken.csv rejected for {DS}"]
    incident = incidents[0].get_body(preferencelist=("html",)).get_content()
    assert "rating_range" in incident and "7.5" in incident and f"rejected/ds={DS}/ratings_broken.report.json" in incident


def test_the_run_tells_its_lineage_as_assets_and_openlineage_events(deployment, daily_run):
    """The REST run's asset events (the routed files by the zone each went to, the gold products with the date as
    partition key) and its OpenLineage events (docs/lineage.md): every task started and completed, each naming
    the lake URLs it read and wrote, and never a connection id or a secret."""
    assert daily_run["state"] == "success", deployment.explain(DAILY, daily_run["dag_run_id"])
    stack, lake, run_id = deployment.stack, deployment.lake, daily_run["dag_run_id"]
    assets = {a["name"]: a for a in stack.request("GET", "/api/v2/assets?name_pattern=movielens.&limit=100")["assets"]}
    assert {"movielens.validated", "movielens.rejected", "movielens.gold.recommendations",
            "movielens.gold.similar_movies"} <= set(assets), sorted(assets)
    assert assets["movielens.gold.recommendations"]["uri"] == (lake / "gold" / "recommendations").as_uri()

    def events(name: str) -> list[dict]:
        answer = stack.request("GET", f"/api/v2/assets/events?asset_id={assets[name]['id']}&limit=100")
        return [e for e in answer["asset_events"] if e["source_run_id"] == run_id]

    assert sorted(e["extra"]["file"] for e in events("movielens.validated")) == [
        "links.csv", "movies.csv", "ratings.csv", "tags.csv"]
    [broken] = events("movielens.rejected")
    assert broken["extra"]["file"] == "ratings_broken.csv" and broken["extra"]["url"].endswith(
        f"rejected/ds={DS}/ratings_broken.csv")
    for product in ("movielens.gold.recommendations", "movielens.gold.similar_movies"):
        [event] = events(product)
        assert event["partition_key"] == DS and event["source_task_id"] == "spark.result", event
        assert event["extra"]["backend"] == "local" and event["extra"]["published"] is True, event

    text = (stack.home / local_airflow.LINEAGE_EVENTS).read_text()
    serving_password = json.loads(stack.env["AIRFLOW_CONN_MOVIELENS_SERVING"]).get("password")
    for secret in ("conn_id", "aws_default", "spark_default", "password", serving_password):
        assert not secret or secret not in text, f"{secret!r} in an OpenLineage event"
    run_events = [e for e in map(json.loads, text.splitlines())
                  if e["run"]["facets"].get("airflow", {}).get("dagRun", {}).get("run_id") == run_id]
    states = {}
    for event in run_events:
        states.setdefault(event["job"]["name"].removeprefix(f"{DAILY}."), []).append(event["eventType"])
    done = {task.split("[")[0] for task, state in stack.task_states(DAILY, run_id).items() if state == "success"}
    assert done and done <= set(states), sorted(done - set(states))
    assert all(kinds.count("START") == kinds.count("COMPLETE") >= 1 for kinds in states.values()), states

    def datasets(task: str, side: str) -> set[str]:
        return {d["name"].removeprefix(f"{lake}/") for e in run_events if e["eventType"] == "COMPLETE"
                and e["job"]["name"] == f"{DAILY}.{task}" for d in e[side] if d["namespace"] == "file"}

    assert {f"validated/ds={DS}/{n}" for n in ("links.csv", "movies.csv", "ratings.csv", "tags.csv")} <= datasets(
        "route_other_files", "outputs") | datasets("route_movies_files", "outputs")
    assert f"rejected/ds={DS}/ratings_broken.csv" in datasets("route_other_files", "outputs")
    assert {f"silver/ratings/ds={DS}", f"gold/recommendations/ds={DS}", f"models/ds={DS}"} <= datasets(
        "spark.result", "outputs")
    assert datasets("build_report", "outputs") == {f"reports/ds={DS}/{layout.RUN_REPORT}"}
    assert f"gold/recommendations/ds={DS}" in datasets("publish_serving", "inputs")
    [served] = [e for e in run_events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{DAILY}.publish_serving"]
    assert any(d["namespace"].startswith("postgres://") and d["name"].startswith("movielens_serving.public.")
               for d in served["outputs"]), served["outputs"]


def kill_spark_job_mid_write(lake: Path, ds: str, timeout: float) -> str:
    """SIGKILL the Spark job (spark-submit's JVM and its Python driver) writing ``lake`` as soon as a table
    partition of ``ds`` is being written (Spark's ``_temporary`` in it); returns that partition."""
    import os
    import signal

    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        writing = next((p for zone in layout.TABLE_ZONES for p in (lake / zone).glob(f"*/ds={ds}/_temporary")), None)
        if writing:
            procs = [p for p in psutil.process_iter(["cmdline"])
                     if str(lake) in " ".join(p.info["cmdline"] or []) and "daily.py" in " ".join(p.info["cmdline"] or [])]
            assert procs, f"{writing} is being written but no Spark process of the lake was found"
            for proc in procs:
                os.kill(proc.pid, signal.SIGKILL)
            return str(writing.parent.relative_to(lake))
        time.sleep(0.05)
    raise AssertionError(f"no table partition of ds={ds} was written within {timeout} s")


def test_clearing_the_run_runs_it_again_and_changes_nothing(deployment, daily_run):
    """Cleared (as the UI's Clear does; ``make demo`` of a date that ran does it through
    ``AirflowStack.run_date``), the run lands the same files again and tunes again; its Spark job is killed
    (SIGKILL) while it writes a partition, and Airflow's retry rewrites it: the same lake, no partial file."""
    from concurrent.futures import ThreadPoolExecutor

    stack, lake, run_id = deployment.stack, deployment.lake, daily_run["dag_run_id"]
    assert daily_run["state"] == "success", deployment.explain(DAILY, run_id)
    report = lake / "reports" / f"ds={DS}" / layout.RUN_REPORT
    before, report_before, summary = lakecheck.snapshot(lake), report.read_bytes(), deployment.summary(DS)
    tries = task_instance(stack, run_id, "spark.local")["try_number"]

    with ThreadPoolExecutor(1) as pool:
        clearing = pool.submit(stack.run_date, DAILY, DS, conf={"ingest": "folder"}, timeout=900)
        killed_in = kill_spark_job_mid_write(lake, DS, timeout=600)
        again = clearing.result()
    assert again["dag_run_id"] == run_id and again["state"] == "success", deployment.explain(DAILY, run_id)
    assert when(again["end_date"]) > when(daily_run["end_date"]), "the run ran again"
    # A clear starts a new try, the kill's retry one more.
    assert task_instance(stack, run_id, "spark.local")["try_number"] == tries + 2, f"killed in {killed_in}, retried once"
    assert not list(lake.rglob("_temporary")), "no partial output is left"
    assert lakecheck.differences(before, lakecheck.snapshot(lake)) == []
    assert report.read_bytes() == report_before, "the report is the same for the same data"
    summary_again = deployment.summary(DS)
    assert summary_again["metrics"] == summary["metrics"] and summary_again["row_counts"] == summary["row_counts"]
    assert summary_again["tuning"] == summary["tuning"] and summary_again["tuning"]["action"] == "tune"
    assert [m["Subject"] for m in deployment.mail.messages()].count(SUCCESS) == 2


def land(deployment: Deployment, ds: str, seed: int) -> dict[str, str]:
    """A day's files straight into landing/ds=D/ (files arriving on their own); their SHA-256 by name."""
    from movielens.ingest import synthetic

    source = deployment.work / f"source-{ds}"
    synthetic.generate_size(source, "tiny", seed=seed, end=dt.date.fromisoformat(ds))
    landing = deployment.lake / layout.LANDING / f"ds={ds}"
    landing.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for path in sorted(source.glob("*.csv")):
        name = f"ratings_{ds}.csv" if path.name == "ratings.csv" else path.name
        shutil.copyfile(path, landing / name)
        hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def backfill_runs(stack: local_airflow.AirflowStack) -> dict[str, dict]:
    runs = [r for r in stack.dag_runs(DAILY) if r["logical_date"][:10] in BACKFILL_DATES]
    return {r["logical_date"][:10]: r for r in runs}


def when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp)


def task_instance(stack: local_airflow.AirflowStack, run_id: str, task_id: str) -> dict:
    return stack.request("GET", f"/api/v2/dags/{DAILY}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}")


def test_backfill_processes_each_dates_files_in_order_reusing_the_tuning_and_reprocessing_changes_nothing(
        deployment, daily_run):
    stack, lake = deployment.stack, deployment.lake
    assert daily_run["state"] == "success", "the backfill's dates reuse the tuning of the REST run's date"
    landed = {ds: land(deployment, ds, seed=100 + i) for i, ds in enumerate(BACKFILL_DATES)}

    # The command line's default max active runs (10): both dates start at once, and the later waits
    # for the earlier one (wait_for_earlier_runs) before reading the history.
    backfill = stack.backfill(DAILY, BACKFILL_DATES[0], BACKFILL_DATES[-1])
    stack.wait_for_backfill(backfill["id"], timeout=2400)
    runs = backfill_runs(stack)
    assert sorted(runs) == BACKFILL_DATES
    for ds, run in runs.items():
        assert run["run_type"] == "backfill" and run["state"] == "success", (ds, deployment.explain(DAILY, run["dag_run_id"]))
    for earlier, later in zip(BACKFILL_DATES, BACKFILL_DATES[1:]):
        routing = task_instance(stack, runs[later]["dag_run_id"], "find_landed_movies_files")
        assert when(routing["start_date"]) >= when(runs[earlier]["end_date"]), f"{later} read the history before {earlier} finished"

    for ds in BACKFILL_DATES:
        summary = deployment.summary(ds)
        assert summary["ds"] == ds and summary["run_id"] == runs[ds]["dag_run_id"]
        assert {f["file"]: f["sha256"] for f in summary["files"]} == landed[ds], "its own files, as landed"
        assert all(f["zone"] == "validated" for f in summary["files"])
        validated = lake / layout.VALIDATED / f"ds={ds}"
        assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in validated.iterdir()} == landed[ds]
        assert not any((lake / layout.LANDING / f"ds={ds}").iterdir())
        # History: the date's silver ratings hold its own and the earlier dates' ratings, none later.
        assert summary["row_counts"]["silver"]["ratings"] > 0
    counts = [deployment.summary(ds)["row_counts"]["silver"]["ratings"] for ds in [DS, *BACKFILL_DATES]]
    assert counts == sorted(counts), f"silver grows with the history: {counts}"

    # Each date reuses the parameters DS's tuning chose: its Spark job got them through its arguments,
    # tuned nothing, and still evaluated every model.
    tuned = deployment.summary(DS)
    for ds in BACKFILL_DATES:
        following = deployment.summary(ds)
        assert (following["tuning"]["action"], following["tuning"]["source_ds"]) == ("reuse", DS), ds
        assert f"tuned on ds={DS}" in following["tuning"]["reason"] and following["tuning"]["tune_every_days"] == 7
        for model in ("als_explicit", "ease_ials"):
            chosen = {k: v for k, v in tuned["models"][model]["params"].items()
                      if k not in ("tuning_s", "tuning_user_fraction")}
            assert following["models"][model]["params"] == chosen, (ds, model)
        steps = deployment.spark_report(ds)["train_timings_s"]
        assert "rating_fit" in steps and not {"rating_tune", "top_n_tune"} & set(steps), steps
        assert METRIC_KEYS <= set(following["metrics"]["als_explicit"])
        assert RANKING_KEYS <= set(following["metrics"]["ease_ials"])
        gold = following["row_counts"]["gold"]
        assert gold["model_tuning"] == 0 and gold["recommendations"] > 0
        assert f"reused the parameters chosen by the tuning run of ds={DS}" in (
            lake / "reports" / f"ds={ds}" / layout.RUN_REPORT).read_text(encoding="utf-8")
    # The daily loop: each date scores the lists of the date before against its own new ratings, and the
    # gate publishes it (the same parameters as the served ones: the same metrics on the date's split).
    for previous, ds in zip([DS, *BACKFILL_DATES], BACKFILL_DATES):
        summary = deployment.summary(ds)
        backtest, publication = summary["backtest"], summary["publication"]
        assert (backtest["status"], backtest["served_ds"]) == ("scored", previous), (ds, backtest)
        assert backtest["lists"]["served"]["users_with_new_ratings"] > 0 and backtest["new_pairs"] > 0
        assert set(backtest["lists"]) >= {"served", "popularity"} and "ndcg_at_10" in backtest["lists"]["popularity"]
        assert (publication["published"], publication["champion_ds"], publication["forced"]) == (True, previous, False)
        assert [c["change"] for c in publication["comparisons"]] == [0.0, 0.0], publication
        assert summary["drift"]["metrics"]["ratings_landed"] > 0 and summary["serving"]["published"] is True
    assert deployment.serving("SELECT DISTINCT ds::text FROM movielens_recommendations WHERE user_id = 1") == [
        (BACKFILL_DATES[-1],)]
    mails = {ds: m for m in deployment.mail.messages() for ds in BACKFILL_DATES if f"{DAILY} {ds}:" in m["Subject"]}
    for ds in BACKFILL_DATES:
        assert f"reused from ds={DS}" in mails[ds].get_body(preferencelist=("plain",)).get_content(), ds
    subjects = [m["Subject"] for m in deployment.mail.messages()]
    for ds in BACKFILL_DATES:
        assert subjects.count(f"[movielens] {DAILY} {ds}: 4 files validated, 0 rejected") == 1, subjects

    # Again, reprocessing the completed runs (one at a time): every date runs again, nothing changes.
    before = lakecheck.snapshot(lake)
    again = stack.backfill(DAILY, BACKFILL_DATES[0], BACKFILL_DATES[-1], reprocess="completed", max_active_runs=1)
    assert again["id"] != backfill["id"] and again["reprocess_behavior"] == "completed"
    stack.wait_for_backfill(again["id"], timeout=2400)
    reruns = backfill_runs(stack)
    for ds in BACKFILL_DATES:
        assert reruns[ds]["state"] == "success", (ds, deployment.explain(DAILY, reruns[ds]["dag_run_id"]))
        assert when(reruns[ds]["end_date"]) > when(runs[ds]["end_date"]), f"{ds} was not run again"
    assert lakecheck.differences(before, lakecheck.snapshot(lake)) == []
    subjects = [m["Subject"] for m in deployment.mail.messages()]
    for ds in BACKFILL_DATES:
        assert subjects.count(f"[movielens] {DAILY} {ds}: 4 files validated, 0 rejected") == 2, subjects


@contextlib.contextmanager
def chromium_page(tmp_path: Path, height: int):
    """A page of a headless Chromium (Debian's, driven by Playwright) and the list of the test's steps: when a
    step fails, a screenshot of the page and the step's name are printed."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed: run `make install` (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        steps = ["start"]
        try:
            yield page, steps
        except BaseException:
            shot = tmp_path / "ui-failure.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"UI step failed: {steps[-1]}; screenshot: {shot}; page: {page.url}")
            raise
        finally:
            browser.close()


def log_in(page, stack: local_airflow.AirflowStack, user: str, password: str) -> None:
    page.goto(f"{stack.base_url}/dags")
    page.wait_for_url("**/auth/login**")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def open_trigger_form(page, base: str, dag_id: str):
    """From the DAG list: the DAG's page, then its trigger form (the dialog)."""
    from playwright.sync_api import expect

    page.get_by_role("link", name=dag_id, exact=True).click()
    page.wait_for_url(f"{base}/dags/{dag_id}**")
    trigger = page.get_by_test_id("trigger-dag-button")
    expect(trigger).to_have_count(1)  # the DAG page's own, once the list (a button per DAG) is gone
    trigger.click()
    return page.get_by_role("dialog")


def test_web_ui_login_dag_list_and_similar_movies_from_the_trigger_form(deployment, daily_run, tmp_path):
    from playwright.sync_api import expect

    assert daily_run["state"] == "success", "the similar movies come from the daily run's gold table"
    stack = deployment.stack
    model_ds = deployment.latest_ds()
    top = deployment.summary(model_ds)["sample_recommendations"]["1"][0]
    movie = top["movieId"]
    base = stack.base_url

    with chromium_page(tmp_path, height=1000) as (page, steps):
        steps.append("the UI sends a visitor to the login page")
        log_in(page, stack, stack.user, stack.password)

        steps.append("the DAG list, each DAG's description on its card")
        page.wait_for_url(f"{base}/dags")
        for dag_id in (DAILY, SIMILAR):
            link = page.get_by_role("link", name=dag_id, exact=True)
            expect(link).to_be_visible(timeout=30_000)
            link.hover()
            description = stack.request("GET", f"/api/v2/dags/{dag_id}")["description"]
            assert description
            expect(page.get_by_text(description)).to_be_visible()

        steps.append("the daily trigger form: a number field's help says the value in effect")
        form = open_trigger_form(page, base, DAILY)
        params = stack.request("GET", f"/api/v2/dags/{DAILY}/details")["params"]
        rank = next(p for p in params.values() if p["schema"].get("title") == "Rating model: ALS rank")
        assert re.search(r"Empty: MOVIELENS_ALS_RANK, now \d+\.", rank["description"]), rank
        form.get_by_text("Model settings for this run").click()
        expect(form.get_by_text(rank["description"])).to_be_visible()
        form.get_by_role("button", name="Close").click()
        expect(form).to_have_count(0)

        steps.append("the similar movies' trigger form: movie id 0 refused, then a movie")
        page.goto(f"{base}/dags")
        form = open_trigger_form(page, base, SIMILAR)
        expect(form.get_by_text(f"Unpause {SIMILAR} on trigger")).to_be_visible()
        runs_before = len(stack.dag_runs(SIMILAR))
        form.get_by_label("Movie id").fill("0")  # refused by the server, not clamped to movie 1
        form.get_by_test_id("trigger-dag-submit").click()
        expect(form.get_by_text("Invalid input for param movie_id: 0 is less than or equal to the minimum of 0")).to_be_visible()
        assert len(stack.dag_runs(SIMILAR)) == runs_before
        form.get_by_label("Movie id").fill(str(movie))
        form.get_by_label("How many").fill("5")
        form.get_by_test_id("trigger-dag-submit").click()
        page.wait_for_url(f"{base}/dags/{SIMILAR}/runs/**")
        run_id = unquote(page.url.split("/runs/", 1)[1].split("/")[0])

        steps.append("the run succeeds, as the UI shows it")
        run = stack.wait_for_run(SIMILAR, run_id, timeout=300)
        assert run["state"] == "success", deployment.explain(SIMILAR, run_id)
        assert run["conf"] == {"movie_id": movie, "n": 5}
        page.reload()
        expect(page.get_by_text("Success").first).to_be_visible(timeout=30_000)

        steps.append("the answer in the task log")
        ds = run["logical_date"][:10]
        answer = json.loads((deployment.lake / layout.REPORTS / f"ds={ds}" / "similar_movies" / f"movie_{movie}.json").read_text())
        assert answer["id"] == movie and answer["model_ds"] == model_ds
        rows = answer["rows"]
        assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5] and {r["title"] for r in rows} == {top["title"]}
        assert movie not in [r["similar_movie_id"] for r in rows] and all(r["similar_title"] for r in rows)
        page.goto(f"{page.url.rstrip('/')}/tasks/find_similar_movies")
        expect(page.get_by_text(answer["rows"][0]["similar_title"]).first).to_be_visible(timeout=60_000)


def test_similar_movies_of_a_movie_the_model_does_not_know_fail_saying_so(deployment, daily_run):
    assert daily_run["state"] == "success", "the similar movies come from the daily run's gold table"
    stack = deployment.stack
    run = stack.trigger(SIMILAR, TODAY.isoformat(), conf={"movie_id": 99999999})
    done = stack.wait_for_run(SIMILAR, run["dag_run_id"], timeout=300)
    assert done["state"] == "failed", deployment.explain(SIMILAR, run["dag_run_id"])
    log = deployment.task_log(SIMILAR, run["dag_run_id"], "find_similar_movies")
    assert "movie 99999999 has no similar_movies in" in log


def fetch(url: str, token: str | None) -> tuple[int, str, str]:
    """GET any URL (a link of an email) with a bearer token: (status, content type, body)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode(errors="replace")


def test_the_api_answers_as_the_serving_tables_do_behind_airflows_login(deployment, daily_run):
    """The plugin's API in the running API server: Airflow's token (a read-only user's is enough), the serving
    database's lists, the fallback, search, runs, and every link of the success email opening over HTTP."""
    assert daily_run["state"] == "success", "the API serves what the daily run published"
    stack = deployment.stack
    path = f"{API}/users/1/recommendations?n=10"
    with pytest.raises(local_airflow.AirflowError, match="HTTP 401.*POST /auth/token"):
        stack.request("GET", path, auth=False)
    reader = stack.token(stack.reader)
    forged = reader[: reader.rindex(".") + 1] + "c2lnbmF0dXJl"  # the reader's claims, another signature
    for token in ("not-a-token", forged):
        with pytest.raises(local_airflow.AirflowError, match="HTTP 401.*invalid or expired"):
            stack.request("GET", path, token=token)
    with pytest.raises(local_airflow.AirflowError, match="HTTP 403"):  # read-only: it cannot trigger a run
        stack.request("POST", f"/api/v2/dags/{DAILY}/dagRuns", {"logical_date": None}, user=stack.reader)

    recs = stack.request("GET", path, user=stack.reader)
    served = deployment.serving("SELECT rank, movie_id, title, ds::text FROM movielens_recommendations "
                                "WHERE user_id = 1 AND rank <= 10 ORDER BY rank")
    assert [(r["rank"], r["movie_id"], r["title"], recs["model_ds"]) for r in recs["items"]] == served
    assert recs["fallback"] is None and recs["source"].startswith("postgres connection movielens_serving")
    assert all(r["genres"] and r["year"] for r in recs["items"]), recs["items"]

    unknown = stack.request("GET", f"{API}/users/2147483647/recommendations?n=5", user=stack.reader)
    fallback = deployment.serving("SELECT movie_id FROM movielens_fallback_movies WHERE segment = 'all' ORDER BY rank LIMIT 5")
    assert unknown["fallback"] and [r["movie_id"] for r in unknown["items"]] == [m for (m,) in fallback]

    movie = recs["items"][0]["movie_id"]
    like = stack.request("GET", f"{API}/movies/{movie}/similar?n=5", user=stack.reader)
    assert [(r["rank"], r["movie_id"]) for r in like["items"]] == deployment.serving(
        f"SELECT rank, similar_movie_id FROM movielens_similar_movies WHERE movie_id = {movie} AND rank <= 5 ORDER BY rank")
    found = stack.request("GET", f"{API}/movies?q={quote(recs['items'][0]['title'][:6])}", user=stack.reader)
    assert movie in [m["movie_id"] for m in found["items"]]
    for bad, says in ((f"{API}/users/1/recommendations?n=1000", "HTTP 422.*less than or equal to 100"),
                      (f"{API}/users/-1/recommendations", "HTTP 422.*greater than or equal to 1"),
                      (f"{API}/movies/abc/similar", "HTTP 422.*valid integer")):
        with pytest.raises(local_airflow.AirflowError, match=says):
            stack.request("GET", bad, user=stack.reader)

    [run] = [r for r in stack.request("GET", f"{API}/runs", user=stack.reader)["items"] if r["ds"] == DS]
    assert (run["run_id"], run["published"]) == (daily_run["dag_run_id"], True) and run["metrics"]["ease_ials"]["ndcg_at_10"] > 0
    assert stack.request("GET", f"{API}/openapi.json", auth=False)["info"]["title"] == "MovieLens recommendations"
    [plugin] = [p for p in stack.request("GET", "/api/v2/plugins")["plugins"] if p["name"] == "movielens"]
    assert {v["name"] for v in plugin["external_views"]} >= {"Recommendations", "Similar movies", "Runs"}

    # Every HTTP link of the success email opens, on the right page; the lake URLs stand beside them.
    mails = [m for m in deployment.mail.messages() if m["Subject"] == SUCCESS]  # the REST run's, and its clear's
    assert mails, [m["Subject"] for m in deployment.mail.messages()]
    html = mails[-1].get_body(preferencelist=("html",)).get_content()
    links = sorted(set(re.findall(r'href="(http[^"]+)"', html)))
    expected = {"/dags/": 'id="root"', "/pages/runs.html": "<h1>Runs</h1>",
                "/pages/recommendations.html": "<h1>Recommendations</h1>", f"/runs/{DS}/report": DS,
                f"/runs/{DS}/data-docs/index.html": "Great Expectations"}
    assert {k for k in expected if any(k in link for link in links)} == set(expected), links
    for link in links:
        status, kind, body = fetch(link, reader)
        assert status == 200 and "text/html" in kind, (link, status, body[:300])
        assert all(text in body for key, text in expected.items() if key in link), (link, body[:300])
    assert f"(in the lake: <code>{deployment.summary(DS)['outputs']['report']}</code>)" in html


def test_the_movielens_pages_in_the_ui_show_the_apis_lists(deployment, daily_run, tmp_path):
    """Browse > Recommendations, Similar movies and Runs, and a run's own tab, as the read-only user sees them
    in Chromium: the same lists as the API. MOVIELENS_SCREENSHOTS=DIR keeps the pages' screenshots (docs/img)."""
    import os

    from playwright.sync_api import expect

    assert daily_run["state"] == "success", "the pages show what the daily run published"
    stack = deployment.stack
    recs = stack.request("GET", f"{API}/users/1/recommendations?n=10&explain=true", user=stack.reader)["items"]
    movie = recs[0]["movie_id"]
    like = stack.request("GET", f"{API}/movies/{movie}/similar?n=10", user=stack.reader)["items"]
    shots = Path(os.environ.get("MOVIELENS_SCREENSHOTS") or tmp_path)

    def column(table, index: int) -> list[str]:
        rows = table.locator("tbody tr")
        return [rows.nth(i).locator("td").nth(index).inner_text() for i in range(rows.count())]

    with chromium_page(tmp_path, height=900) as (page, steps):
        steps.append("log in as the read-only user")
        log_in(page, stack, stack.reader, stack.reader_password)
        page.wait_for_url(f"{stack.base_url}/dags")

        steps.append("Browse > Recommendations: user 1's list, with the reason of each pick")
        page.get_by_role("button", name="Browse").click()
        page.get_by_role("menuitem", name="Recommendations").click()
        page.wait_for_url("**/plugin/movielens-recommendations**")
        frame = page.frame_locator("iframe")
        frame.get_by_label("User id").fill("1")
        frame.get_by_role("button", name="Look up").click()
        table = frame.get_by_test_id("recommendations")
        expect(table.locator("tbody tr")).to_have_count(len(recs), timeout=30_000)
        assert column(table, 1) == [r["title"] for r in recs]
        assert column(table, 3) == [", ".join(r["genres"]) for r in recs]
        assert column(table, 5) == [f"because you rated {r['because']['title']} (similarity {r['because']['similarity']:.2f})"
                                    if r["because"] else "" for r in recs]
        page.screenshot(path=str(shots / "ui-recommendations.png"))

        steps.append("Browse > Similar movies: search by title, then the movie's list")
        page.get_by_role("button", name="Browse").click()
        page.get_by_role("menuitem", name="Similar movies").click()
        frame = page.frame_locator("iframe")
        frame.get_by_label("Title contains").fill(recs[0]["title"])
        frame.get_by_role("button", name="Search").click()
        found = frame.get_by_test_id("search")
        expect(found).to_be_visible(timeout=30_000)
        found.locator("tbody tr").filter(has_text=recs[0]["title"]).first.get_by_role("button", name="Similar").click()
        table = frame.get_by_test_id("similar")
        expect(table.locator("tbody tr")).to_have_count(len(like), timeout=30_000)
        assert column(table, 1) == [r["title"] for r in like]
        page.screenshot(path=str(shots / "ui-similar-movies.png"))

        steps.append("Browse > Runs: every date with its gate decision and links, and the trend")
        page.get_by_role("button", name="Browse").click()
        page.get_by_role("menuitem", name="Runs").click()
        frame = page.frame_locator("iframe")
        runs = frame.get_by_test_id("runs")
        expect(runs).to_be_visible(timeout=30_000)
        expect(frame.get_by_test_id("trend")).to_be_visible()
        assert DS in column(runs, 0) and "published" in column(runs, 2)
        page.screenshot(path=str(shots / "ui-runs.png"))

        steps.append("the run's Data Docs from the Runs page, with no internet: the index lists every landed file")
        row = runs.locator("tbody tr").nth(column(runs, 0).index(DS))  # (later rows name DS in their reasons)
        href = row.get_by_role("link", name="Data Docs").get_attribute("href")
        outside = []  # every request that would leave this machine is refused, and counted
        page.route(re.compile(r"^https?://(?!localhost[:/]|127\.0\.0\.1[:/])"),
                   lambda route: (outside.append(route.request.url), route.abort()))
        page.goto(urljoin(f"{stack.base_url}/movielens/pages/runs.html", href))
        landed = sorted(f["file"] for f in deployment.summary(DS)["files"])
        rows = page.locator("tbody tr").filter(has_text=f"ds={DS}")  # the validations tab (not the suites)
        expect(rows.first).to_be_visible(timeout=30_000)
        listed = sorted(rows.nth(i).locator("td").nth(3).inner_text() for i in range(rows.count()))
        assert (listed, outside) == (landed, []), page.url

        steps.append("the REST run's page: its duration is the run's (start = when it started, not its logical date)")
        run_path = f"/dags/{DAILY}/runs/{quote(daily_run['dag_run_id'], safe='')}"
        run = stack.request("GET", f"/api/v2{run_path.replace('/runs/', '/dagRuns/')}")
        took = int((when(run["end_date"]) - when(run["start_date"])).total_seconds())
        assert 0 < took < 3600 and when(run["start_date"]) > when(run["logical_date"]) + dt.timedelta(days=1), run
        page.goto(f"{stack.base_url}{run_path}")
        shown = [f"{t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}" for t in (took, took + 1)]
        expect(page.get_by_text(re.compile("|".join(shown))).first).to_be_visible(timeout=30_000)

        steps.append("the MovieLens tab of the REST run's page selects its date")
        page.get_by_text("MovieLens run", exact=True).click()
        selected = page.frame_locator("iframe").locator("tr[data-selected=true] td").first
        expect(selected).to_have_text(DS, timeout=30_000)
