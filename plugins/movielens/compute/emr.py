"""AWS EMR (on EC2) and EMR Serverless: ``spark_jobs/`` in S3, the daily job through ``spark-submit``.

:func:`upload_jobs` (a ``@task`` in the DAG) puts ``spark_jobs.zip`` (the package, for ``--py-files``)
and the entry script under ``MOVIELENS_EMR_CODE_URL/<code version>/`` and returns what the provider
operators need:

- EMR on EC2: one ``command-runner.jar`` step, ``spark-submit [MOVIELENS_EMR_SPARK_SUBMIT_ARGS]
  --py-files s3://.../spark_jobs.zip s3://.../daily.py <job arguments>``, added by
  ``EmrAddStepsOperator`` to ``MOVIELENS_EMR_CLUSTER_ID``, or to a cluster created for the run
  (``EmrCreateJobFlowOperator`` with ``MOVIELENS_EMR_JOB_FLOW``) and always terminated after it; a
  deferrable ``EmrStepSensor`` waits for the step.
- EMR Serverless: the same entry point, arguments and zip as a ``sparkSubmit`` job driver for
  ``EmrServerlessStartJobOperator`` on application ``MOVIELENS_EMR_SERVERLESS_APP_ID``.

The job's arguments are :func:`movielens.compute.job_arguments` with the lake's Spark URL (``s3a://``).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.emr import EmrServerlessStartJobOperator
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor

from movielens import config
from movielens.compute import job_arguments
from movielens.compute.remote import JobCode, run_token
from movielens.lake import Lake

ZIP_NAME = "spark_jobs.zip"


def code_base_url(settings, compute) -> str:
    """``MOVIELENS_EMR_CODE_URL``, else ``<lake>/_jobs`` for an ``s3://`` lake."""
    if compute.emr_code_url:
        base = compute.emr_code_url
    elif settings.lake_url.startswith("s3://"):
        base = f"{settings.lake_url.rstrip('/')}/_jobs"
    else:
        raise ValueError("MOVIELENS_EMR_CODE_URL (s3://bucket/prefix for spark_jobs/) is needed when the lake is not on S3")
    if not base.startswith("s3://"):
        raise ValueError(f"MOVIELENS_EMR_CODE_URL must be an s3:// URL, got {base!r}")
    return base


def _split_s3(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def spark_submit_args(arguments: list[str], code_url: str, job: str, submit_args: list[str]) -> list[str]:
    """The ``spark-submit`` command line of a job whose code is at ``code_url`` (``s3://.../<version>``)."""
    return ["spark-submit", *submit_args, "--py-files", f"{code_url}/{ZIP_NAME}", f"{code_url}/spark_jobs/{job}",
            *arguments]


def upload_jobs(ds: str, job_spec, job: str = "daily.py") -> dict[str, Any]:
    """Upload the code to S3; returns the EMR step, the serverless job driver and the cluster to use, for
    the run's ``job_spec``."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    settings = config.load()
    compute = config.load_compute()
    lake = Lake.from_settings(settings)
    code = JobCode.from_dir(settings.spark_jobs_dir)
    code_url = f"{code_base_url(settings, compute)}/{code.version}"
    hook = S3Hook(aws_conn_id=compute.aws_conn_id)
    objects = {ZIP_NAME: code.zip_bytes(), f"spark_jobs/{job}": code.files[code.entry(job)]}
    for name, data in objects.items():
        bucket, key = _split_s3(f"{code_url}/{name}")
        hook.load_bytes(data, key=key, bucket_name=bucket, replace=True)
    arguments = job_arguments(lake.spark_root(), ds, job_spec)
    step_args = spark_submit_args(arguments, code_url, job, compute.emr_spark_submit_args)
    step = {
        "Name": f"movielens {job.removesuffix('.py')} {ds}",
        # A failed step must not stop a shared cluster; a cluster created for the run is terminated anyway.
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": step_args},
    }
    job_driver = {
        "sparkSubmit": {
            "entryPoint": f"{code_url}/spark_jobs/{job}",
            "entryPointArguments": arguments,
            "sparkSubmitParameters": f"--py-files {code_url}/{ZIP_NAME}",
        }
    }
    overrides: dict[str, Any] = {}
    if compute.emr_serverless_log_url:
        overrides = {"monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": compute.emr_serverless_log_url}}}
    print(f"uploaded spark_jobs/ (version {code.version}) to {code_url}: {' '.join(step_args)}")
    return {
        "steps": [step],
        "cluster_id": compute.emr_cluster_id,
        "job_flow": compute.emr_job_flow,
        "aws_conn_id": compute.aws_conn_id,
        "job_driver": job_driver,
        "configuration_overrides": overrides,
        "application_id": compute.emr_serverless_application_id,
        "execution_role_arn": compute.emr_serverless_role_arn,
        "code_url": code_url,
    }


def check_serverless(uploaded: dict) -> None:
    missing = [name for name, key in (("MOVIELENS_EMR_SERVERLESS_APP_ID", "application_id"),
                                      ("MOVIELENS_EMR_SERVERLESS_ROLE_ARN", "execution_role_arn")) if not uploaded.get(key)]
    if missing:
        raise ValueError(f"MOVIELENS_COMPUTE=emr-serverless needs {' and '.join(missing)}")



class EmrServerlessDailyJobOperator(EmrServerlessStartJobOperator):
    """``EmrServerlessStartJobOperator`` with the run's idempotency token as its client token (the provider makes
    a random one per operator): a retry of the task gets the job run its first try started, a clear a new one."""

    def execute(self, context, event=None):
        if event is None:  # the first call of a try (not the return from its deferral)
            self.client_request_token = run_token(context, self.task_id)
            self.log.info("EMR Serverless client token %s", self.client_request_token)
        return super().execute(context, event)


class EmrDailyStepSensor(EmrStepSensor):
    """``EmrStepSensor`` (deferrable) whose polling period and time limit come from the configuration."""

    def execute(self, context):
        compute = config.load_compute()
        self.poke_interval = compute.emr_poll_s
        self.max_attempts = max(1, compute.emr_timeout_s // max(1, compute.emr_poll_s))
        return super().execute(context)
