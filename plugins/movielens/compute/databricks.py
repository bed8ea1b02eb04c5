"""Databricks: ``spark_jobs/`` as workspace files, the daily job as a one-time run (Jobs API 2.2).

1. :func:`upload_jobs` (a ``@task`` in the DAG) imports every file of ``spark_jobs/`` into the workspace
   under ``MOVIELENS_DATABRICKS_WORKSPACE_DIR/<code version>/spark_jobs/`` (``POST
   /api/2.0/workspace/mkdirs`` and ``/api/2.0/workspace/import``, format ``AUTO``, overwrite), and
   returns the entry script's workspace path. The entry script puts its folder's parent on
   ``sys.path``, so ``import spark_jobs.common`` finds the imported package next to it.
2. :class:`DatabricksSparkJobOperator` (``DatabricksSubmitRunOperator``, deferrable) submits one
   ``spark_python_task`` (``source: WORKSPACE``) with the arguments of
   :func:`movielens.compute.job_arguments` and the lake's Spark URL, on ``existing_cluster_id``
   (``MOVIELENS_DATABRICKS_CLUSTER_ID``) or a job cluster (``MOVIELENS_DATABRICKS_NEW_CLUSTER``), with an
   ``idempotency_token`` of DAG, task, ``ds`` and the run's clear count: a retry gets the same run back instead
   of a second one; a clear of the run submits a new one.
   The run page URL is logged (and pushed to XCom as ``run_page_url``); a failed run fails the task
   with the remote error and the run page URL; killing the task cancels the run (``runs/cancel``).
"""

from __future__ import annotations

import base64
from typing import Any

from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

from movielens import config
from movielens.compute import job_arguments
from movielens.compute.remote import JobCode, run_token
from movielens.lake import Lake

MKDIRS = ("POST", "2.0/workspace/mkdirs")
IMPORT = ("POST", "2.0/workspace/import")
TASK_KEY = "movielens_spark"


def upload_jobs(job: str = "daily.py") -> str:
    """Import ``spark_jobs/`` into the workspace; returns the entry script's workspace path."""
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

    settings = config.load()
    compute = config.load_compute()
    code = JobCode.from_dir(settings.spark_jobs_dir)
    base = f"{compute.databricks_workspace_dir}/{code.version}"
    hook = DatabricksHook(compute.databricks_conn_id)
    folders = sorted({f"{base}/{name.rsplit('/', 1)[0]}" for name in code.files})
    for folder in folders:
        hook._do_api_call(MKDIRS, {"path": folder})
    for name, data in sorted(code.files.items()):
        hook._do_api_call(
            IMPORT,
            {"path": f"{base}/{name}", "format": "AUTO", "content": base64.b64encode(data).decode(), "overwrite": True},
        )
    entry = f"{base}/{code.entry(job)}"
    print(f"imported {len(code.files)} files of spark_jobs/ (version {code.version}) into {base}; entry {entry}")
    return entry


class DatabricksSparkJobOperator(DatabricksSubmitRunOperator):
    """Runs ``spark_jobs/<job>`` (already in the workspace at ``python_file``) as a one-time run, with the
    run's ``job_spec``. Connection, cluster and polling come from the configuration when the task runs.
    """

    template_fields = (*DatabricksSubmitRunOperator.template_fields, "python_file", "job_spec")

    def __init__(self, *, python_file: Any, job_spec: Any, job: str = "daily.py", **kwargs: Any):
        kwargs.setdefault("deferrable", True)
        kwargs.setdefault("run_name", f"movielens-{job.removesuffix('.py')}")
        super().__init__(**kwargs)
        self.python_file = python_file
        self.job_spec = job_spec
        self.job = job

    def execute(self, context):
        ds = context["ds"]
        compute = config.load_compute()
        lake = Lake.from_settings(config.load())
        task: dict[str, Any] = {
            "task_key": TASK_KEY,
            "spark_python_task": {
                "python_file": self.python_file,
                "source": "WORKSPACE",
                "parameters": job_arguments(lake.spark_root(), ds, self.job_spec),
            },
        }
        if compute.databricks_cluster_id:
            task["existing_cluster_id"] = compute.databricks_cluster_id
        else:
            task["new_cluster"] = compute.databricks_new_cluster
        self.tasks = [task]
        self.timeout_seconds = compute.databricks_timeout_s
        self.databricks_conn_id = compute.databricks_conn_id
        self.polling_period_seconds = compute.databricks_poll_s
        self.idempotency_token = run_token(context, self.task_id)
        self.__dict__.pop("_hook", None)  # built from the connection id above
        self.log.info(
            "submitting %s on %s (idempotency token %s): %s",
            self.python_file,
            compute.databricks_cluster_id or "a new job cluster",
            self.idempotency_token,
            " ".join(task["spark_python_task"]["parameters"]),
        )
        return super().execute(context)

    def execute_complete(self, context, event: dict):
        from airflow.sdk.exceptions import AirflowFailException
        from airflow.providers.databricks.hooks.databricks import RunState

        state = RunState.from_json(event["run_state"])
        url = event.get("run_page_url")
        if state.is_successful:
            self.log.info("Databricks run %s succeeded: %s", event.get("run_id"), url)
            return {"run_id": event.get("run_id"), "run_page_url": url}
        errors = "; ".join(f"{e.get('task_key')}: {e.get('error')}" for e in event.get("errors") or [])
        # Not retried: with the same idempotency token a retry would get this failed run back (a clear of the
        # run submits a new one).
        raise AirflowFailException(
            f"Databricks run {event.get('run_id')} ended {state.life_cycle_state}/{state.result_state}: "
            f"{errors or state.state_message} (run page: {url})"
        )
