"""The daily DAG's model params: a run's override reaches the Spark job's spec on every backend, params left
alone follow the environment, bad values are refused, the summary records both, and each setting is
defined once (the run spec): a default or a bound changed there alone shows in the form, in what the job
accepts and in the summary."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from movielens import config
from movielens.compute import job_arguments, job_spec
from spark_jobs.common import spec

DS = "2026-11-20"
# What a run asks for in the trigger form (every kind of field: integer, number, both choices).
OVERRIDES = {"als_rank": 12, "als_reg_param": 0.07, "ease_reg": 250.0, "tune": "off", "refit": "all"}
# The environment those overrides beat, and what the Spark job gets for them.
ENV = {"MOVIELENS_ALS_RANK": "30", "MOVIELENS_ALS_REG_PARAM": "0.2", "MOVIELENS_EASE_REG": "800",
       "MOVIELENS_TUNE": "true", "MOVIELENS_REFIT": "top-n", "MOVIELENS_ALS_MAX_ITER": "7",
       "MOVIELENS_IALS_WEIGHT": "0.5", "MOVIELENS_TOP_N_MAX_ITEMS": "3000", "MOVIELENS_TUNE_MAX_USERS": "500"}
EXPECTED = {"als_rank": 12, "als_reg_param": 0.07, "ease_reg": 250.0, "tune": False, "refit": "all",
            # not set by the run: the environment's
            "als_max_iter": 7, "ials_weight": 0.5, "top_n_max_items": 3000, "tune_max_users": 500}


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


def job_spec_of(arguments: list[str]) -> spec.JobSpec:
    """The spec the Spark job parses from its arguments."""
    return spec.job_parser("test").parse_args(arguments).spec


def spark_settings(arguments: list[str]) -> dict:
    """The settings the Spark job parses from its arguments, as it records them."""
    return dict(job_spec_of(arguments).settings)


def assert_reaches_spark(arguments: list[str]) -> None:
    got = spark_settings(arguments)
    assert {key: got[key] for key in EXPECTED} == EXPECTED


def test_every_form_setting_has_a_form_field_that_follows_the_environment(dag):
    for setting in spec.form_settings():
        param = dag.params.get_param(setting.name)
        # The default follows the environment: a scheduled run overrides nothing.
        assert param.value in (None, spec.FOLLOW_ENV)
        assert param.schema["title"] == setting.title and setting.env in param.description
    defaults = {name: dag.params[name] for name in dag.params}
    assert spec.form_overrides(defaults) == {}


def test_the_form_says_the_value_each_field_follows(monkeypatch):
    from movielens.trigger_form import model_params

    monkeypatch.setenv("MOVIELENS_ALS_RANK", "17")
    monkeypatch.setenv("MOVIELENS_TUNE", "off")
    form = model_params()
    assert "Empty: MOVIELENS_ALS_RANK, now 17." in form["als_rank"].description
    assert form["tune"].schema["values_display"][spec.FOLLOW_ENV] == "default (MOVIELENS_TUNE: off)"
    monkeypatch.delenv("MOVIELENS_ALS_RANK")
    assert f"now {spec.by_name()['als_rank'].default}." in model_params()["als_rank"].description


def test_omitted_params_follow_the_environment(dag, monkeypatch, lake_url):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    defaults = {name: dag.params[name] for name in dag.params}
    settings = config.load(defaults)
    assert settings == config.load()
    got = spark_settings(job_arguments(lake_url, DS, job_spec(defaults, DS)))
    assert (got["als_rank"], got["als_reg_param"], got["tune"], got["refit"], got["top_n_max_items"]) == (
        30, 0.2, True, "top-n", 3000)


def submitted_by_every_backend(given: dict, monkeypatch) -> list[list[str]]:
    """The job's arguments as local spark-submit, Databricks, an EMR step and EMR Serverless get them, for
    the plan's job spec ``given`` (the providers' calls out are replaced; what they are given is kept)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    from movielens.compute import emr
    from movielens.compute.databricks import DatabricksSparkJobOperator
    from movielens.compute.local import LocalSparkJobOperator

    submitted: list[list[str]] = []
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda self, context: submitted.append(self.application_args))
    monkeypatch.setattr(DatabricksSubmitRunOperator, "execute",
                        lambda self, context: submitted.append(self.tasks[0]["spark_python_task"]["parameters"]))
    monkeypatch.setattr(S3Hook, "load_bytes", lambda self, *args, **kwargs: None)  # the upload is not the point here
    monkeypatch.setenv("MOVIELENS_EMR_CODE_URL", "s3://code-bucket/jobs")
    LocalSparkJobOperator(task_id="local", job_spec=given).execute({"ds": DS})
    DatabricksSparkJobOperator(task_id="databricks_run", python_file="/Shared/x/spark_jobs/daily.py",
                               job_spec=given).execute({"ds": DS, "dag": SimpleNamespace(dag_id="movielens_daily")})
    uploaded = emr.upload_jobs(DS, given, "daily.py")
    step = uploaded["steps"][0]["HadoopJarStep"]["Args"]
    submitted += [step[step.index("--lake-root"):], uploaded["job_driver"]["sparkSubmit"]["entryPointArguments"]]
    assert len(submitted) == 4
    return submitted


def test_an_override_reaches_every_backend(run_params, monkeypatch):
    """The plan task's job spec (an XCom, so a dict) is what every backend's job gets."""
    given = job_spec(run_params, DS).to_dict()
    for arguments in submitted_by_every_backend(given, monkeypatch):
        got = spark_settings(arguments)
        assert {key: got[key] for key in EXPECTED} == EXPECTED


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
        spec.form_overrides({"als_rank": 0})
    with pytest.raises(ValueError, match="tune must be one of"):
        spec.form_overrides({"tune": "maybe"})


def test_the_run_summary_records_the_overrides_and_the_settings_spark_ran_with(run_params, lake_url):
    from movielens import pipeline
    from movielens.lake import Lake
    from spark_jobs.common import layout

    lake = Lake.from_settings(config.load(run_params))
    ran_with = job_spec_of(job_arguments(lake.spark_root(), DS, job_spec(run_params, DS)))
    lake.write_json(lake.zone(layout.MODELS, DS) / layout.MODEL_PARAMS, {"spec": ran_with.record(tuned=False)})
    summary = pipeline.build_run_summary(DS, "manual__1", "movielens_daily", run_params=run_params)
    assert summary["param_overrides"] == {"als_rank": 12, "als_reg_param": 0.07, "ease_reg": 250.0, "tune": False,
                                          "refit": "all"}
    assert summary["settings"] == dict(ran_with.settings)
    saved = json.loads((lake.zone(layout.REPORTS, DS) / layout.RUN_SUMMARY).read_text())
    assert saved["param_overrides"]["als_rank"] == 12 and saved["settings"]["als_rank"] == 12
    assert saved["tuning"]["action"] == "off" and saved["tuning"]["tune_every_days"] == 7


def test_parameters_of_an_earlier_tuning_run_reach_every_backend(dag, monkeypatch, lake_url):
    """A scheduled run (params at their defaults) after a tuning run of the day before: the plan's spec hands
    every backend's job that run's parameters, decided from the lake once."""
    from movielens.lake import Lake
    from tests.tuned import REUSED, day, write_params

    for name in ("MOVIELENS_TUNE", "MOVIELENS_TUNE_EVERY_DAYS"):
        monkeypatch.delenv(name, raising=False)
    write_params(Lake(lake_url), day(-1, DS))
    scheduled = {name: dag.params[name] for name in dag.params}
    for arguments in submitted_by_every_backend(job_spec(scheduled, DS).to_dict(), monkeypatch):
        got = job_spec_of(arguments)
        assert got.settings["tune"] is True and got.tuning.action == spec.REUSE
        assert got.tuning.source_ds == day(-1, DS) and got.tuning.params == REUSED
    # The form's tune "on" tunes in this run: no parameters handed over.
    tuned = job_spec({**scheduled, "tune": "on"}, DS)
    assert (tuned.tuning.action, tuned.tuning.params, tuned.settings["tune_every_days"]) == (spec.TUNE, None, 1)


def changed_setting(monkeypatch, name: str, **changes) -> spec.Setting:
    """The run spec with one setting changed there (and nowhere else)."""
    settings = list(spec.SETTINGS)
    at = [s.name for s in settings].index(name)
    settings[at] = dataclasses.replace(settings[at], **changes)
    monkeypatch.setattr(spec, "SETTINGS", tuple(settings))
    return settings[at]


def test_a_default_or_bound_changed_in_the_spec_alone_shows_everywhere(monkeypatch, lake_url):
    """One definition per setting: the form, what the job accepts, the environment and the summary follow."""
    from airflow.exceptions import ParamValidationError

    from movielens import pipeline
    from movielens.lake import Lake
    from movielens.trigger_form import model_params
    from spark_jobs.common import layout

    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    changed_setting(monkeypatch, "als_rank", default=33, maximum=40)
    changed_setting(monkeypatch, "ials_alpha", default=7.5)
    # The form: the new bound is checked when a run is created, and the description shows it.
    field = model_params()["als_rank"]
    assert "From 1 to 40" in field.description and field.schema["maximum"] == 40
    assert field.resolve(40) == 40
    with pytest.raises(ParamValidationError):
        field.resolve(41)
    with pytest.raises(ValueError, match="als_rank must be between 1 and 40"):
        spec.form_overrides({"als_rank": 41})
    # The environment and the job's accepted spec.
    monkeypatch.setenv("MOVIELENS_ALS_RANK", "41")
    with pytest.raises(ValueError, match="MOVIELENS_ALS_RANK must be between 1 and 40, got 41"):
        config.load()
    monkeypatch.delenv("MOVIELENS_ALS_RANK")
    parser = spec.job_parser("test")
    base = ["--lake-root", lake_url, "--ds", DS]
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--spec", json.dumps({"settings": {"als_rank": 41}})])
    # The new defaults reach the job (a run that sets nothing) and the summary it records.
    ran_with = parser.parse_args(job_arguments(lake_url, DS, job_spec(None, DS))).spec
    assert ran_with.settings["als_rank"] == 33 and ran_with.fit_params("ease_ials")["ials_alpha"] == 7.5
    lake = Lake(lake_url)
    lake.write_json(lake.zone(layout.MODELS, DS) / layout.MODEL_PARAMS, {"spec": ran_with.record(tuned=True)})
    summary = pipeline.build_run_summary(DS, "manual__1", "movielens_daily")
    assert summary["settings"]["als_rank"] == 33 and summary["settings"]["ials_alpha"] == 7.5
