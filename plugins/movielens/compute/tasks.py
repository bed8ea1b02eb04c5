"""The Spark job of a run as one TaskGroup, on whichever backend the run uses.

::

    plan -> choose_backend -> local ---------------------------------------------------------+
                           -> databricks_upload -> databricks_run ---------------------------+
                           -> emr_upload -> emr_cluster -> emr_create_cluster -> emr_add_steps --+
                                                        -> emr_add_steps_existing ---------------+
                                 -> emr_watch_step (-> emr_terminate_cluster, teardown) ---------+
                           -> emr_serverless_upload -> emr_serverless_run -------------------+-> result

- **plan**: the backend (the run's ``compute`` param, else ``MOVIELENS_COMPUTE``) and the job spec (the
  run's settings and tuning decision, :func:`movielens.compute.job_spec`), made once for every backend.
- **choose_backend** follows one backend; the others are skipped. Provider operators do the external work
  (``SparkSubmitOperator``, ``DatabricksSubmitRunOperator``, the EMR operators); ``@task`` only glues.
- On EMR the configured cluster (``MOVIELENS_EMR_CLUSTER_ID``) is used, or one is created for the run and
  always terminated after it (a teardown).
- **result**: one XCom, ``{"backend", "run_id", "url", ...}`` of the backend that ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.operators.emr import (
    EmrAddStepsOperator,
    EmrCreateJobFlowOperator,
    EmrTerminateJobFlowOperator,
)
from airflow.sdk import TaskGroup, task

from movielens.compute.databricks import DatabricksSparkJobOperator
from movielens.compute.emr import EmrDailyStepSensor, EmrServerlessDailyJobOperator
from movielens import lineage
from movielens.compute.local import LocalSparkJobOperator
from movielens.dag_defaults import timeout

# Tasks whose AWS call takes no idempotency token (RunJobFlow, AddJobFlowSteps): never retried.
NOT_RETRIED = ("emr_create_cluster", "emr_add_steps", "emr_add_steps_existing")
# The first task of each backend's branch.
ENTRY_TASKS = {"local": "local", "databricks": "databricks_upload", "emr": "emr_upload",
               "emr-serverless": "emr_serverless_upload"}


@dataclass(frozen=True)
class SparkJobTasks:
    group: TaskGroup
    result: Any  # the XComArg of the result task


def spark_job(job: str = "daily.py", group_id: str = "spark") -> SparkJobTasks:
    """The TaskGroup that runs ``spark_jobs/<job>`` for the run's date on the run's backend."""

    def task_id(name: str) -> str:
        return f"{group_id}.{name}"

    def pull(name: str, key: str = "return_value") -> str:
        return f"ti.xcom_pull(task_ids='{task_id(name)}', key='{key}')"

    with TaskGroup(group_id, tooltip=f"spark_jobs/{job} on the run's backend") as group:

        @task(multiple_outputs=True)
        def plan(ds=None, params=None) -> dict:
            from movielens.compute import backend_of, job_spec

            backend = backend_of(params)
            spec = job_spec(params, ds, job)
            print(f"Spark runs on: {backend}; tuning: {spec.tuning.action}: {spec.tuning.reason}")
            return {"backend": backend, "spec": spec.to_dict()}

        @task.branch
        def choose_backend(backend: str) -> str:
            return task_id(ENTRY_TASKS[backend])

        @task
        def databricks_upload() -> str:
            from movielens.compute import databricks

            return databricks.upload_jobs(job)

        @task(multiple_outputs=True)
        def emr_upload(spec: dict, ds=None) -> dict:
            from movielens.compute import emr

            return emr.upload_jobs(ds, spec, job)

        @task.branch
        def emr_cluster(cluster_id: str | None) -> str:
            print(f"EMR cluster: {cluster_id or 'a new cluster for this run'}")
            return task_id("emr_add_steps_existing" if cluster_id else "emr_create_cluster")

        @task(multiple_outputs=True)
        def emr_serverless_upload(spec: dict, ds=None) -> dict:
            from movielens.compute import emr

            uploaded = emr.upload_jobs(ds, spec, job)
            emr.check_serverless(uploaded)
            return uploaded

        # No inlet: the validated files' Asset is announced through the routing alias, and Airflow never retires
        # an Asset an alias announced, so after a change of lake a static inlet of it could never be active.
        @task(trigger_rule="none_failed_min_one_success", outlets=[lineage.asset(p) for p in lineage.SPARK_JOB_PRODUCTS])
        def result(backend: str, ds=None, ti=None, outlet_events=None) -> dict:
            """Where the job ran: the backend, its run's id and page (when the backend has one). Whichever
            backend ran it, the job's lineage and its products' asset events of the date are told here."""
            lineage.spark_job_done(outlet_events, ds, backend)
            return where_it_ran(backend, ti)

        def where_it_ran(backend: str, ti) -> dict:
            if backend == "databricks":
                return {"backend": backend, "run_id": ti.xcom_pull(task_ids=task_id("databricks_run"), key="run_id"),
                        "url": ti.xcom_pull(task_ids=task_id("databricks_run"), key="run_page_url")}
            if backend == "emr":
                added = [task_id("emr_add_steps"), task_id("emr_add_steps_existing")]
                steps = next(filter(None, ti.xcom_pull(task_ids=added)), [None])
                cluster_id = next(filter(None, ti.xcom_pull(task_ids=added, key="job_flow_id")), None)
                return {"backend": backend, "run_id": steps[0], "url": None, "cluster_id": cluster_id}
            if backend == "emr-serverless":
                return {"backend": backend, "run_id": ti.xcom_pull(task_ids=task_id("emr_serverless_run")), "url": None}
            return {"backend": backend, "run_id": None, "url": None}

        planned = plan()
        branch = choose_backend(planned["backend"])

        local = LocalSparkJobOperator(task_id="local", job=job, job_spec=planned["spec"], execution_timeout=timeout("spark"))

        code = databricks_upload()
        databricks = DatabricksSparkJobOperator(task_id="databricks_run", job=job, python_file=code,
                                                job_spec=planned["spec"])

        emr_code = emr_upload(planned["spec"])
        cluster = emr_cluster(emr_code["cluster_id"])
        # RunJobFlow and AddJobFlowSteps take no client token: a retry after a lost answer could start a second
        # cluster or add the step twice, so these calls are never retried (a failure fails the run; clear it).
        create = EmrCreateJobFlowOperator(task_id="emr_create_cluster", job_flow_overrides=emr_code["job_flow"],
                                          aws_conn_id=emr_code["aws_conn_id"], emr_conn_id="emr_default",
                                          retries=0)
        # Steps on the cluster created for the run (its teardown always terminates it) or on the configured one.
        add_steps = EmrAddStepsOperator(task_id="emr_add_steps", job_flow_id=create.output, steps=emr_code["steps"],
                                        aws_conn_id=emr_code["aws_conn_id"], retries=0)
        add_steps_existing = EmrAddStepsOperator(task_id="emr_add_steps_existing", job_flow_id=emr_code["cluster_id"],
                                                 steps=emr_code["steps"], aws_conn_id=emr_code["aws_conn_id"], retries=0)
        added = "(" + pull("emr_add_steps", "{key}") + " or " + pull("emr_add_steps_existing", "{key}") + ")"
        watch = EmrDailyStepSensor(task_id="emr_watch_step", job_flow_id="{{ " + added.format(key="job_flow_id") + " }}",
                                   step_id="{{ " + added.format(key="return_value") + "[0] }}",
                                   aws_conn_id=emr_code["aws_conn_id"], deferrable=True,
                                   trigger_rule="none_failed_min_one_success")
        terminate = EmrTerminateJobFlowOperator(task_id="emr_terminate_cluster", job_flow_id=create.output,
                                                aws_conn_id=emr_code["aws_conn_id"])
        cluster >> [create, add_steps_existing]
        [add_steps, add_steps_existing] >> watch >> terminate.as_teardown(setups=create)

        serverless_code = emr_serverless_upload(planned["spec"])
        serverless = EmrServerlessDailyJobOperator(
            task_id="emr_serverless_run",
            application_id=serverless_code["application_id"],
            execution_role_arn=serverless_code["execution_role_arn"],
            job_driver=serverless_code["job_driver"],
            configuration_overrides=serverless_code["configuration_overrides"],
            aws_conn_id=serverless_code["aws_conn_id"],
            name="movielens-" + job.removesuffix(".py") + "-{{ ds }}",
            deferrable=True,
        )

        branch >> [local, code, emr_code, serverless_code]
        done = result(planned["backend"])
        [local, databricks, watch, serverless] >> done
    return SparkJobTasks(group, done)
