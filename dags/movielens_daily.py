"""
### movielens_daily

The MovieLens files that landed for a date become validated data, tested models and recommendations,
then a report, the serving tables, a run summary and an email. `@daily`, no catch-up; every task reads
and writes only the `ds=D` partitions of the run's **Logical date** (plus validated history up to D), so
any date can be rerun (**Clear** its run: a new run of the same logical date is refused) or backfilled alone.
A run without a logical date fails at once.

**Trigger form**: `ingest` lands files first (`none`: they arrive on their own; `folder`, `download`,
`synthetic`, `auto`, or `replay`: this date's drop of a release replayed as a daily feed); `compute`
picks where Spark runs for this run (`default` follows `MOVIELENS_COMPUTE`); the model settings `tune`, `tune_every_days`, `tune_max_users`, `als_rank`,
`als_reg_param`, `als_max_iter`, `ease_reg`, `ials_weight`, `top_n_max_items`, `split` (the evaluation
protocol), `refit` and `publish` (`force`: serve the day's lists whatever the publish gate says) override their `MOVIELENS_*` variable for
this run only when set.

**Flow**: land -> wait for the files and for the previous date's run -> route each file (checks and its
Great Expectations suite; to `validated/` or `rejected/`) -> Data Docs -> the Spark job (the `spark`
group: bronze, silver, gold, training and tuning, similar movies, on local Spark, Databricks, EMR or EMR
Serverless; with the next-day backtest, the drift checks and the publish gate) -> report and serving tables
(only when the gate published the date) -> run summary -> success email, and the held-back and data drift
emails when called for. A failed task emails the team; a scheduled run not finished
`MOVIELENS_PUBLISH_DEADLINE_HOURS` after its logical date emails it too (a Deadline Alert).

Details: the project's docs, pages *The daily DAG* (`docs/daily-dag.md`) and *Configuration*.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from movielens import lineage
from movielens.compute.tasks import spark_job
from movielens.dag_defaults import (
    MAX_ACTIVE_RUNS, START_DATE, default_args, publish_deadline, release_date_of_failed_run, require_ds, timeout,
)
from movielens.notify import SuccessEmailOperator
from movielens.sensors import LandedFilesSensor
from movielens.trigger_form import model_params, source_params


@dag(
    dag_id="movielens_daily",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    # More than one: a date waiting for its files must not hold a manual run of another date "queued";
    # wait_for_earlier_runs keeps the dates in order.
    max_active_runs=MAX_ACTIVE_RUNS,
    description="Validate the day's MovieLens files, train and evaluate, publish recommendations and email the team.",
    tags=["movielens", "recommendations", "daily"],
    doc_md=__doc__,
    default_args=default_args(),
    # A run past it fails (its tasks killed, the failure email sent); a later date's wait_for_earlier_runs then goes on.
    dagrun_timeout=timeout("dagrun"),
    # The run claims its date before writing (one writer per date, across Airflows on a lake); failed, it lets go.
    on_failure_callback=release_date_of_failed_run,
    deadline=publish_deadline(),
    params={**source_params(), **model_params()},
)
def movielens_daily():
    @task
    def land_files(ds=None, run_id=None, params=None) -> dict:
        from movielens import pipeline

        return pipeline.land(require_ds(ds), run_id, params["ingest"])

    @task.sensor(poke_interval=10, mode="reschedule", timeout=24 * 3600)
    def wait_for_earlier_runs(ti=None) -> bool:
        from movielens.sensors import wait_for_earlier_run

        return wait_for_earlier_run(ti)

    @task
    def find_landed_files(group: str, ds=None) -> list[str]:
        from movielens import pipeline

        return pipeline.find_landed_files(ds)[group]

    # Announces the validated or the rejected files Asset, whichever the file went to (movielens.lineage).
    @task(map_index_template="{{ name }}", outlets=[lineage.routed_files_alias()])
    def route_landed_file(name: str, ds=None, run_id=None, outlet_events=None) -> dict:
        from movielens import pipeline

        return lineage.announce_routed(outlet_events, pipeline.process_landed_file(ds, run_id, name))

    @task(trigger_rule="none_failed")
    def check_training_data(ds=None) -> dict:
        from movielens import pipeline

        return pipeline.check_training_data(ds)

    @task(trigger_rule="all_done")
    def build_data_docs(ds=None) -> dict:
        from movielens import pipeline

        return pipeline.build_data_docs(ds)

    @task
    def build_report(ds=None) -> dict:
        from movielens import report

        return report.build_report(ds)

    @task
    def publish_serving(ds=None) -> dict:
        from movielens.serving import publish

        return publish.publish_or_skip(ds)

    @task(trigger_rule="none_failed_min_one_success")
    def write_run_summary(landing: dict, compute: dict, serving: dict | None, ds=None, run_id=None, dag=None,
                          params=None) -> dict:
        from movielens import pipeline

        return pipeline.build_run_summary(ds, run_id, dag.dag_id, landing, compute, serving, run_params=params)

    @task
    def email_alerts(summary: dict) -> dict:
        """The "model held back" and data drift emails the run summary calls for."""
        from movielens.notify.alerts import send_alerts

        return send_alerts(summary)

    landed = land_files()
    # Deferred (the triggerer polls the lake) until the day's files are in landing, or already routed.
    arrived = LandedFilesSensor(task_id="wait_for_landed_files")
    movies_found = find_landed_files.override(task_id="find_landed_movies_files")("movies")
    movies = route_landed_file.override(task_id="route_movies_files").expand(name=movies_found)
    # Listed after the movies are routed (ratings and tags are checked against them).
    others_found = find_landed_files.override(task_id="find_landed_other_files", trigger_rule="none_failed")("others")
    others = route_landed_file.override(task_id="route_other_files").expand(name=others_found)
    landed >> arrived >> wait_for_earlier_runs() >> movies_found
    movies >> others_found
    checked = check_training_data()
    docs = build_data_docs()
    others >> [checked, docs]

    # One Spark job on the run's backend (movielens.compute.tasks); its result is one XCom.
    spark = spark_job("daily.py")
    checked >> spark.group
    report, published = build_report(), publish_serving()
    spark.result >> [report, published]
    summary = write_run_summary(landed, spark.result, published)
    [docs, report] >> summary
    summary >> SuccessEmailOperator(task_id="email_success")
    email_alerts(summary)


movielens_daily()
