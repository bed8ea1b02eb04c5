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


def test_idempotency_token_is_per_dag_task_and_date_and_fits_databricks():
    assert idempotency_token("movielens_daily", "spark_daily_databricks", "2026-11-20") == (
        "movielens_daily.spark_daily_databricks.2026-11-20"
    )
    long = idempotency_token("d" * 60, "t" * 60, "2026-11-20")
    assert len(long) <= 64 and long == idempotency_token("d" * 60, "t" * 60, "2026-11-20")
    assert long != idempotency_token("d" * 60, "t" * 60, "2026-11-21")


def test_the_daily_dag_branches_to_one_backend_and_joins():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(config.PROJECT_ROOT / "dags" / "movielens_daily.py"))
    dag = bag.dags["movielens_daily"]
    branch = dag.get_task("choose_compute")
    assert branch.downstream_task_ids == {
        "spark_daily", "databricks_upload_jobs", "emr_upload_jobs", "emr_serverless_upload_jobs"
    }
    # The backends join at the report and at publish_serving (the skipped ones must skip neither); the
    # summary links the report and records what was published.
    backends = {"spark_daily", "spark_daily_databricks", "emr_watch_step", "spark_daily_emr_serverless"}
    summary = dag.get_task("write_run_summary")
    for task_id in ("build_report", "publish_serving"):
        joined = dag.get_task(task_id)
        assert joined.upstream_task_ids == backends, task_id
        assert joined.trigger_rule == "none_failed_min_one_success", task_id
        assert task_id in summary.upstream_task_ids
    assert summary.trigger_rule == "none_failed_min_one_success"
    assert dag.get_task("emr_terminate_cluster").is_teardown
    assert dag.get_task("spark_daily_databricks").deferrable and dag.get_task("emr_watch_step").deferrable
    assert dag.params["compute"] == "default"
