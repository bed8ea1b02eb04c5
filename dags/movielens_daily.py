"""
### movielens_daily

Turns the MovieLens files that landed for a date into validated data, tested models and movie
recommendations, then a run summary and an email. Runs `@daily` (no catch-up); trigger it by hand to
run one date now, rerun an earlier date, or try other model settings for one run.

#### The run's date
The **Logical date** at the top of the trigger form is Airflow's own field (the form fills in now), not
a param of this DAG: its UTC date is the run's `ds`, and every task reads and writes only the `ds=D`
partitions of that date (plus validated history up to D). Set an earlier date to rerun or backfill it.
A run without a logical date fails at once. Command line:
`airflow dags trigger movielens_daily -l 2026-11-20 --conf '{"als_rank": 10}'`.

#### Trigger form
- **ingest** (default `none`): land MovieLens files into `landing/ds=D/` first, from `MOVIELENS_DIR`
  (`folder`), a GroupLens `download`, the `synthetic` generator, or `auto` (folder, else download, else
  synthetic). In production files arrive on their own.
- **compute** (default `default` = `MOVIELENS_COMPUTE`): where Spark runs for this run only: `local`,
  `databricks`, `emr`, `emr-serverless`.
- **Model settings for this run**: `tune`, `tune_every_days`, `tune_max_users`, `als_rank`, `als_reg_param`,
  `als_max_iter`, `ease_reg`, `ials_weight`, `top_n_max_items`, `refit`. Left empty (numbers) or at
  `default` (choices), each follows its `MOVIELENS_*` variable; a value overrides it for this run
  only, on every backend. A value outside the bounds shown is refused when the run is created. The
  Spark job records what it ran with in `models/ds=D/params.json` and the run summary (`settings`,
  and `param_overrides` for what the form changed).
- **Tuning on a schedule**: with tuning on, a run tunes only when no run of the previous
  `tune_every_days` - 1 days (`MOVIELENS_TUNE_EVERY_DAYS`, default 7) tuned with the same tuning settings;
  otherwise its Spark job fits both models with the parameters that run chose (and still evaluates them
  all). `tune` = `on` tunes in this run whatever the schedule; `off` uses the configured values. The
  run summary's `tuning` says `tuned`, `reused from ds=D` or `off`.

#### Tasks
1. **land_files**: the `ingest` param (above).
2. **wait_for_landed_files** (deferrable): waits until the day's files (`MOVIELENS_WAIT_FOR_KINDS`,
   default ratings) are in landing or already routed; fails after `MOVIELENS_WAIT_TIMEOUT_SECONDS`
   (6 h) saying what is missing, and the failure email goes out.
   **wait_for_earlier_runs** (reschedule mode): waits while the run of the date before is queued or
   running, so backfilled dates are processed in date order whatever the backfill's max active runs
   (each date reads the validated and bronze history of the dates before it).
3. **find_landed_movies_files** / **find_landed_other_files**: list `landing/ds=D/`; a file's kind
   comes from its name (`ratings*`, `movies*`, `tags*`, `links*`).
4. **route_movies_files**, then **route_other_files** (one mapped task per file): file checks and the
   Great Expectations suite of its kind (`expectations/`), then copy -> verify (size, SHA-256) ->
   record -> clear landing. Every file ends in exactly one of `validated/ds=D/` or `rejected/ds=D/`
   (with a report saying why, and a data incident email). Movies go first: ratings and tags are
   checked against known movies.
5. **build_data_docs**: Great Expectations Data Docs of the day's validations, in
   `reports/ds=D/data_docs/index.html` (built even when a routing task failed).
6. **check_training_data**: fails clearly when no ratings up to D passed validation.
7. **choose_compute** picks where Spark runs (the `compute` param); the other backends' tasks are skipped.
   - local: **spark_daily** (spark-submit on this machine; an S3/Azure lake is staged through local disk).
   - databricks: **databricks_upload_jobs** (spark_jobs/ into the workspace) -> **spark_daily_databricks**
     (one-time run, deferrable; the run page URL is in the log).
   - emr: **emr_upload_jobs** (spark_jobs/ to S3) -> **emr_cluster** (the configured cluster, or
     **emr_create_cluster**) -> **emr_add_steps[_existing]** -> **emr_watch_step** (deferrable) ->
     **emr_terminate_cluster** (teardown: always, when the run created the cluster).
   - emr-serverless: **emr_serverless_upload_jobs** -> **spark_daily_emr_serverless** (deferrable).

   Spark builds bronze, silver and gold tables from validated files (history <= D), trains the rating
   model (biases + ALS) and the top-N model (EASE + implicit ALS), tuned in this run or with the
   parameters of the last tuning run (above; the backend's task logs which and why), evaluates them on a
   held-out split, and writes recommendations, similar movies and `models/ds=D/`.
8. **build_report**: `reports/ds=D/report.html`, one self-contained page of plots and tables from the gold
   tables (ratings, top movies, metrics against the baseline, the tuning grids, recent runs).
9. **publish_serving**: upserts the day's recommendations and similar movies into PostgreSQL (connection
   `MOVIELENS_SERVING_CONN_ID`; skipped, saying so, when it is not set).
10. **write_run_summary**: `reports/ds=D/run_summary.json` (files, counts, timings, settings, metrics).
11. **email_success**: data quality, metrics next to the previous run's, top recommendations, links to
   the run, the Data Docs and the report (text and HTML). If mail fails the task is skipped, the run
   stays good. Any task failure emails the team (`MOVIELENS_ALERT_EMAIL_TO`) after its retries.

#### Configuration
Environment variables `MOVIELENS_*`, read when a task runs (table in the README; e.g.
`MOVIELENS_LAKE_URL`, `MOVIELENS_COMPUTE`, `MOVIELENS_TUNE`, `MOVIELENS_EMAIL_TO`). Connections come
only from `AIRFLOW_CONN_*` variables or a secrets backend (`AIRFLOW__SECRETS__BACKEND`, e.g. Azure Key
Vault or AWS Secrets Manager; README "Secrets"): `spark_default`, `smtp_default`, the lake's
(`MOVIELENS_LAKE_CONN_ID`) for S3/Azure lakes, `databricks_default`, `aws_default`, `emr_default` and
the serving database's (`MOVIELENS_SERVING_CONN_ID`).
No secret goes into Spark's arguments, the lake, the summary or the emails.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.emr import (
    EmrAddStepsOperator,
    EmrCreateJobFlowOperator,
    EmrServerlessStartJobOperator,
    EmrTerminateJobFlowOperator,
)
from airflow.sdk import Param, dag, task

from movielens.compute.databricks import DatabricksSparkJobOperator
from movielens.compute.emr import EmrDailyStepSensor
from movielens.compute.local import LocalSparkJobOperator
from movielens.dag_defaults import START_DATE, default_args, require_ds
from movielens.notify import SuccessEmailOperator
from movielens.sensors import LandedFilesSensor
from movielens.trigger_form import model_params

DAG_ID = "movielens_daily"


@dag(
    dag_id=DAG_ID,
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["movielens", "recommendations", "daily"],
    doc_md=__doc__,
    default_args=default_args(),
    params={
        "ingest": Param(
            "none",
            type="string",
            enum=["none", "auto", "folder", "download", "synthetic"],
            title="Land data first",
            description="Copy MovieLens files into landing before validating: 'none' (files arrive on their "
            "own), 'folder' (MOVIELENS_DIR), 'download' (GroupLens), 'synthetic', or 'auto'.",
        ),
        "compute": Param(
            "default",
            type="string",
            enum=["default", "local", "databricks", "emr", "emr-serverless"],
            title="Where Spark runs",
            description="'default' follows MOVIELENS_COMPUTE; or this run only on 'local' Spark, 'databricks', "
            "'emr' (EMR on EC2) or 'emr-serverless'.",
        ),
        # Model settings: each follows its MOVIELENS_* variable unless this run sets it.
        **model_params(),
    },
)
def movielens_daily():
    @task
    def land_files(ds=None, params=None) -> dict:
        from movielens import config, landing

        return landing.land(config.load(), require_ds(ds), params["ingest"])

    @task
    def find_landed_files(group: str, ds=None) -> list[str]:
        from movielens import pipeline

        return pipeline.find_landed_files(ds)[group]

    @task(map_index_template="{{ name }}")
    def route_landed_file(name: str, ds=None, run_id=None) -> dict:
        from movielens import pipeline

        return pipeline.process_landed_file(ds, run_id, name)

    @task(trigger_rule="none_failed")
    def check_training_data(ds=None) -> dict:
        from movielens import pipeline

        return pipeline.check_training_data(ds)

    @task(trigger_rule="all_done")
    def build_data_docs(ds=None) -> dict:
        from movielens import pipeline

        return pipeline.build_data_docs(ds)

    @task(trigger_rule="none_failed_min_one_success")
    def build_report(ds=None) -> dict:
        from movielens import report

        return report.build_report(ds)

    @task(trigger_rule="none_failed_min_one_success")
    def write_run_summary(landing: dict, ds=None, run_id=None, dag=None, ti=None, params=None) -> dict:
        from movielens import pipeline

        compute = {
            "backend": ti.xcom_pull(task_ids="choose_compute", key="backend"),
            "run_page_url": ti.xcom_pull(task_ids="spark_daily_databricks", key="run_page_url"),
            "databricks_run_id": ti.xcom_pull(task_ids="spark_daily_databricks", key="run_id"),
            "emr_cluster_id": ti.xcom_pull(task_ids="emr_add_steps", key="job_flow_id")
            or ti.xcom_pull(task_ids="emr_add_steps_existing", key="job_flow_id"),
            "emr_serverless_job_run_id": ti.xcom_pull(task_ids="spark_daily_emr_serverless"),
        }
        serving = ti.xcom_pull(task_ids="publish_serving")
        return pipeline.build_run_summary(ds, run_id, dag.dag_id, landing, compute, serving, run_params=params)

    @task(trigger_rule="none_failed_min_one_success")
    def publish_serving(ds=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from movielens import config, serving

        if not config.load().serving_conn_id:
            raise AirflowSkipException("MOVIELENS_SERVING_CONN_ID is not set: the outputs stay in the lake only")
        return serving.publish(ds)

    @task.branch
    def choose_compute(params=None, ti=None) -> str:
        from movielens import config

        backend = params.get("compute") or "default"
        if backend == "default":
            backend = config.load().compute
        if backend not in config.COMPUTE_BACKENDS:
            raise ValueError(f"compute must be one of {config.COMPUTE_BACKENDS}, got {backend!r}")
        print(f"Spark runs on: {backend}")
        ti.xcom_push(key="backend", value=backend)
        return {
            "local": "spark_daily",
            "databricks": "databricks_upload_jobs",
            "emr": "emr_upload_jobs",
            "emr-serverless": "emr_serverless_upload_jobs",
        }[backend]

    @task
    def databricks_upload_jobs() -> str:
        from movielens.compute import databricks

        return databricks.upload_jobs("daily.py")

    @task(multiple_outputs=True)
    def emr_upload_jobs(ds=None, params=None) -> dict:
        from movielens.compute import emr

        return emr.upload_jobs(ds, "daily.py", params)

    @task.branch
    def emr_cluster(cluster_id: str | None) -> str:
        print(f"EMR cluster: {cluster_id or 'a new cluster for this run'}")
        return "emr_add_steps_existing" if cluster_id else "emr_create_cluster"

    @task(multiple_outputs=True)
    def emr_serverless_upload_jobs(ds=None, params=None) -> dict:
        from movielens.compute import emr

        uploaded = emr.upload_jobs(ds, "daily.py", params)
        emr.check_serverless(uploaded)
        return uploaded

    @task.sensor(poke_interval=30, mode="reschedule", timeout=24 * 3600)
    def wait_for_earlier_runs(ti=None) -> bool:
        from movielens.sensors import unfinished_earlier_run

        earlier = unfinished_earlier_run(ti)
        if earlier:
            print(
                f"waiting for the run of ds={earlier['ds']} ({earlier['run_id']}, {earlier['state']}) to finish: "
                "this date reads the history that run writes"
            )
        return earlier is None

    landed = land_files()
    # Deferred (the triggerer polls the lake) until the day's files are in landing, or already routed.
    arrived = LandedFilesSensor(task_id="wait_for_landed_files")
    movies_found = find_landed_files.override(task_id="find_landed_movies_files")("movies")
    movies = route_landed_file.override(task_id="route_movies_files").expand(name=movies_found)
    # Listed after the movies are routed, so the list reflects landing at that moment.
    others_found = find_landed_files.override(task_id="find_landed_other_files", trigger_rule="none_failed")("others")
    others = route_landed_file.override(task_id="route_other_files").expand(name=others_found)
    # Dates in order: the previous date's run has finished before this one reads the history.
    landed >> arrived >> wait_for_earlier_runs() >> movies_found
    movies >> others_found
    checked = check_training_data()
    others >> checked
    # Docs are built for whatever got routed, even when a file's routing task failed.
    docs = build_data_docs()
    others >> docs
    summary = write_run_summary(landed)
    docs >> summary

    # One Spark job, on the backend of the run; the other branches are skipped.
    backend = choose_compute()
    checked >> backend
    local = LocalSparkJobOperator(task_id="spark_daily", job="daily.py")

    databricks_code = databricks_upload_jobs()
    databricks = DatabricksSparkJobOperator(task_id="spark_daily_databricks", job="daily.py", python_file=databricks_code)

    emr_code = emr_upload_jobs()
    cluster = emr_cluster(emr_code["cluster_id"])
    create = EmrCreateJobFlowOperator(
        task_id="emr_create_cluster",
        job_flow_overrides=emr_code["job_flow"],
        aws_conn_id=emr_code["aws_conn_id"],
        emr_conn_id="emr_default",
    )
    # Steps on the cluster created for the run (its teardown always terminates it) or on the configured one.
    add_steps = EmrAddStepsOperator(
        task_id="emr_add_steps",
        job_flow_id="{{ ti.xcom_pull(task_ids='emr_create_cluster') }}",
        steps=emr_code["steps"],
        aws_conn_id=emr_code["aws_conn_id"],
    )
    add_steps_existing = EmrAddStepsOperator(
        task_id="emr_add_steps_existing",
        job_flow_id=emr_code["cluster_id"],
        steps=emr_code["steps"],
        aws_conn_id=emr_code["aws_conn_id"],
    )
    pull = "ti.xcom_pull(task_ids='emr_add_steps'{0}) or ti.xcom_pull(task_ids='emr_add_steps_existing'{0})"
    watch = EmrDailyStepSensor(
        task_id="emr_watch_step",
        job_flow_id="{{ " + pull.format(", key='job_flow_id'") + " }}",
        step_id="{{ (" + pull.format("") + ")[0] }}",
        aws_conn_id=emr_code["aws_conn_id"],
        deferrable=True,
        trigger_rule="none_failed_min_one_success",
    )
    terminate = EmrTerminateJobFlowOperator(
        task_id="emr_terminate_cluster",
        job_flow_id="{{ ti.xcom_pull(task_ids='emr_create_cluster') }}",
        aws_conn_id=emr_code["aws_conn_id"],
    )
    cluster >> [create, add_steps_existing]
    create >> add_steps >> watch >> terminate.as_teardown(setups=create)
    add_steps_existing >> watch

    serverless_code = emr_serverless_upload_jobs()
    serverless = EmrServerlessStartJobOperator(
        task_id="spark_daily_emr_serverless",
        application_id=serverless_code["application_id"],
        execution_role_arn=serverless_code["execution_role_arn"],
        job_driver=serverless_code["job_driver"],
        configuration_overrides=serverless_code["configuration_overrides"],
        aws_conn_id=serverless_code["aws_conn_id"],
        name="movielens-daily-{{ ds }}",
        deferrable=True,
    )

    backend >> [local, databricks_code, emr_code, serverless_code]
    # Whichever backend ran (the others are skipped), then the report and the serving tables; the summary
    # links the report and records what was published.
    backends = [local, databricks, watch, serverless]
    backends >> build_report() >> summary
    backends >> publish_serving() >> summary
    summary >> SuccessEmailOperator(task_id="email_success")


movielens_daily()
