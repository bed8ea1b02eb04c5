"""movielens_daily end to end with `airflow dags test`: generated data, the file:// lake, local Spark and a
real local SMTP server. Checks the lake zones, the run summary, the report, the emails, and that a rerun changes
nothing."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from devenv import local_airflow
from spark_jobs.common import layout, spec
from tests import e2e, lakecheck

pytestmark = pytest.mark.e2e

DS = "2026-11-20"
RANKING_KEYS = {"precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10", "hit_rate_at_10", "catalog_coverage"}
METRIC_KEYS = {"rmse", "mae"} | RANKING_KEYS


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from movielens.ingest import synthetic

    folder = tmp_path_factory.mktemp("source")
    synthetic.generate_size(folder, "tiny", seed=7, end=dt.date.fromisoformat(DS))
    # One bad file beside the good ones: it must be rejected with a report while the run goes on.
    (folder / "ratings_broken.csv").write_text("userId,movieId,rating,timestamp\n1,1,7.5,964982703\n2,1,4.0,964982703\n")
    return folder


def airflow_env_for(tmp_path, mailbox, source) -> dict[str, str]:
    return e2e.airflow_env_for(tmp_path, mailbox, source, {"MOVIELENS_DEMO_USERS": "1", "MOVIELENS_SPARK_DRIVER_MEMORY": "2g"})


def run_dag(tmp_path, mailbox, source, ds: str = DS):
    env = airflow_env_for(tmp_path, mailbox, source)
    local_airflow.migrate(env)
    return local_airflow.dags_test("movielens_daily", ds, env, conf={"ingest": "folder"}, log_file=tmp_path / "dags_test.log")


def test_daily_run_end_to_end_and_rerun(tmp_path, mailbox, source):
    state = run_dag(tmp_path, mailbox, source)
    log = (tmp_path / "dags_test.log").read_text()
    assert state == "success", log[-5000:]
    lake = tmp_path / "lake"

    validated = sorted(p.name for p in (lake / "validated" / f"ds={DS}").iterdir())
    assert validated == ["links.csv", "movies.csv", "ratings.csv", "tags.csv"]
    rejected = sorted(p.name for p in (lake / "rejected" / f"ds={DS}").iterdir())
    assert rejected == ["ratings_broken.csv", "ratings_broken.report.json"]
    for name in validated:
        assert (lake / "validated" / f"ds={DS}" / name).read_bytes() == (source / name).read_bytes()
    assert not any((lake / "landing" / f"ds={DS}").iterdir()), "landing is cleared after routing"
    tables = ("bronze/ratings", "silver/ratings", "silver/movie_stats", "gold/recommendations", "gold/similar_movies",
              "gold/popular_movies", "gold/ratings_by_year", "gold/rating_distribution", "gold/model_metrics",
              "gold/model_tuning")
    for table in tables:
        assert list((lake / table / f"ds={DS}").glob("*.parquet")), table
    for model in ("als_explicit", "als_explicit_bias/items", "ease_ials/items"):
        assert (lake / "models" / f"ds={DS}" / model).is_dir(), model

    summary = json.loads((lake / "reports" / f"ds={DS}" / layout.RUN_SUMMARY).read_text())
    assert summary["files_validated"] == 4 and summary["files_rejected"] == 1
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

    messages = mailbox.messages()
    success = [m for m in messages if DS in m["Subject"] and "files validated" in m["Subject"]]
    assert len(success) == 1, [m["Subject"] for m in messages]
    assert success[0].get_content_type() == "multipart/alternative"
    body = success[0].get_body(preferencelist=("html",)).get_content()
    text = success[0].get_body(preferencelist=("plain",)).get_content()
    assert "team@example.test" in success[0]["To"]
    for part in (body, text):
        assert "ratings_broken.csv" in part and "rmse" in part.lower() and "No previous run" in part
        assert recs[0]["title"] in part
        assert summary["outputs"]["data_docs"] in part, "the email links the Data Docs"
        assert summary["outputs"]["report"] in part, "the email links the report"
        assert summary["links"]["airflow_run"] in part
    incidents = [m for m in messages if "data incident" in m["Subject"]]
    assert [m["Subject"] for m in incidents] == [f"[movielens] data incident: ratings_broken.csv rejected for {DS}"]
    incident = incidents[0].get_body(preferencelist=("html",)).get_content()
    assert "rating_range" in incident and "7.5" in incident and f"rejected/ds={DS}/ratings_broken.report.json" in incident

    # On demand: the movies most similar to the top recommendation, with titles, logged and written.
    env = airflow_env_for(tmp_path, mailbox, source)
    movie = recs[0]["movieId"]
    state = local_airflow.dags_test("movielens_similar_movies", DS, env, conf={"movie_id": movie, "n": 20}, log_file=tmp_path / "similar.log")
    assert state == "success", (tmp_path / "similar.log").read_text()[-5000:]
    answer = json.loads((lake / "reports" / f"ds={DS}" / "similar_movies" / f"movie_{movie}.json").read_text())
    assert answer["id"] == movie and answer["model_ds"] == DS
    assert {r["title"] for r in answer["rows"]} == {recs[0]["title"]}
    assert [r["rank"] for r in answer["rows"]] == list(range(1, 21))
    assert movie not in [r["similar_movie_id"] for r in answer["rows"]] and all(r["similar_title"] for r in answer["rows"])
    assert answer["rows"][0]["similar_title"] in (tmp_path / "similar.log").read_text()
    state = local_airflow.dags_test("movielens_similar_movies", DS, env, conf={"movie_id": 99999999}, log_file=tmp_path / "similar_unknown.log")
    assert state == "failed" and "movie 99999999 has no similar_movies in" in (tmp_path / "similar_unknown.log").read_text()
    (lake / "reports" / f"ds={DS}" / "similar_movies" / f"movie_{movie}.json").unlink()  # not a daily output

    # A rerun of the same date (files landed again) leaves the same files, bytes, tables and counts, and the same report.
    before = lakecheck.snapshot(lake)
    report_before = report.read_bytes()
    state = run_dag(tmp_path, mailbox, source)
    assert state == "success", (tmp_path / "dags_test.log").read_text()[-5000:]
    assert lakecheck.differences(before, lakecheck.snapshot(lake)) == []
    assert report.read_bytes() == report_before, "the report is the same for the same data"
    summary_again = json.loads((lake / "reports" / f"ds={DS}" / layout.RUN_SUMMARY).read_text())
    assert summary_again["metrics"] == summary["metrics"]
    assert summary_again["row_counts"] == summary["row_counts"]
    assert summary["tuning"] == summary_again["tuning"]
    assert {k: summary["tuning"][k] for k in ("action", "source_ds", "version", "tune_every_days")} == {
        "action": "tune", "source_ds": None, "version": spec.TUNING_VERSION, "tune_every_days": 7}
    assert summary["tuning"]["reason"].startswith("no run from ds=")

    # The next date (the same files land again) reuses the parameters DS's tuning chose: its Spark job got
    # them through spark-submit's arguments, tuned nothing, and still evaluated every model.
    next_ds = (dt.date.fromisoformat(DS) + dt.timedelta(days=1)).isoformat()
    state = run_dag(tmp_path, mailbox, source, next_ds)
    assert state == "success", (tmp_path / "dags_test.log").read_text()[-5000:]
    following = json.loads((lake / "reports" / f"ds={next_ds}" / layout.RUN_SUMMARY).read_text())
    assert (following["tuning"]["action"], following["tuning"]["source_ds"]) == ("reuse", DS)
    assert f"tuned on ds={DS}" in following["tuning"]["reason"] and following["tuning"]["tune_every_days"] == 7
    for model in ("als_explicit", "ease_ials"):
        chosen = {k: v for k, v in summary["models"][model]["params"].items() if k not in ("tuning_s", "tuning_user_fraction")}
        assert following["models"][model]["params"] == chosen, model
    steps = json.loads((lake / "reports" / f"ds={next_ds}" / layout.SPARK_REPORT).read_text())["train_timings_s"]
    assert "rating_fit" in steps and not {"rating_tune", "top_n_tune"} & set(steps), steps
    assert METRIC_KEYS <= set(following["metrics"]["als_explicit"]) and RANKING_KEYS <= set(following["metrics"]["ease_ials"])
    assert following["row_counts"]["gold"]["model_tuning"] == 0 and following["row_counts"]["gold"]["recommendations"] > 0
    assert f"reused the parameters chosen by the tuning run of ds={DS}" in (
        lake / "reports" / f"ds={next_ds}" / layout.RUN_REPORT).read_text(encoding="utf-8")
    [mail] = [m for m in mailbox.messages() if next_ds in m["Subject"] and "files validated" in m["Subject"]]
    assert f"reused from ds={DS}" in mail.get_body(preferencelist=("plain",)).get_content()


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
    local_airflow.migrate(env)
    state = local_airflow.dags_test("movielens_daily", DS, env, conf={"ingest": "none"}, log_file=tmp_path / "dags_test.log")
    log = (tmp_path / "dags_test.log").read_text()
    assert state == "failed", log[-3000:]
    assert f"timed out after 3 s waiting for the files of ds={DS}" in log
    assert not (tmp_path / "lake" / "bronze").exists(), "nothing ran after the wait"
    failures = [m for m in mailbox.messages() if "FAILED" in m["Subject"]]
    assert [m["Subject"] for m in failures] == [f"[movielens] FAILED movielens_daily.wait_for_landed_files for {DS} (try 1)"]
    body = failures[0].get_body(preferencelist=("html",)).get_content()
    assert "no ratings file in file://" in body and f"landing/ds={DS}" in body
