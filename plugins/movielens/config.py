"""The platform's settings, read from environment variables (``MOVIELENS_*``).

Defaults make the embedded default (``file://`` lake inside the checkout, local Spark, local SMTP) work
with no set-up. The settings of a run (models, protocol, tuning, outputs) are defined in the run spec
(``spark_jobs.common.spec``) and read here from their ``MOVIELENS_<NAME>`` variables; the rest (lake,
landing, compute, email, serving) are defined here. DAG files read :func:`load` inside tasks, never at
parse time, so changing a variable needs no redeploy.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_jobs.common import spec as run_spec
from spark_jobs.common.layout import FILE_KINDS, check_ds

# The checkout: plugins/movielens/config.py -> repo root.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = PROJECT_ROOT / "var"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_number(name: str, default: float, kind: type = float) -> float:
    raw = _env(name, str(default))
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None


def _env_int(name: str, default: int) -> int:
    return int(_env_number(name, default, int))


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in _env(name, default).split(",") if item.strip()]


INGEST_MODES = ("none", "folder", "download", "synthetic", "auto", "replay")
# Where the Spark job runs (MOVIELENS_COMPUTE, or the `compute` param of a run).
COMPUTE_BACKENDS = ("local", "databricks", "emr", "emr-serverless")
SPARK_LOG_LEVELS = ("ALL", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")  # what spark.log.level takes


@dataclass(frozen=True)
class Settings:
    """A snapshot of the configuration; build one with :func:`load`."""

    lake_url: str
    lake_conn_id: str | None
    # After a landed file is copied and verified: "move" clears landing, "keep" leaves it.
    landing_policy: str
    # Waiting for the day's files: kinds that must be there, and how long to wait.
    wait_for_kinds: list[str]
    wait_timeout_seconds: int
    wait_poke_seconds: int
    # Landing: where the `land_files` task takes data from when the run asks it to.
    ingest: str
    movielens_dir: str | None
    release: str
    synthetic_size: str
    cache_dir: Path
    # Replay (ingest mode "replay"): the release as a daily feed over REPLAY_DAYS dates from REPLAY_START.
    replay_start: str | None
    replay_days: int
    replay_new_share: float
    # Compute.
    compute: str
    spark_conn_id: str
    spark_jobs_dir: Path
    spark_log_level: str  # local Spark's log4j level (spark.log.level) in the task log
    # Local Spark with a remote (s3://, abfs://) lake: inputs are staged here, outputs uploaded after.
    staging_dir: Path
    # The run's model, protocol, tuning and output settings: every setting of the run spec, by name.
    spec: dict[str, Any]
    # Notifications.
    smtp_conn_id: str
    email_from: str
    email_to: list[str] = field(default_factory=list)
    alert_email_to: list[str] = field(default_factory=list)
    demo_user_ids: list[int] = field(default_factory=list)
    airflow_base_url: str = "http://localhost:8080"
    # Serving: the postgres connection each run's outputs are published to (none: not published).
    serving_conn_id: str | None = None

    def validate(self) -> "Settings":
        if self.ingest not in INGEST_MODES:
            raise ValueError(f"MOVIELENS_INGEST must be one of {INGEST_MODES}, got {self.ingest!r}")
        if self.landing_policy not in ("move", "keep"):
            raise ValueError(f"MOVIELENS_LANDING_POLICY must be 'move' or 'keep', got {self.landing_policy!r}")
        if self.compute not in COMPUTE_BACKENDS:
            raise ValueError(f"MOVIELENS_COMPUTE must be one of {COMPUTE_BACKENDS}, got {self.compute!r}")
        if self.spark_log_level not in SPARK_LOG_LEVELS:
            raise ValueError(
                f"MOVIELENS_SPARK_LOG_LEVEL must be one of {SPARK_LOG_LEVELS}, got {self.spark_log_level!r}")
        if self.replay_start is not None:
            try:
                check_ds(self.replay_start)
            except ValueError as err:
                raise ValueError(f"MOVIELENS_REPLAY_START: {err}") from None
        unknown = sorted(set(self.wait_for_kinds) - set(FILE_KINDS))
        if unknown:
            raise ValueError(f"MOVIELENS_WAIT_FOR_KINDS: unknown kinds {unknown}; choose from {FILE_KINDS}")
        return self


def default_lake_url() -> str:
    return (VAR_DIR / "lake").as_uri()


def lake_url() -> str:
    """``MOVIELENS_LAKE_URL``, else the embedded default's ``var/lake``."""
    return _env("MOVIELENS_LAKE_URL", default_lake_url())


# The lake's connection when MOVIELENS_LAKE_CONN_ID is not set: the providers' default connections.
DEFAULT_LAKE_CONN_IDS = {"s3": "aws_default", "s3a": "aws_default", "abfs": "wasb_default", "abfss": "wasb_default"}


def default_lake_conn_id(lake_url: str) -> str | None:
    """``aws_default`` for ``s3://``, ``wasb_default`` for ``abfs://``; none for ``file://``."""
    return DEFAULT_LAKE_CONN_IDS.get(lake_url.split("://", 1)[0].lower())


def load(run_params: Mapping[str, Any] | None = None) -> Settings:
    """Read the settings from the environment (each call re-reads it).

    ``run_params``: a run's params (the trigger form); the run settings they set override the
    environment for that run (``run_spec.form_overrides``), the others follow it.
    """
    settings = _load_env()
    overrides = run_spec.form_overrides(run_params)
    if not overrides:
        return settings
    return dataclasses.replace(settings, spec=run_spec.resolve({**settings.spec, **overrides}))


def _load_env() -> Settings:
    url = lake_url()
    return Settings(
        lake_url=url,
        lake_conn_id=os.environ.get("MOVIELENS_LAKE_CONN_ID") or default_lake_conn_id(url),
        landing_policy=_env("MOVIELENS_LANDING_POLICY", "move"),
        wait_for_kinds=_env_list("MOVIELENS_WAIT_FOR_KINDS", "ratings"),
        wait_timeout_seconds=_env_int("MOVIELENS_WAIT_TIMEOUT_SECONDS", 6 * 3600),
        wait_poke_seconds=_env_int("MOVIELENS_WAIT_POKE_SECONDS", 60),
        ingest=_env("MOVIELENS_INGEST", "none"),
        movielens_dir=os.environ.get("MOVIELENS_DIR") or None,
        release=_env("MOVIELENS_RELEASE", "ml-latest-small"),
        synthetic_size=_env("MOVIELENS_SYNTHETIC_SIZE", "small"),
        cache_dir=Path(_env("MOVIELENS_CACHE_DIR", str(VAR_DIR / "cache"))),
        replay_start=os.environ.get("MOVIELENS_REPLAY_START", "").strip() or None,
        replay_days=_env_int("MOVIELENS_REPLAY_DAYS", 7),
        replay_new_share=_env_number("MOVIELENS_REPLAY_NEW_SHARE", 0.1),
        compute=_env("MOVIELENS_COMPUTE", "local"),
        spark_conn_id=_env("MOVIELENS_SPARK_CONN_ID", "spark_default"),
        spark_jobs_dir=Path(_env("MOVIELENS_SPARK_JOBS_DIR", str(PROJECT_ROOT / "spark_jobs"))),
        spark_log_level=_env("MOVIELENS_SPARK_LOG_LEVEL", "WARN").upper(),
        staging_dir=Path(_env("MOVIELENS_STAGING_DIR", str(VAR_DIR / "staging"))),
        spec=run_spec.from_environ(os.environ),
        smtp_conn_id=_env("MOVIELENS_SMTP_CONN_ID", "smtp_default"),
        email_from=_env("MOVIELENS_EMAIL_FROM", "movielens-platform@localhost"),
        email_to=_env_list("MOVIELENS_EMAIL_TO", "data-team@localhost"),
        alert_email_to=_env_list("MOVIELENS_ALERT_EMAIL_TO", _env("MOVIELENS_EMAIL_TO", "data-team@localhost")),
        demo_user_ids=[int(u) for u in _env_list("MOVIELENS_DEMO_USERS", "1")],
        airflow_base_url=_env("MOVIELENS_AIRFLOW_BASE_URL", "http://localhost:8080"),
        serving_conn_id=os.environ.get("MOVIELENS_SERVING_CONN_ID", "").strip() or None,
    ).validate()


def _env_json(name: str, default: dict) -> dict:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return dict(default)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


# A job cluster for one run of the daily job on Databricks (Jobs API `new_cluster`). AWS node type and
# a Spark 4 runtime; on Azure use e.g. "Standard_D4ds_v5", on GCP "n2-standard-4".
DEFAULT_DATABRICKS_NEW_CLUSTER = {
    "spark_version": "17.3.x-scala2.13",
    "node_type_id": "i3.xlarge",
    "num_workers": 2,
    "spark_conf": {"spark.sql.session.timeZone": "UTC"},
}

# The EMR cluster created for a run when MOVIELENS_EMR_CLUSTER_ID is empty (RunJobFlow request; merged
# over the `emr_default` connection's extra by EmrCreateJobFlowOperator). Terminated after the run.
DEFAULT_EMR_JOB_FLOW = {
    "Name": "movielens-daily",
    "ReleaseLabel": "emr-7.12.0",
    "Applications": [{"Name": "Spark"}],
    "Instances": {
        "InstanceGroups": [
            {"Name": "primary", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
            {"Name": "core", "InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 2},
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    },
    "JobFlowRole": "EMR_EC2_DefaultRole",
    "ServiceRole": "EMR_DefaultRole",
    "VisibleToAllUsers": True,
}


@dataclass(frozen=True)
class ComputeSettings:
    """Settings of the cluster backends (MOVIELENS_COMPUTE = databricks, emr, emr-serverless)."""

    # Databricks: connection, where spark_jobs/ goes in the workspace, which cluster runs the job.
    databricks_conn_id: str
    databricks_workspace_dir: str
    databricks_cluster_id: str | None
    databricks_new_cluster: dict
    databricks_timeout_s: int
    databricks_poll_s: int
    # AWS: connections, where spark_jobs/ goes in S3, the cluster or the serverless application.
    aws_conn_id: str
    emr_code_url: str | None
    emr_cluster_id: str | None
    emr_job_flow: dict
    emr_poll_s: int
    emr_timeout_s: int
    emr_spark_submit_args: list[str]
    emr_serverless_application_id: str | None
    emr_serverless_role_arn: str | None
    emr_serverless_log_url: str | None


def load_compute() -> ComputeSettings:
    """Read the cluster backends' settings from the environment (each call re-reads it)."""
    return ComputeSettings(
        databricks_conn_id=_env("MOVIELENS_DATABRICKS_CONN_ID", "databricks_default"),
        databricks_workspace_dir=_env("MOVIELENS_DATABRICKS_WORKSPACE_DIR", "/Shared/movielens").rstrip("/"),
        databricks_cluster_id=os.environ.get("MOVIELENS_DATABRICKS_CLUSTER_ID", "").strip() or None,
        databricks_new_cluster=_env_json("MOVIELENS_DATABRICKS_NEW_CLUSTER", DEFAULT_DATABRICKS_NEW_CLUSTER),
        databricks_timeout_s=_env_int("MOVIELENS_DATABRICKS_TIMEOUT", 4 * 3600),
        databricks_poll_s=_env_int("MOVIELENS_DATABRICKS_POLL_SECONDS", 30),
        aws_conn_id=_env("MOVIELENS_AWS_CONN_ID", "aws_default"),
        emr_code_url=os.environ.get("MOVIELENS_EMR_CODE_URL", "").strip().rstrip("/") or None,
        emr_cluster_id=os.environ.get("MOVIELENS_EMR_CLUSTER_ID", "").strip() or None,
        emr_job_flow=_env_json("MOVIELENS_EMR_JOB_FLOW", DEFAULT_EMR_JOB_FLOW),
        emr_poll_s=_env_int("MOVIELENS_EMR_POLL_SECONDS", 30),
        emr_timeout_s=_env_int("MOVIELENS_EMR_TIMEOUT", 4 * 3600),
        emr_spark_submit_args=_env_list("MOVIELENS_EMR_SPARK_SUBMIT_ARGS", "--deploy-mode,cluster"),
        emr_serverless_application_id=os.environ.get("MOVIELENS_EMR_SERVERLESS_APP_ID", "").strip() or None,
        emr_serverless_role_arn=os.environ.get("MOVIELENS_EMR_SERVERLESS_ROLE_ARN", "").strip() or None,
        emr_serverless_log_url=os.environ.get("MOVIELENS_EMR_SERVERLESS_LOG_URL", "").strip().rstrip("/") or None,
    )
