"""
### movielens_daily

Turns the MovieLens files that landed for a date into tested recommendations.

1. **land_files** (optional, param `ingest`): copies MovieLens CSVs into `landing/ds={{ ds }}/` from
   `MOVIELENS_DIR`, a GroupLens download or the synthetic generator. In production files arrive on
   their own and `ingest` stays `none`.
2. **find_landed_movies_files** / **find_landed_other_files**: list `landing/ds=D/`; a file's kind
   comes from its name (`ratings*`, `movies*`, `tags*`, `links*`).
3. **route_movies_files**, then **route_other_files** (one mapped task per file): file checks and the
   Great Expectations suite of its kind (`expectations/`), then copy -> verify (size, SHA-256) ->
   record -> clear landing. Every file ends in exactly one of `validated/ds=D/` or `rejected/ds=D/`
   (with a report saying why). Movies go first: ratings and tags are checked against known movies.
4. **build_data_docs**: Great Expectations Data Docs of the day's validations, in
   `reports/ds=D/data_docs/index.html`.
5. **check_training_data**: fails clearly when no ratings up to D passed validation.
6. **spark_daily**: Spark builds bronze, silver and gold tables from validated files (history <= D),
   trains the models, evaluates them on a held-out split and writes recommendations and similar movies.
7. **write_run_summary**: `reports/ds=D/run_summary.json`.
8. **email_success**: metrics, data quality and sample recommendations. Any task failure emails the team.

Each task reads and writes only its own `ds` partitions: rerun or backfill any date alone.
Configuration: environment variables `MOVIELENS_*` (see the README); connections `spark_default`,
`smtp_default`, and the lake's connection for S3/Azure lakes.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from movielens.compute.local import LocalSparkJobOperator
from movielens.dag_defaults import START_DATE, default_args
from movielens.notify import TEMPLATES, SuccessEmailOperator

DAG_ID = "movielens_daily"


@dag(
    dag_id=DAG_ID,
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["movielens", "recommendations", "daily"],
    doc_md=__doc__,
    template_searchpath=[str(TEMPLATES)],
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
    },
)
def movielens_daily():
    @task
    def land_files(ds=None, params=None) -> dict:
        from movielens import config, landing

        return landing.land(config.load(), ds, params["ingest"])

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

    @task
    def write_run_summary(landing: dict, ds=None, run_id=None, dag=None) -> dict:
        from movielens import pipeline

        return pipeline.build_run_summary(ds, run_id, dag.dag_id, landing)

    landed = land_files()
    movies_found = find_landed_files.override(task_id="find_landed_movies_files")("movies")
    movies = route_landed_file.override(task_id="route_movies_files").expand(name=movies_found)
    # Listed after the movies are routed, so the list reflects landing at that moment.
    others_found = find_landed_files.override(task_id="find_landed_other_files", trigger_rule="none_failed")("others")
    others = route_landed_file.override(task_id="route_other_files").expand(name=others_found)
    landed >> movies_found
    movies >> others_found
    checked = check_training_data()
    others >> checked
    # Docs are built for whatever got routed, even when a file's routing task failed.
    docs = build_data_docs()
    others >> docs
    spark = LocalSparkJobOperator(task_id="spark_daily", job="daily.py")
    summary = write_run_summary(landed)
    docs >> summary
    checked >> spark >> summary >> SuccessEmailOperator(task_id="email_success")


movielens_daily()
