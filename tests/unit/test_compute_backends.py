"""Choosing the compute backend: settings, the shipped code, run identities and the DAG's branches."""

from __future__ import annotations

import io
import zipfile

import pytest

from movielens import config
from movielens.compute.remote import JobCode, idempotency_token


@pytest.mark.parametrize("backend", config.COMPUTE_BACKENDS)
def test_every_backend_is_accepted(backend, monkeypatch):
    monkeypatch.setenv("MOVIELENS_COMPUTE", backend)
    assert config.load().compute == backend


def test_unknown_backend_and_bad_cluster_json_are_refused(monkeypatch):
    monkeypatch.setenv("MOVIELENS_COMPUTE", "dataproc")
    with pytest.raises(ValueError, match="MOVIELENS_COMPUTE must be one of"):
        config.load()
    monkeypatch.setenv("MOVIELENS_DATABRICKS_NEW_CLUSTER", "[1, 2]")
    with pytest.raises(ValueError, match="MOVIELENS_DATABRICKS_NEW_CLUSTER must be a JSON object"):
        config.load_compute()
    monkeypatch.setenv("MOVIELENS_DATABRICKS_NEW_CLUSTER", '{"spark_version": "16.4.x-scala2.12", "num_workers": 8}')
    monkeypatch.setenv("MOVIELENS_EMR_SPARK_SUBMIT_ARGS", "--deploy-mode,client,--conf,spark.executor.memory=8g")
    compute = config.load_compute()
    assert compute.databricks_new_cluster == {"spark_version": "16.4.x-scala2.12", "num_workers": 8}
    assert compute.emr_spark_submit_args == ["--deploy-mode", "client", "--conf", "spark.executor.memory=8g"]
    assert compute.databricks_cluster_id is None and compute.emr_cluster_id is None


def test_shipped_code_is_the_package_and_its_version_follows_content(tmp_path):
    code = JobCode.from_dir(config.PROJECT_ROOT / "spark_jobs")
    assert "spark_jobs/daily.py" in code.files and "spark_jobs/common/layout.py" in code.files
    assert not any("__pycache__" in name for name in code.files)
    names = zipfile.ZipFile(io.BytesIO(code.zip_bytes())).namelist()
    assert sorted(names) == sorted(code.files)
    assert code.zip_bytes() == code.zip_bytes()
    changed = JobCode({**code.files, "spark_jobs/daily.py": code.files["spark_jobs/daily.py"] + b"\n"})
    assert changed.version != code.version and len(code.version) == 16
    with pytest.raises(FileNotFoundError):
        code.entry("nope.py")
    with pytest.raises(FileNotFoundError):
        JobCode.from_dir(tmp_path)


def test_idempotency_token_is_per_dag_task_date_and_clear_and_fits_64_characters():
    assert idempotency_token("movielens_daily", "spark.databricks_run", "2026-11-20") == (
        "movielens_daily.spark.databricks_run.2026-11-20.0"
    )
    assert idempotency_token("movielens_daily", "spark.databricks_run", "2026-11-20", 2).endswith(".2026-11-20.2")
    long = idempotency_token("d" * 60, "t" * 60, "2026-11-20")
    assert len(long) <= 64 and long == idempotency_token("d" * 60, "t" * 60, "2026-11-20")
    assert long != idempotency_token("d" * 60, "t" * 60, "2026-11-21")
    assert long != idempotency_token("d" * 60, "t" * 60, "2026-11-20", 1)


def test_the_daily_dag_runs_spark_in_one_group_that_branches_to_one_backend_and_joins():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(config.PROJECT_ROOT / "dags" / "movielens_daily.py"))
    dag = bag.dags["movielens_daily"]
    group = {t for t in dag.task_ids if t.startswith("spark.")}
    assert dag.get_task("spark.plan").upstream_task_ids == {"check_training_data"}
    branch = dag.get_task("spark.choose_backend")
    assert branch.downstream_task_ids == {
        "spark.local", "spark.databricks_upload", "spark.emr_upload", "spark.emr_serverless_upload"
    }
    # The backends join at the group's one result (the skipped ones must not skip it).
    result = dag.get_task("spark.result")
    backends = {"spark.local", "spark.databricks_run", "spark.emr_watch_step", "spark.emr_serverless_run"}
    assert backends | {"spark.plan"} == result.upstream_task_ids
    assert result.trigger_rule == "none_failed_min_one_success"
    # Nothing outside the group depends on a backend's task: only on the result.
    outside = {t.task_id for t in dag.tasks if t.task_id not in group}
    for task_id in outside:
        assert not dag.get_task(task_id).upstream_task_ids & (group - {"spark.result"}), task_id
    summary = dag.get_task("write_run_summary")
    assert {"spark.result", "build_report", "publish_serving"} <= summary.upstream_task_ids
    assert dag.get_task("build_report").upstream_task_ids == {"spark.result"}
    assert summary.trigger_rule == "none_failed_min_one_success"
    assert dag.get_task("spark.emr_terminate_cluster").is_teardown
    assert dag.get_task("spark.databricks_run").deferrable and dag.get_task("spark.emr_watch_step").deferrable
    assert dag.params["compute"] == "default"


def test_the_result_says_where_the_job_ran(monkeypatch, lake_url):
    """One XCom for every backend: its name, the run's id and page URL, from the backend's own task; and the
    products' asset events of the date, whichever backend ran the job."""
    from movielens import lineage
    from movielens.lake import Lake
    from spark_jobs.common import layout

    lake = Lake.from_settings(config.load())  # the gate held the date's lists back
    lake.write_json(lake.zone(layout.REPORTS, "2026-01-02") / layout.PUBLICATION, {"published": False})

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(config.PROJECT_ROOT / "dags" / "movielens_daily.py"))
    result = bag.dags["movielens_daily"].get_task("spark.result")
    xcoms = {("spark.databricks_run", "run_id"): 7, ("spark.databricks_run", "run_page_url"): "https://db/run/7",
             ("spark.emr_add_steps", "return_value"): ["s-1"], ("spark.emr_add_steps", "job_flow_id"): "j-1",
             ("spark.emr_serverless_run", "return_value"): "jr-1"}

    class TaskInstance:
        def xcom_pull(self, task_ids, key="return_value"):
            if isinstance(task_ids, list):
                return [xcoms.get((t, key)) for t in task_ids]
            return xcoms.get((task_ids, key))

    class AssetEvent:
        def __init__(self):
            self.partitions, self.extra = [], {}

        def add_partitions(self, *keys):
            self.partitions.extend(keys)

    events = {}

    def run(backend):
        events.clear()
        outlet_events = {lineage.asset(p): events.setdefault(p, AssetEvent()) for p in lineage.SPARK_JOB_PRODUCTS}
        return result.python_callable(backend, ds="2026-01-02", ti=TaskInstance(), outlet_events=outlet_events)

    assert run("databricks") == {"backend": "databricks", "run_id": 7, "url": "https://db/run/7"}
    assert run("emr") == {"backend": "emr", "run_id": "s-1", "url": None, "cluster_id": "j-1"}
    assert run("emr-serverless") == {"backend": "emr-serverless", "run_id": "jr-1", "url": None}
    assert run("local") == {"backend": "local", "run_id": None, "url": None}
    assert {p: (e.partitions, e.extra) for p, e in events.items()} == {
        p: (["2026-01-02"], {"ds": "2026-01-02", "backend": "local", "published": False})
        for p in lineage.SPARK_JOB_PRODUCTS}


def test_local_spark_logs_at_the_configured_level(monkeypatch, lake_url):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from movielens.compute.local import LocalSparkJobOperator
    from spark_jobs.common.spec import JobSpec

    levels = []
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda self, context: levels.append(self.conf["spark.log.level"]))
    monkeypatch.delenv("MOVIELENS_SPARK_LOG_LEVEL", raising=False)
    for level in (None, "info"):
        if level:
            monkeypatch.setenv("MOVIELENS_SPARK_LOG_LEVEL", level)
        LocalSparkJobOperator(task_id="local", job_spec=JobSpec.build().to_dict()).execute({"ds": "2026-11-20"})
    assert levels == ["WARN", "INFO"]
    monkeypatch.setenv("MOVIELENS_SPARK_LOG_LEVEL", "loud")
    with pytest.raises(ValueError, match=r"MOVIELENS_SPARK_LOG_LEVEL must be one of \('ALL'"):
        config.load()
