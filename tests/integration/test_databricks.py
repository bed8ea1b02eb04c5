"""The Databricks backend against a local Databricks workspace (tests/databricks_server.py) over HTTP.

Fast: the upload into the workspace, the submitted run's shape (arguments of ``job_arguments``, the
cluster from configuration, the idempotency token), a remote failure failing the task with the error
and the run page URL, a retry getting the same run back, and cancellation on kill; the provider's
operator and its deferrable trigger do all the HTTP. End to end (``e2e``): ``movielens_daily`` with
``compute=databricks`` from the trigger form, the run executing the job with local spark-submit, then a
failing remote run failing the DAG run and sending the failure email.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import types

import pytest
import requests

from movielens import config
from movielens.compute import job_arguments
from movielens.compute.remote import JobCode, idempotency_token
from movielens.lake import Lake
from spark_jobs.common import layout
from spark_jobs.common.spec import JobSpec
from tests import e2e
from tests.databricks_server import FakeDatabricks

DS = "2026-11-20"
DAG_ID = "movielens_daily"
TASK_ID = "spark.databricks_run"
# The spec the run's plan hands the backend (tuning off: the backend is under test here).
JOB_SPEC = JobSpec.build({"tune": False})


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    with FakeDatabricks(tmp_path / "databricks") as server:
        monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_DEFAULT", server.connection_json())
        monkeypatch.setenv("MOVIELENS_DATABRICKS_POLL_SECONDS", "1")
        yield server


class TaskInstance:
    """What the operator asks of a task instance: somewhere to push XComs."""

    def __init__(self):
        self.xcoms: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.xcoms[key] = value


class Dag:
    dag_id = DAG_ID


def context(ds: str = DS, clear_number: int = 0) -> dict:
    """What the operator reads of a task's context; ``clear_number``: how often the DAG run was cleared."""
    return {"ds": ds, "dag": Dag(), "ti": TaskInstance(), "dag_run": types.SimpleNamespace(clear_number=clear_number)}


def run_trigger(trigger) -> dict:
    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first_event(), timeout=120))


def submit(python_file: str, ctx: dict):
    """Run the operator as Airflow does: execute (defers), the trigger until the run ends, execute_complete."""
    from airflow.sdk.exceptions import TaskDeferred

    from movielens.compute.databricks import DatabricksSparkJobOperator

    op = DatabricksSparkJobOperator(task_id=TASK_ID, python_file=python_file, job_spec=JOB_SPEC.to_dict())
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    return op, deferred.value.trigger


def test_upload_submit_and_a_failing_remote_run(workspace, lake_url, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.providers.databricks.utils.databricks import normalise_json_content

    from movielens.compute import databricks

    monkeypatch.setenv("MOVIELENS_DATABRICKS_WORKSPACE_DIR", "/Shared/movielens-tests")
    settings = config.load()
    entry = databricks.upload_jobs("daily.py")
    code = JobCode.from_dir(settings.spark_jobs_dir)
    assert entry == f"/Shared/movielens-tests/{code.version}/spark_jobs/daily.py"
    # Every file of spark_jobs/ is in the workspace, byte for byte, next to the entry script.
    base = workspace.local_path(f"/Shared/movielens-tests/{code.version}")
    assert {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*.py")} == code.files
    assert {r["path"] for r in workspace.requests} == {"/api/2.0/workspace/mkdirs", "/api/2.0/workspace/import"}
    assert all(r["status"] == 200 for r in workspace.requests)

    workspace.fail_next_run = "org.apache.spark.SparkException: Job aborted: the driver was lost"
    ctx = context()
    op, trigger = submit(entry, ctx)
    run_id = op.run_id
    url = ctx["ti"].xcoms["run_page_url"]
    assert url == workspace.run_page_url(workspace.runs[run_id])
    body = next(r["body"] for r in workspace.requests if r["path"] == "/api/2.2/jobs/runs/submit")
    assert body["idempotency_token"] == idempotency_token(DAG_ID, TASK_ID, DS) == f"{DAG_ID}.{TASK_ID}.{DS}.0"
    # The provider sends numbers as strings (normalise_json_content); Databricks accepts both.
    assert body["timeout_seconds"] == str(4 * 3600) and body["run_name"] == "movielens-daily"
    [task] = body["tasks"]
    assert task["spark_python_task"] == {
        "python_file": entry,
        "source": "WORKSPACE",
        "parameters": job_arguments(Lake.from_settings(settings).spark_root(), DS, JOB_SPEC),
    }
    assert task["spark_python_task"]["parameters"][:2] == ["--lake-root", lake_url]
    assert task["new_cluster"] == normalise_json_content(config.DEFAULT_DATABRICKS_NEW_CLUSTER)
    assert "existing_cluster_id" not in task

    event = run_trigger(trigger)
    with pytest.raises(AirflowFailException) as failed:
        op.execute_complete(ctx, event)
    message = str(failed.value)
    assert "the driver was lost" in message and url in message and f"run {run_id}" in message
    seen = workspace.runs[run_id]["states_seen"]
    assert seen[0] == "PENDING" and seen[-1] == "TERMINATED", seen
    assert [int(r["body"]["run_id"]) for r in workspace.requests if r["path"].endswith("/get-output")] == [
        workspace.runs[run_id]["tasks"][0]["run_id"]
    ]

    # A retry of the task (same DAG, task, date) gets the same run back, never a second one.
    ctx2 = context()
    from movielens.compute.databricks import DatabricksSparkJobOperator

    retry = DatabricksSparkJobOperator(task_id=TASK_ID, python_file=entry, job_spec=JOB_SPEC.to_dict())
    with pytest.raises(AirflowFailException, match="the driver was lost"):
        retry.execute(ctx2)  # already terminal: fails at once
    assert retry.run_id == run_id and len(workspace.runs) == 1

    # Clearing the DAG run (Airflow counts it: clear_number 1) submits a new run (which fails its own way here,
    # so no Spark runs); a retry of that try (a lost answer, a lost worker) reattaches to it: two runs in all.
    workspace.fail_next_run = "the cleared run's own failure"
    cleared_op, cleared_trigger = submit(entry, context(clear_number=1))
    assert cleared_op.run_id != run_id and len(workspace.runs) == 2
    tokens = [r["body"]["idempotency_token"] for r in workspace.requests if r["path"] == "/api/2.2/jobs/runs/submit"]
    assert tokens[-1] == f"{DAG_ID}.{TASK_ID}.{DS}.1"
    again, _ = submit(entry, context(clear_number=1))
    assert again.run_id == cleared_op.run_id and len(workspace.runs) == 2
    with pytest.raises(AirflowFailException, match="the cleared run's own failure"):
        cleared_op.execute_complete(ctx, run_trigger(cleared_trigger))


def test_existing_cluster_and_cancel_on_kill(workspace, lake_url, monkeypatch):
    from movielens.compute import databricks

    monkeypatch.setenv("MOVIELENS_DATABRICKS_CLUSTER_ID", "0101-120000-abcd1234")
    workspace.pending_s = 30  # the cluster never comes up before the kill: no Spark here
    entry = databricks.upload_jobs("daily.py")
    op, trigger = submit(entry, context("2026-11-21"))
    [task] = workspace.runs[op.run_id]["submitted"]["tasks"]
    assert task["existing_cluster_id"] == "0101-120000-abcd1234" and "new_cluster" not in task
    op.on_kill()  # the task is killed while its run waits: the run is cancelled
    assert workspace.runs[op.run_id]["cancelled"]
    assert any(r["path"] == "/api/2.2/jobs/runs/cancel" and r["body"] == {"run_id": op.run_id} for r in workspace.requests)
    asyncio.run(trigger.on_kill())  # the deferred trigger cancels too when the task is killed while deferred
    cancels = [r for r in workspace.requests if r["path"] == "/api/2.2/jobs/runs/cancel"]
    assert len(cancels) == 2


def test_the_fake_workspace_refuses_what_databricks_refuses(workspace):
    api = f"http://127.0.0.1:{workspace.port}/api"
    auth = {"Authorization": f"Bearer {workspace.token}"}
    # The 2.0 single-task shape (task at the top level) is not a 2.2 runs/submit request.
    legacy = {"run_name": "x", "spark_python_task": {"python_file": "/a.py"}, "new_cluster": {"spark_version": "x"}}
    answer = requests.post(f"{api}/2.2/jobs/runs/submit", json=legacy, headers=auth, timeout=10)
    assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    two_clusters = {"tasks": [{"task_key": "t", "spark_python_task": {"python_file": "/a.py"},
                               "existing_cluster_id": "c", "new_cluster": {"spark_version": "x"}}]}
    assert requests.post(f"{api}/2.2/jobs/runs/submit", json=two_clusters, headers=auth, timeout=10).status_code == 400
    no_parent = {"path": "/nowhere/a.py", "content": "cHJpbnQoMSkK", "format": "AUTO"}
    answer = requests.post(f"{api}/2.0/workspace/import", json=no_parent, headers=auth, timeout=10)
    assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert requests.post(f"{api}/2.0/workspace/mkdirs", json={"path": "/x"}, timeout=10).status_code == 401
    assert requests.get(f"{api}/2.2/jobs/runs/get", params={"run_id": 5}, headers=auth, timeout=10).status_code == 400


# --- end to end -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from movielens.ingest import synthetic

    folder = tmp_path_factory.mktemp("source")
    synthetic.generate_size(folder, "tiny", seed=7, end=dt.date.fromisoformat(DS))
    return folder


@pytest.mark.e2e
def test_daily_dag_on_databricks_then_a_failing_run(tmp_path, mailbox, source):
    from devenv import local_airflow

    with FakeDatabricks(tmp_path / "databricks") as server:
        server.pending_s = 2.0
        lake = tmp_path / "lake"
        env = e2e.airflow_env_for(tmp_path, mailbox, source, {
            "MOVIELENS_TUNE": "false",  # the backend is under test here; tuning is tested with local Spark
            "MOVIELENS_COMPUTE": "local",  # the run's `compute` param moves it to Databricks
            "AIRFLOW_CONN_DATABRICKS_DEFAULT": server.connection_json(),
            "MOVIELENS_DATABRICKS_POLL_SECONDS": "2",
        })
        e2e.migrate(env)
        log_file = tmp_path / "dags_test.log"
        state = local_airflow.dags_test(DAG_ID, DS, env, conf={"ingest": "folder", "compute": "databricks"}, log_file=log_file)
        log = log_file.read_text()
        assert state == "success", log[-6000:]
        [run] = server.runs.values()
        assert run["state"] == {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""}
        seen = run["states_seen"]
        assert seen[0] == "PENDING" and "RUNNING" in seen and seen[-1] == "TERMINATED", seen
        assert server.run_page_url(run) in log
        params = run["submitted"]["tasks"][0]["spark_python_task"]["parameters"]
        assert params[:4] == ["--lake-root", lake.as_uri(), "--ds", DS]
        # The job ran from the workspace copy of spark_jobs/ and wrote the lake.
        for table in ("bronze/ratings", "silver/ratings", "gold/recommendations", "gold/similar_movies", "gold/model_metrics"):
            assert list((lake / table / f"ds={DS}").glob("*.parquet")), table
        summary = json.loads((lake / "reports" / f"ds={DS}" / layout.RUN_SUMMARY).read_text())
        assert 0 < summary["metrics"]["als_explicit"]["rmse"] < 2
        assert summary["files_validated"] == 4
        assert "Spark runs on: databricks" in log
        assert summary["compute"] == {"backend": "databricks", "run_id": run["run_id"], "url": server.run_page_url(run)}
        assert summary["links"]["spark_run"] == server.run_page_url(run)
        success = [m for m in mailbox.messages() if "files validated" in m["Subject"]]
        assert len(success) == 1
        assert server.run_page_url(run) in success[0].get_body(preferencelist=("html",)).get_content()

        # Next day, the cluster fails: the task fails with the remote error and the run page, and emails.
        ds2 = "2026-11-21"
        server.fail_next_run = "com.databricks.backend.common.rpc.DriverStoppedException: Driver down"
        env["MOVIELENS_COMPUTE"] = "databricks"
        log_file = tmp_path / "dags_test_failing.log"
        state = local_airflow.dags_test(DAG_ID, ds2, env, conf={"ingest": "folder"}, log_file=log_file)
        log = log_file.read_text()
        assert state == "failed", log[-6000:]
        failed_run = next(r for r in server.runs.values() if r["run_id"] != run["run_id"])
        url = server.run_page_url(failed_run)
        assert "Driver down" in log and url in log
        failures = [m for m in mailbox.messages() if "FAILED" in m["Subject"]]
        assert [m["Subject"] for m in failures] == [f"[movielens] FAILED {DAG_ID}.{TASK_ID} for {ds2} (try 1)"]
        body = failures[0].get_body(preferencelist=("html",)).get_content()
        assert "Driver down" in body and url in body
