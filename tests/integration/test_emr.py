"""EMR and EMR Serverless against moto's server (real AWS HTTP APIs: S3, EMR, EMR Serverless).

Fast: the code upload (zip for --py-files and the entry script), the command-runner.jar step that
EmrAddStepsOperator adds to a cluster (exactly the arguments of ``job_arguments``), and the job that
EmrServerlessStartJobOperator starts on an application. End to end (``e2e``): ``movielens_daily`` with
``compute=emr`` creates a cluster, adds the step, waits for it with the deferrable sensor and
terminates the cluster. moto never runs a step, so the test plays the cluster: a thread takes each
step moto holds, runs its ``spark-submit`` arguments with local Spark (the code fetched from moto's
S3; only ``--deploy-mode cluster`` becomes ``--master local[2]``), and sets the step's state in moto's
backend (the server runs in this process) to COMPLETED or FAILED.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
import threading
import time
import zipfile
from types import SimpleNamespace
from pathlib import Path

import pytest

from movielens import config
from movielens.compute import job_arguments
from movielens.compute.remote import JobCode
from movielens.lake import Lake
from spark_jobs.common import layout
from spark_jobs.common.spec import JobSpec
from tests import e2e

DS = "2026-11-20"
# The spec the run's plan hands the backend (as an XCom: a dict).
JOB_SPEC = JobSpec.build({"tune": False}).to_dict()


@pytest.fixture
def aws(moto_server, monkeypatch, lake_url):
    bucket = moto_server.create_bucket()
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", moto_server.connection_json())
    monkeypatch.setenv("MOVIELENS_EMR_CODE_URL", f"s3://{bucket}/code")
    return moto_server, bucket


def test_upload_and_the_step_on_a_cluster(aws, lake_url, tmp_path):
    from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator

    from movielens.compute import emr

    server, bucket = aws
    settings = config.load()
    code = JobCode.from_dir(settings.spark_jobs_dir)
    uploaded = emr.upload_jobs(DS, JOB_SPEC, "daily.py")
    code_url = f"s3://{bucket}/code/{code.version}"
    assert uploaded["code_url"] == code_url
    assert server.keys(bucket) == [f"code/{code.version}/spark_jobs.zip", f"code/{code.version}/spark_jobs/daily.py"]
    s3 = server.client()
    archive = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=bucket, Key=f"code/{code.version}/spark_jobs.zip")["Body"].read()))
    assert {name: archive.read(name) for name in archive.namelist()} == code.files
    # The same code uploaded again gives the same bytes (a fixed zip), so a rerun changes nothing.
    assert code.zip_bytes() == JobCode.from_dir(settings.spark_jobs_dir).zip_bytes()

    args = job_arguments(Lake.from_settings(settings).spark_root(), DS, JOB_SPEC)
    expected = ["spark-submit", "--deploy-mode", "cluster", "--py-files", f"{code_url}/spark_jobs.zip",
                f"{code_url}/spark_jobs/daily.py", *args]
    [step] = uploaded["steps"]
    assert step["HadoopJarStep"] == {"Jar": "command-runner.jar", "Args": expected}
    assert uploaded["cluster_id"] is None and uploaded["job_flow"] == config.DEFAULT_EMR_JOB_FLOW

    # EmrAddStepsOperator adds it to a cluster; EMR's API gives back exactly these arguments.
    cluster = server.client("emr").run_job_flow(**config.DEFAULT_EMR_JOB_FLOW)["JobFlowId"]

    class TI:
        def xcom_push(self, key, value):
            pass

    op = EmrAddStepsOperator(task_id="emr_add_steps", job_flow_id=cluster, steps=uploaded["steps"])
    [step_id] = op.execute({"ti": TI()})
    described = server.client("emr").describe_step(ClusterId=cluster, StepId=step_id)["Step"]
    assert described["Config"]["Jar"] == "command-runner.jar" and described["Config"]["Args"] == expected
    assert described["ActionOnFailure"] == "CONTINUE"


def test_emr_serverless_job(aws, lake_url, monkeypatch):
    from movielens.compute import emr
    from movielens.compute.emr import EmrServerlessDailyJobOperator

    server, bucket = aws
    client = server.client("emr-serverless")
    app = client.create_application(name="movielens", releaseLabel="emr-7.12.0", type="SPARK")["applicationId"]
    role = "arn:aws:iam::123456789012:role/movielens-emr-serverless"
    monkeypatch.setenv("MOVIELENS_EMR_SERVERLESS_APP_ID", app)
    monkeypatch.setenv("MOVIELENS_EMR_SERVERLESS_ROLE_ARN", role)
    monkeypatch.setenv("MOVIELENS_EMR_SERVERLESS_LOG_URL", f"s3://{bucket}/logs")
    uploaded = emr.upload_jobs(DS, JOB_SPEC, "daily.py")
    emr.check_serverless(uploaded)
    settings = config.load()
    code_url = uploaded["code_url"]

    def operator():
        return EmrServerlessDailyJobOperator(
            task_id="spark.emr_serverless_run",
            application_id=uploaded["application_id"],
            execution_role_arn=uploaded["execution_role_arn"],
            job_driver=uploaded["job_driver"],
            configuration_overrides=uploaded["configuration_overrides"],
            name=f"movielens-daily-{DS}",
            wait_for_completion=False,
        )

    def context(clear_number: int) -> dict:
        return {"ds": DS, "dag": SimpleNamespace(dag_id="movielens_daily"),
                "dag_run": SimpleNamespace(clear_number=clear_number)}

    op = operator()
    job_run_id = op.execute(context(0))
    # The client token is the run's (not the provider's random one per operator): a retry of the try sends the
    # same one, so EMR Serverless returns the job run it started; a clear of the run sends a new one.
    assert op.client_request_token == "movielens_daily.spark.emr_serverless_run.2026-11-20.0"
    retry, cleared = operator(), operator()
    retry.execute(context(0))
    cleared.execute(context(1))
    assert retry.client_request_token == op.client_request_token != cleared.client_request_token
    run = client.get_job_run(applicationId=app, jobRunId=job_run_id)["jobRun"]
    assert run["executionRole"] == role and run["name"] == f"movielens-daily-{DS}"
    assert run["jobDriver"]["sparkSubmit"] == {
        "entryPoint": f"{code_url}/spark_jobs/daily.py",
        "entryPointArguments": job_arguments(Lake.from_settings(settings).spark_root(), DS, JOB_SPEC),
        "sparkSubmitParameters": f"--py-files {code_url}/spark_jobs.zip",
    }
    assert run["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"]["logUri"] == f"s3://{bucket}/logs"

    monkeypatch.delenv("MOVIELENS_EMR_SERVERLESS_ROLE_ARN")
    with pytest.raises(ValueError, match="MOVIELENS_EMR_SERVERLESS_ROLE_ARN"):
        emr.check_serverless(emr.upload_jobs(DS, JOB_SPEC, "daily.py"))


# --- end to end -----------------------------------------------------------------------------------
class EmrCluster(threading.Thread):
    """Plays the EMR cluster for moto: runs each new step's spark-submit locally, then sets its state."""

    def __init__(self, server, workdir: Path):
        super().__init__(daemon=True)
        self.server = server
        self.workdir = workdir
        self.ran: list[dict] = []
        self._stop = threading.Event()
        # Clusters (and their never-finishing steps) left in the shared moto server by earlier tests.
        self.earlier = set(self.backend().clusters)

    def backend(self):
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.emr.models import emr_backends

        return emr_backends[DEFAULT_ACCOUNT_ID][self.server.region]

    def local_args(self, args: list[str]) -> list[str]:
        """The step's arguments, with s3:// code fetched to local files and local Spark as master."""
        s3 = self.server.client()
        out = []
        skip = False
        for i, arg in enumerate(args):
            if skip:
                skip = False
                continue
            if arg == "--deploy-mode" and args[i + 1] == "cluster":
                out += ["--master", "local[2]"]
                skip = True
            elif arg.startswith("s3://") and (arg.endswith(".zip") or arg.endswith(".py")):
                bucket, key = arg.removeprefix("s3://").split("/", 1)
                local = self.workdir / "code" / bucket / key
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                out.append(str(local))
            else:
                out.append(arg)
        return out

    def run(self) -> None:
        done: set[str] = set()
        while not self._stop.is_set():
            for cluster_id, cluster in list(self.backend().clusters.items()):
                if cluster_id in self.earlier:
                    continue
                for step in list(cluster.steps):
                    if step.id in done or step.state not in ("PENDING", "RUNNING"):
                        continue
                    done.add(step.id)
                    self.execute(step)
            time.sleep(0.5)

    def execute(self, step) -> None:
        args = list(step.args)
        assert step.jar == "command-runner.jar" and args[0] == "spark-submit", step.config
        cmd = [str(Path(sys.executable).parent / "spark-submit"), *self.local_args(args[1:])]
        cmd[1:1] = ["--conf", "spark.driver.memory=2g", "--conf", "spark.ui.showConsoleProgress=false"]
        log = self.workdir / f"step_{step.id}.log"
        step.state = "RUNNING"
        with log.open("wb") as out:
            code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
        self.ran.append({"step": step.id, "args": args, "command": cmd, "exit": code, "log": log})
        if code == 0:
            step.state = "COMPLETED"
        else:
            step.last_state_change_reason = f"spark-submit exited with {code}"
            step.state = "FAILED"

    def stop(self) -> None:
        self._stop.set()


@pytest.mark.e2e
def test_daily_dag_on_emr_creates_runs_and_terminates_a_cluster(moto_server, tmp_path, mailbox):
    from devenv import local_airflow
    from movielens.ingest import synthetic

    source = tmp_path / "source"
    synthetic.generate_size(source, "tiny", seed=7, end=dt.date.fromisoformat(DS))
    bucket = moto_server.create_bucket()
    lake = tmp_path / "lake"
    env = e2e.airflow_env_for(tmp_path, mailbox, source, {
        "MOVIELENS_TUNE": "false",  # the backend is under test here; tuning is tested with local Spark
        "MOVIELENS_COMPUTE": "emr",
        "MOVIELENS_EMR_CODE_URL": f"s3://{bucket}/code",
        "MOVIELENS_EMR_POLL_SECONDS": "2",
        "AIRFLOW_CONN_AWS_DEFAULT": moto_server.connection_json(),
    })
    env.pop("MOVIELENS_EMR_CLUSTER_ID", None)
    cluster_player = EmrCluster(moto_server, tmp_path)
    cluster_player.start()
    try:
        e2e.migrate(env)
        log_file = tmp_path / "dags_test.log"
        state = local_airflow.dags_test("movielens_daily", DS, env, conf={"ingest": "folder"}, log_file=log_file)
    finally:
        cluster_player.stop()
    log = log_file.read_text()
    assert state == "success", log[-6000:]
    [ran] = cluster_player.ran
    assert ran["exit"] == 0, ran["log"].read_text()[-3000:]
    settings_args = ran["args"][ran["args"].index("--lake-root"):]
    assert settings_args[:4] == ["--lake-root", lake.as_uri(), "--ds", DS]
    # The cluster was created for the run and terminated after it.
    clusters = moto_server.client("emr").list_clusters()["Clusters"]
    ours = [c for c in clusters if c["Name"] == "movielens-daily" and c["Id"] not in cluster_player.earlier]
    assert len(ours) == 1 and all(c["Status"]["State"] in ("TERMINATING", "TERMINATED") for c in ours), ours
    for table in ("bronze/ratings", "silver/ratings", "gold/recommendations", "gold/similar_movies"):
        assert list((lake / table / f"ds={DS}").glob("*.parquet")), table
    summary = json.loads((lake / "reports" / f"ds={DS}" / layout.RUN_SUMMARY).read_text())
    assert 0 < summary["metrics"]["als_explicit"]["rmse"] < 2
    assert summary["compute"]["backend"] == "emr" and summary["compute"]["cluster_id"] == ours[0]["Id"]
    assert summary["compute"]["run_id"] == ran["step"]
    assert len([m for m in mailbox.messages() if "files validated" in m["Subject"]]) == 1
