"""Every setting of the platform, in one place.

Settings come from environment variables (``MOVIELENS_*``) with defaults that make the embedded
default (``file://`` lake inside the checkout, local Spark, local SMTP) work with no set-up. DAG files
read :func:`load` inside tasks, never at parse time, so changing a variable needs no redeploy.
The README's configuration table lists the same variables; keep the two in step.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_jobs.common.layout import FILE_KINDS

# The checkout: plugins/movielens/config.py -> repo root.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = PROJECT_ROOT / "var"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "true" if default else "false").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in _env(name, default).split(",") if item.strip()]


REFIT_CHOICES = ("top-n", "all", "none")
INGEST_MODES = ("none", "folder", "download", "synthetic", "auto")
# Where the Spark job runs (MOVIELENS_COMPUTE, or the `compute` param of a run).
COMPUTE_BACKENDS = ("local", "databricks", "emr", "emr-serverless")


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
    # Compute.
    compute: str
    spark_conn_id: str
    spark_jobs_dir: Path
    # Local Spark with a remote (s3://, abfs://) lake: inputs are staged here, outputs uploaded after.
    staging_dir: Path
    # Models and evaluation.
    als_rank: int
    als_reg_param: float
    als_max_iter: int
    # Tune both models on a validation split (else the values here are used as they are).
    tune: bool
    # With tuning on: tune when no run of the last N - 1 days tuned with the same settings, else reuse the
    # parameters that run chose (movielens.tuning). 1: tune in every run.
    tune_every_days: int
    tune_max_users: int
    ease_reg: float
    ials_weight: float
    top_n_max_items: int
    # After evaluation, refit on every rating: "top-n" (the product's model), "all" or "none".
    refit: str
    liked_threshold: float
    test_fraction: float
    seed: int
    top_k: int
    # Notifications.
    smtp_conn_id: str
    email_from: str
    email_to: list[str] = field(default_factory=list)
    alert_email_to: list[str] = field(default_factory=list)
    demo_user_ids: list[int] = field(default_factory=list)
    airflow_base_url: str = "http://localhost:8080"
    # Serving: the postgres connection each run's outputs are published to (none: not published).
    serving_conn_id: str | None = None
    # Never from the environment: the parameters an earlier run's tuning chose, which this run's Spark job
    # fits with instead of tuning (``--reuse-params``); set by ``movielens.tuning.settings_for_run``.
    reuse_params: Mapping[str, Any] | None = None

    def validate(self) -> "Settings":
        if self.ingest not in INGEST_MODES:
            raise ValueError(f"MOVIELENS_INGEST must be one of {INGEST_MODES}, got {self.ingest!r}")
        if self.landing_policy not in ("move", "keep"):
            raise ValueError(f"MOVIELENS_LANDING_POLICY must be 'move' or 'keep', got {self.landing_policy!r}")
        if self.compute not in COMPUTE_BACKENDS:
            raise ValueError(f"MOVIELENS_COMPUTE must be one of {COMPUTE_BACKENDS}, got {self.compute!r}")
        unknown = sorted(set(self.wait_for_kinds) - set(FILE_KINDS))
        if unknown:
            raise ValueError(f"MOVIELENS_WAIT_FOR_KINDS: unknown kinds {unknown}; choose from {FILE_KINDS}")
        if self.refit not in REFIT_CHOICES:
            raise ValueError(f"MOVIELENS_REFIT must be one of {REFIT_CHOICES}, got {self.refit!r}")
        if self.tune_every_days < 1:
            raise ValueError(f"MOVIELENS_TUNE_EVERY_DAYS must be at least 1 (1: tune in every run), got {self.tune_every_days}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"MOVIELENS_TEST_FRACTION must be between 0 and 1, got {self.test_fraction}")
        return self


def default_lake_url() -> str:
    return (VAR_DIR / "lake").as_uri()


# The lake's connection when MOVIELENS_LAKE_CONN_ID is not set: the providers' default connections.
DEFAULT_LAKE_CONN_IDS = {"s3": "aws_default", "s3a": "aws_default", "abfs": "wasb_default", "abfss": "wasb_default"}


def default_lake_conn_id(lake_url: str) -> str | None:
    """``aws_default`` for ``s3://``, ``wasb_default`` for ``abfs://``; none for ``file://``."""
    return DEFAULT_LAKE_CONN_IDS.get(lake_url.split("://", 1)[0].lower())


def load(run_params: Mapping[str, Any] | None = None) -> Settings:
    """Read the settings from the environment (each call re-reads it).

    ``run_params``: a run's params (the trigger form); the model settings it sets override the
    environment for that run (see :data:`RUN_SETTINGS`), the others follow it.
    """
    settings = _load_env()
    overrides = run_overrides(run_params)
    return dataclasses.replace(settings, **overrides).validate() if overrides else settings


def _load_env() -> Settings:
    lake_url = _env("MOVIELENS_LAKE_URL", default_lake_url())
    return Settings(
        lake_url=lake_url,
        lake_conn_id=os.environ.get("MOVIELENS_LAKE_CONN_ID") or default_lake_conn_id(lake_url),
        landing_policy=_env("MOVIELENS_LANDING_POLICY", "move"),
        wait_for_kinds=_env_list("MOVIELENS_WAIT_FOR_KINDS", "ratings"),
        wait_timeout_seconds=_env_int("MOVIELENS_WAIT_TIMEOUT_SECONDS", 6 * 3600),
        wait_poke_seconds=_env_int("MOVIELENS_WAIT_POKE_SECONDS", 60),
        ingest=_env("MOVIELENS_INGEST", "none"),
        movielens_dir=os.environ.get("MOVIELENS_DIR") or None,
        release=_env("MOVIELENS_RELEASE", "ml-latest-small"),
        synthetic_size=_env("MOVIELENS_SYNTHETIC_SIZE", "small"),
        cache_dir=Path(_env("MOVIELENS_CACHE_DIR", str(VAR_DIR / "cache"))),
        compute=_env("MOVIELENS_COMPUTE", "local"),
        spark_conn_id=_env("MOVIELENS_SPARK_CONN_ID", "spark_default"),
        spark_jobs_dir=Path(_env("MOVIELENS_SPARK_JOBS_DIR", str(PROJECT_ROOT / "spark_jobs"))),
        staging_dir=Path(_env("MOVIELENS_STAGING_DIR", str(VAR_DIR / "staging"))),
        als_rank=_env_int("MOVIELENS_ALS_RANK", 20),
        als_reg_param=_env_float("MOVIELENS_ALS_REG_PARAM", 0.15),
        als_max_iter=_env_int("MOVIELENS_ALS_MAX_ITER", 10),
        tune=_env_bool("MOVIELENS_TUNE", True),
        tune_every_days=_env_int("MOVIELENS_TUNE_EVERY_DAYS", 7),
        tune_max_users=_env_int("MOVIELENS_TUNE_MAX_USERS", 10_000),
        ease_reg=_env_float("MOVIELENS_EASE_REG", 400.0),
        ials_weight=_env_float("MOVIELENS_IALS_WEIGHT", 1.0),
        top_n_max_items=_env_int("MOVIELENS_TOP_N_MAX_ITEMS", 6000),
        refit=_env("MOVIELENS_REFIT", "top-n"),
        liked_threshold=_env_float("MOVIELENS_LIKED_THRESHOLD", 4.0),
        test_fraction=_env_float("MOVIELENS_TEST_FRACTION", 0.25),
        seed=_env_int("MOVIELENS_SEED", 42),
        top_k=_env_int("MOVIELENS_TOP_K", 10),
        smtp_conn_id=_env("MOVIELENS_SMTP_CONN_ID", "smtp_default"),
        email_from=_env("MOVIELENS_EMAIL_FROM", "movielens-platform@localhost"),
        email_to=_env_list("MOVIELENS_EMAIL_TO", "data-team@localhost"),
        alert_email_to=_env_list("MOVIELENS_ALERT_EMAIL_TO", _env("MOVIELENS_EMAIL_TO", "data-team@localhost")),
        demo_user_ids=[int(u) for u in _env_list("MOVIELENS_DEMO_USERS", "1")],
        airflow_base_url=_env("MOVIELENS_AIRFLOW_BASE_URL", "http://localhost:8080"),
        serving_conn_id=os.environ.get("MOVIELENS_SERVING_CONN_ID", "").strip() or None,
    ).validate()


@dataclass(frozen=True)
class RunSetting:
    """A model setting one run can override from the trigger form (param name = Settings field).

    The param's default (``None``, or ``"default"`` for a choice) means "follow the environment", so
    scheduled runs and runs that leave the field alone use ``env``.
    """

    name: str
    env: str
    type: str  # JSON schema type of a value: "integer", "number" or "string" (a choice)
    title: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    # A choice: the form's values -> the setting's values.
    choices: Mapping[str, Any] = field(default_factory=dict)
    # A choice's value -> other settings it sets too, whatever the run's params say about those.
    implies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


# A choice param's value meaning "follow the environment" (as for the `compute` param).
FOLLOW_ENV = "default"

RUN_SETTINGS = (
    RunSetting("tune", "MOVIELENS_TUNE", "string", "Tune the models",
               "on: tune both models in this run, whatever the schedule below, on a validation split of the "
               "training part (ALS rank and regParam, EASE regularisation and the iALS weight are chosen by the "
               "grids); off: use the values below as given. With the default and MOVIELENS_TUNE=true, a run tunes "
               "on the schedule of 'Tune every N days' and reuses the parameters of the last tuning run otherwise.",
               # Not a boolean: the form renders one as an on/off switch, which cannot say "follow the environment".
               choices={"on": True, "off": False},
               # "on" means tune now: the schedule's window shrinks to this run alone.
               implies={"on": {"tune_every_days": 1}}),
    RunSetting("tune_every_days", "MOVIELENS_TUNE_EVERY_DAYS", "integer", "Tune every N days",
               "With tuning on, a run reuses the parameters chosen by the latest run of the previous N - 1 days that "
               "tuned with the same protocol and tuning settings (seed, test fraction, k, tuning sample, ALS "
               "iterations, movies covered), and tunes when there is none; 1 tunes in every run. Ignored when "
               "tune is on (it tunes) or off.", 1, 365),
    RunSetting("tune_max_users", "MOVIELENS_TUNE_MAX_USERS", "integer", "Tuning sample (users)",
               "Tune on a hash sample of at most this many users (faster on big data).", 100, 10_000_000),
    RunSetting("als_rank", "MOVIELENS_ALS_RANK", "integer", "Rating model: ALS rank",
               "Number of latent factors of the explicit ALS (used as given when tuning is off).", 1, 500),
    RunSetting("als_reg_param", "MOVIELENS_ALS_REG_PARAM", "number", "Rating model: ALS regParam",
               "Regularisation of the explicit ALS (used as given when tuning is off).", 0, 10),
    RunSetting("als_max_iter", "MOVIELENS_ALS_MAX_ITER", "integer", "Rating model: ALS iterations",
               "maxIter of the explicit ALS, in tuning trials too.", 1, 100),
    RunSetting("ease_reg", "MOVIELENS_EASE_REG", "number", "Top-N model: EASE regularisation",
               "L2 regularisation of EASE (used as given when tuning is off).", 1, 1_000_000),
    RunSetting("ials_weight", "MOVIELENS_IALS_WEIGHT", "number", "Top-N model: iALS weight",
               "Weight of implicit ALS in the blend with EASE; 0 is EASE alone (used as given when tuning is off).",
               0, 100),
    RunSetting("top_n_max_items", "MOVIELENS_TOP_N_MAX_ITEMS", "integer", "Top-N model: movies covered",
               "The top-N model covers this many most-rated movies; EASE inverts a float64 matrix of that "
               "size on the Spark driver (20,000 movies: 3.2 GB per copy).", 10, 20_000),
    RunSetting("refit", "MOVIELENS_REFIT", "string", "Refit after evaluation",
               "Models refit on every rating up to the date after evaluation: top-n (the product's model), "
               "all (also the rating model, whose factors give similar movies), none.",
               choices={choice: choice for choice in REFIT_CHOICES}),
)


def run_overrides(run_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The model settings a run's params set, as Settings fields; params left to follow the environment
    are left out. Airflow checks a run's params against the form's schema when a task starts; the same
    bounds are checked here for callers outside a DAG run.
    """
    overrides: dict[str, Any] = {}
    for spec in RUN_SETTINGS:
        value = (run_params or {}).get(spec.name)
        if value is None or value == FOLLOW_ENV:
            continue
        if spec.choices:
            if value not in spec.choices:
                raise ValueError(f"param {spec.name} must be one of {(FOLLOW_ENV, *spec.choices)}, got {value!r}")
            overrides[spec.name] = spec.choices[value]
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (spec.type == "integer" and value != int(value)):
            raise ValueError(f"param {spec.name} must be {'an integer' if spec.type == 'integer' else 'a number'}, got {value!r}")
        if not spec.minimum <= value <= spec.maximum:
            raise ValueError(f"param {spec.name} must be between {spec.minimum} and {spec.maximum}, got {value!r}")
        overrides[spec.name] = int(value) if spec.type == "integer" else float(value)
    for spec in RUN_SETTINGS:
        value = (run_params or {}).get(spec.name)
        if spec.implies and value in spec.implies:
            overrides.update(spec.implies[value])
    return overrides


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
