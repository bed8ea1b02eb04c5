"""Local Spark: ``SparkSubmitOperator`` with the ``spark`` connection (host ``local[*]`` by default).

With a ``file://`` lake the job reads and writes the lake directly. With a remote lake (``s3://``,
``abfs://``) local Spark has no connectors, so the task stages through local disk
(:mod:`movielens.compute.staging`): the partitions the job reads are copied to a local folder, the job
runs on that folder, and the partitions it wrote for ``ds`` replace the lake's.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from movielens import config
from movielens.compute import job_arguments
from movielens.compute.staging import LocalStaging
from movielens.lake import Lake


class LocalSparkJobOperator(SparkSubmitOperator):
    """Runs ``spark_jobs/<job>`` with spark-submit and the run's ``job_spec`` (a dict, usually the XCom of
    the run's plan); the platform's settings are read when the task runs, not at parse."""

    template_fields = (*SparkSubmitOperator.template_fields, "job_spec")

    def __init__(self, *, job_spec: Any, job: str = "daily.py", **kwargs: Any):
        self.job = job
        self.job_spec = job_spec
        kwargs.setdefault("name", f"movielens-{job.removesuffix('.py')}")
        super().__init__(application=job, conn_id=kwargs.pop("conn_id", "spark_default"), **kwargs)

    def execute(self, context) -> None:
        ds = context["ds"]
        settings = config.load()
        lake = Lake.from_settings(settings)
        if lake.is_local:
            self._submit(context, settings, lake.spark_root(), ds)
            return
        with LocalStaging(lake, self.job, ds, settings.staging_dir) as stage:
            self.log.info("lake %s is remote: staging %s through %s", lake.url, self.job, stage.root)
            stage.download()
            self._submit(context, settings, stage.spark_root, ds)
            stage.upload()

    def on_kill(self) -> None:
        """Stop spark-submit and every process it started: killed alone, its JVM leaves the job's Python driver
        running (a PySpark job's driver is the JVM's child) until its next call into Spark."""
        import contextlib

        import psutil

        submitted = getattr(self._hook, "_submit_sp", None) if self._hook else None
        children = []
        if submitted is not None and submitted.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                children = psutil.Process(submitted.pid).children(recursive=True)
        super().on_kill()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        gone, alive = psutil.wait_procs(children, timeout=10)
        if alive:
            self.log.warning("Spark processes still running after the kill: %s", [p.pid for p in alive])

    def _submit(self, context, settings, lake_root: str, ds: str) -> None:
        self.application = str(settings.spark_jobs_dir / self.job)
        self.application_args = job_arguments(lake_root, ds, self.job_spec)
        self._conn_id = settings.spark_conn_id
        self.conf = {
            **(self.conf or {}),
            "spark.driver.memory": os.environ.get("MOVIELENS_SPARK_DRIVER_MEMORY", "4g"),
            "spark.ui.showConsoleProgress": "false",
            # At INFO, Spark's lines (11,000 for a run of the tiny data) bury the job's own output in the task log.
            "spark.log.level": settings.spark_log_level,
        }
        # Spark's Python workers must use this environment's Python (it has numpy and pandas).
        self.env_vars = {
            **(self.env_vars or {}),
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
            "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
        }
        self._hook = None  # built from the attributes above
        self.log.info("spark job %s %s", self.application, " ".join(self.application_args))
        super().execute(context)
