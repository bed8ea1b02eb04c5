"""The daily DAG's model params: a run's override reaches the Spark job's arguments on every backend,
params left alone follow the environment, bad values are refused, and the summary records both."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from movielens import config
from movielens.compute import job_arguments
from spark_jobs.common.args import add_model_args, base_parser, job_settings

DS = "2026-11-20"
# What a run asks for in the trigger form (every kind of field: integer, number, both choices).
OVERRIDES = {"als_rank": 12, "als_reg_param": 0.07, "ease_reg": 250.0, "tune": "off", "refit": "all"}
# The environment those overrides beat, and what the Spark job gets for them.
ENV = {"MOVIELENS_ALS_RANK": "30", "MOVIELENS_ALS_REG_PARAM": "0.2", "MOVIELENS_EASE_REG": "800",
       "MOVIELENS_TUNE": "true", "MOVIELENS_REFIT": "top-n", "MOVIELENS_ALS_MAX_ITER": "7",
       "MOVIELENS_IALS_WEIGHT": "0.5", "MOVIELENS_TOP_N_MAX_ITEMS": "3000", "MOVIELENS_TUNE_MAX_USERS": "500"}
EXPECTED = {"rank": 12, "reg_param": 0.07, "ease_reg": 250.0, "tune": False, "refit": "all",
            # not set by the run: the environment's
            "max_iter": 7, "ials_weight": 0.5, "max_items": 3000, "tune_max_users": 500}


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(config.PROJECT_ROOT / "dags" / "movielens_daily.py"))
    return bag.dags["movielens_daily"]


@pytest.fixture
def run_params(dag, monkeypatch, lake_url) -> dict:
    """The params a task of a run with OVERRIDES sees (the DAG's defaults, then the run's values)."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return {**{name: dag.params[name] for name in dag.params}, **OVERRIDES}


def spark_settings(arguments: list[str]) -> dict:
    """The settings the Spark job parses from its arguments, as it records them."""
    return job_settings(add_model_args(base_parser("test")).parse_args(arguments))


def assert_reaches_spark(arguments: list[str]) -> None:
    got = spark_settings(arguments)
    assert {key: got[key] for key in EXPECTED} == EXPECTED


def test_every_run_setting_is_a_settings_field_with_a_form_field(dag):
    fields = set(config.Settings.__dataclass_fields__)
    for spec in config.RUN_SETTINGS:
        assert spec.name in fields, spec.name
        param = dag.params.get_param(spec.name)
        # The default follows the environment: a scheduled run overrides nothing.
        assert param.value in (None, config.FOLLOW_ENV)
    defaults = {name: dag.params[name] for name in dag.params}
    assert config.run_overrides(defaults) == {}


def test_omitted_params_follow_the_environment(dag, monkeypatch, lake_url):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    defaults = {name: dag.params[name] for name in dag.params}
    settings = config.load(defaults)
    assert settings == config.load()
    got = spark_settings(job_arguments(settings, lake_url, DS))
    assert (got["rank"], got["reg_param"], got["tune"], got["refit"], got["max_items"]) == (30, 0.2, True, "top-n", 3000)


def test_an_override_reaches_local_spark_submit(run_params, monkeypatch):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from movielens.compute.local import LocalSparkJobOperator

    submitted = []
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda self, context: submitted.append(self.application_args))
    LocalSparkJobOperator(task_id="spark_daily", job="daily.py").execute({"ds": DS, "params": run_params})
    assert_reaches_spark(submitted[0])


def test_an_override_reaches_databricks(run_params, monkeypatch):
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    from movielens.compute.databricks import DatabricksSparkJobOperator

    submitted = []
    monkeypatch.setattr(DatabricksSubmitRunOperator, "execute", lambda self, context: submitted.append(self.tasks))
    operator = DatabricksSparkJobOperator(task_id="spark_daily_databricks", python_file="/Shared/x/spark_jobs/daily.py")
    operator.execute({"ds": DS, "params": run_params, "dag": SimpleNamespace(dag_id="movielens_daily")})
    assert_reaches_spark(submitted[0][0]["spark_python_task"]["parameters"])


def test_an_override_reaches_emr_and_emr_serverless(run_params, monkeypatch):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from movielens.compute import emr

    monkeypatch.setenv("MOVIELENS_EMR_CODE_URL", "s3://code-bucket/jobs")
    monkeypatch.setattr(S3Hook, "load_bytes", lambda self, *args, **kwargs: None)  # the upload is not the point here
    uploaded = emr.upload_jobs(DS, "daily.py", run_params)
    step = uploaded["steps"][0]["HadoopJarStep"]["Args"]
    assert_reaches_spark(step[step.index("--lake-root"):])
    assert_reaches_spark(uploaded["job_driver"]["sparkSubmit"]["entryPointArguments"])


def test_bad_values_are_refused_when_the_run_is_created(dag):
    """The schema check Airflow runs on a triggered run's conf (``create_dagrun`` of the serialized DAG)."""
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    params = DagSerialization.from_dict(DagSerialization.to_dict(dag)).params
    assert params.deep_merge(OVERRIDES).validate()["als_rank"] == 12
    for bad in ({"als_rank": 0}, {"als_rank": 2.5}, {"als_reg_param": -0.1}, {"top_n_max_items": 50_000},
                {"tune": "maybe"}, {"tune": False}, {"refit": "everything"}, {"ials_weight": "1"},
                {"tune_every_days": 0}, {"tune_every_days": 1.5}, {"tune_every_days": 366}):
        with pytest.raises(ParamValidationError):
            params.deep_merge(bad).validate()
    # The same bounds hold for a caller outside a DAG run.
    with pytest.raises(ValueError, match="als_rank must be between 1 and 500"):
        config.run_overrides({"als_rank": 0})
    with pytest.raises(ValueError, match="tune must be one of"):
        config.run_overrides({"tune": "maybe"})


def test_the_run_summary_records_the_overrides_and_the_settings_spark_ran_with(run_params, lake_url):
    from movielens import pipeline
    from movielens.lake import Lake
    from spark_jobs.common import layout

    settings = config.load(run_params)
    lake = Lake.from_settings(settings)
    spark_ran_with = spark_settings(job_arguments(settings, lake.spark_root(), DS))
    lake.write_json(lake.zone(layout.REPORTS, DS) / layout.SPARK_REPORT, {"settings": spark_ran_with})
    summary = pipeline.build_run_summary(DS, "manual__1", "movielens_daily", run_params=run_params)
    assert summary["param_overrides"] == {"als_rank": 12, "als_reg_param": 0.07, "ease_reg": 250.0, "tune": False,
                                          "refit": "all"}
    assert summary["settings"] == spark_ran_with
    saved = json.loads((lake.zone(layout.REPORTS, DS) / layout.RUN_SUMMARY).read_text())
    assert saved["param_overrides"]["als_rank"] == 12 and saved["settings"]["rank"] == 12


def test_parameters_of_an_earlier_tuning_run_reach_every_backend(dag, monkeypatch, lake_url):
    """A scheduled run (params at their defaults) after a tuning run of the day before: each backend hands
    the job that run's parameters (--reuse-params), decided from the lake when the task runs."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    from movielens.compute import emr
    from movielens.compute.databricks import DatabricksSparkJobOperator
    from movielens.compute.local import LocalSparkJobOperator
    from movielens.lake import Lake
    from tests.tuned import RATING, TOP_N, day, write_params

    for name in ("MOVIELENS_TUNE", "MOVIELENS_TUNE_EVERY_DAYS"):
        monkeypatch.delenv(name, raising=False)
    write_params(Lake(lake_url), day(-1, DS))
    scheduled = {name: dag.params[name] for name in dag.params}
    submitted: list[list[str]] = []
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda self, context: submitted.append(self.application_args))
    monkeypatch.setattr(DatabricksSubmitRunOperator, "execute",
                        lambda self, context: submitted.append(self.tasks[0]["spark_python_task"]["parameters"]))
    monkeypatch.setattr(S3Hook, "load_bytes", lambda self, *args, **kwargs: None)
    monkeypatch.setenv("MOVIELENS_EMR_CODE_URL", "s3://code-bucket/jobs")
    LocalSparkJobOperator(task_id="spark_daily", job="daily.py").execute({"ds": DS, "params": scheduled})
    DatabricksSparkJobOperator(task_id="spark_daily_databricks", python_file="/Shared/x/spark_jobs/daily.py").execute(
        {"ds": DS, "params": scheduled, "dag": SimpleNamespace(dag_id="movielens_daily")})
    uploaded = emr.upload_jobs(DS, "daily.py", scheduled)
    step = uploaded["steps"][0]["HadoopJarStep"]["Args"]
    submitted += [step[step.index("--lake-root"):], uploaded["job_driver"]["sparkSubmit"]["entryPointArguments"]]
    assert len(submitted) == 4
    for arguments in submitted:
        got = spark_settings(arguments)
        assert got["tune"] is True and got["reuse_params"] == {"ds": day(-1, DS), "als_explicit": RATING, "ease_ials": TOP_N}
    # The form's tune "on" tunes in this run: no parameters handed over.
    submitted.clear()
    LocalSparkJobOperator(task_id="spark_daily", job="daily.py").execute({"ds": DS, "params": {**scheduled, "tune": "on"}})
    assert spark_settings(submitted[0])["reuse_params"] is None and spark_settings(submitted[0])["tune"] is True
