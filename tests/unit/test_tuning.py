"""Tune on a schedule, reuse in between: the decision of ``movielens.tuning`` over a file:// lake holding
``models/ds=D/params.json`` files written as the Spark job writes them, and the way the reused parameters
reach the job's spec and are checked there."""

from __future__ import annotations

import json

import pytest

from movielens import config, tuning
from movielens.compute import job_arguments, job_spec
from movielens.lake import Lake
from spark_jobs.common import layout, spec
from spark_jobs.common.spec import TUNING_VERSION
from tests.tuned import DS, RATING, REUSED, TOP_N, day, write_params


@pytest.fixture
def lake(lake_url, monkeypatch) -> Lake:
    for name in ("MOVIELENS_TUNE", "MOVIELENS_TUNE_EVERY_DAYS", "MOVIELENS_SEED", "MOVIELENS_TOP_N_MAX_ITEMS",
                 "MOVIELENS_ALS_RANK", "MOVIELENS_REFIT", "MOVIELENS_TUNE_MAX_USERS"):
        monkeypatch.delenv(name, raising=False)
    return Lake(lake_url)


def decide(lake: Lake, run_params: dict | None = None, ds: str = DS) -> spec.Tuning:
    return tuning.decide(lake, config.load(run_params).spec, ds)


def test_the_first_run_tunes(lake):
    decision = decide(lake)
    assert (decision.action, decision.params) == (tuning.TUNE, None)
    assert "no run from ds=2026-11-14" in decision.reason


def test_the_latest_tuning_run_of_the_window_is_reused_with_exactly_its_parameters(lake):
    write_params(lake, day(-5), rating={**RATING, "rank": 20})
    write_params(lake, day(-2), rating=RATING, top_n=TOP_N)
    decision = decide(lake)
    assert decision.action == tuning.REUSE and decision.source_ds == day(-2)
    assert decision.params == REUSED
    assert "tuned on ds=2026-11-18" in decision.reason


@pytest.mark.parametrize("every, offset, action", [
    (7, -6, tuning.REUSE),  # the oldest date of the window: ds - 6
    (7, -7, tuning.TUNE),  # a week ago: time to tune again
    (2, -1, tuning.REUSE),
    (2, -2, tuning.TUNE),
    (30, -29, tuning.REUSE),
])
def test_the_window_is_the_previous_n_minus_1_days(lake, monkeypatch, every, offset, action):
    monkeypatch.setenv("MOVIELENS_TUNE_EVERY_DAYS", str(every))
    write_params(lake, day(offset))
    assert decide(lake).action == action


def test_a_run_that_reused_is_never_a_source(lake):
    write_params(lake, day(-3))
    write_params(lake, day(-1), action=spec.REUSE, source_ds=day(-3), rating={**RATING, "rank": 99})
    decision = decide(lake)
    assert decision.source_ds == day(-3) and decision.params["als_rank"] == RATING["rank"]
    # Reuse does not chain: once its tuning run is out of the window, the run tunes even though the day
    # before reused parameters.
    assert decide(lake, ds=day(4)).action == tuning.TUNE
    assert "2026-11-19: reused the parameters of ds=2026-11-17" in decide(lake, ds=day(4)).reason


def test_only_earlier_dates_count_so_a_rerun_decides_the_same(lake):
    write_params(lake, DS)  # the date's own first run tuned: its rerun still tunes
    write_params(lake, day(1))  # a later date (a backfill runs in date order; this one is not seen)
    assert decide(lake).action == tuning.TUNE
    write_params(lake, day(-1))
    first = decide(lake)
    write_params(lake, DS, action=spec.REUSE, source_ds=day(-1))  # what that run wrote
    assert decide(lake) == first and first.source_ds == day(-1)


def test_runs_tuned_with_other_tuning_settings_are_passed_over(lake, monkeypatch):
    write_params(lake, day(-4))
    write_params(lake, day(-1), seed=7, rating={**RATING, "rank": 20})
    decision = decide(lake)
    assert decision.source_ds == day(-4), "the latest tuning run with the same settings"
    monkeypatch.setenv("MOVIELENS_TOP_N_MAX_ITEMS", "3000")
    decision = decide(lake)
    assert decision.action == tuning.TUNE
    assert "top_n_max_items 6000 (now 3000)" in decision.reason and "seed 7 (now 42)" in decision.reason
    # A tuning input the trigger form sets counts the same way.
    assert decide(lake, {"tune_max_users": 500}).action == tuning.TUNE


def test_settings_tuning_does_not_depend_on_do_not_prevent_reuse(lake, monkeypatch):
    write_params(lake, day(-1))
    # Starting values of the tuned parameters and output settings: tuning chooses the same for them.
    monkeypatch.setenv("MOVIELENS_ALS_RANK", "50")
    monkeypatch.setenv("MOVIELENS_REFIT", "all")
    assert decide(lake, {"ease_reg": 10.0, "ials_weight": 3.0}).source_ds == day(-1)


def test_runs_tuned_by_another_tuning_version_are_passed_over(lake, monkeypatch):
    """Parameters chosen by other grids or models (``TUNING_VERSION``) are never reused."""
    write_params(lake, day(-4))
    write_params(lake, day(-1), tuning_version=TUNING_VERSION - 1, rating={**RATING, "rank": 20})
    assert decide(lake).source_ds == day(-4), "the latest run tuned by this version"
    monkeypatch.setattr(tuning, "TUNING_VERSION", TUNING_VERSION + 1)
    decision = decide(lake)
    assert decision.action == tuning.TUNE
    assert f"ds={day(-4)}: tuned by tuning version {TUNING_VERSION} (now {TUNING_VERSION + 1})" in decision.reason
    write_params(lake, day(-2), tuning_version=None)  # written before versions were recorded
    assert "tuned by tuning version unrecorded" in decide(lake).reason


def test_a_params_file_of_an_older_layout_is_not_a_source(lake):
    """Before the run spec, params.json had ``settings`` and ``protocol.tuning``: such a run is passed over."""
    record = write_params(lake, day(-1))
    record["settings"] = record.pop("spec")["settings"]
    record["protocol"]["tuning"] = "tuned"
    lake.write_json(lake.zone(layout.MODELS, day(-1)) / layout.MODEL_PARAMS, record)
    decision = decide(lake)
    assert decision.action == tuning.TUNE and "ds=2026-11-19: no spec recorded (an older layout)" in decision.reason
    # A tuning input the spec gained since (absent from the record) is a difference too.
    record = write_params(lake, day(-1))
    del record["spec"]["settings"]["tune_max_users"]
    lake.write_json(lake.zone(layout.MODELS, day(-1)) / layout.MODEL_PARAMS, record)
    assert "tune_max_users unset (now 10000)" in decide(lake).reason


def test_tuning_off_wins_and_every_run_or_the_form_s_on_tunes(lake, monkeypatch):
    write_params(lake, day(-1))
    assert decide(lake).action == tuning.REUSE
    assert decide(lake, {"tune": "on"}).action == tuning.TUNE, "the form's 'on' tunes in this run, whatever the schedule"
    assert decide(lake, {"tune": "on", "tune_every_days": 30}).action == tuning.TUNE
    assert decide(lake, {"tune": "off"}).action == tuning.OFF
    assert decide(lake, {"tune_every_days": 1}).action == tuning.TUNE
    monkeypatch.setenv("MOVIELENS_TUNE_EVERY_DAYS", "1")
    assert decide(lake).action == tuning.TUNE
    assert decide(lake, {"tune_every_days": 2}).action == tuning.REUSE, "the form's schedule for this run"
    monkeypatch.setenv("MOVIELENS_TUNE", "false")
    decision = decide(lake, {"tune_every_days": 2})
    assert (decision.action, decision.params) == (tuning.OFF, None), "MOVIELENS_TUNE=false wins"


@pytest.mark.parametrize("change, message", [
    (lambda r: r["models"]["als_explicit"]["params"].update(rank=0), "reused als_rank must be between 1 and 500, got 0"),
    (lambda r: r["models"]["als_explicit"]["params"].update(rank=10.5), "reused als_rank must be an integer, got 10.5"),
    (lambda r: r["models"]["ease_ials"]["params"].update(ease_reg="400"), "reused ease_reg must be a number, got '400'"),
    (lambda r: r["models"]["ease_ials"]["params"].update(ials_weight=-1.0), "reused ials_weight must be between 0 and 100"),
    (lambda r: r["models"]["ease_ials"]["params"].update(ials_iterations=True), "reused ials_iterations must be an integer"),
    (lambda r: r["models"]["ease_ials"]["params"].update(max_items=None), "reused top_n_max_items must be an integer, got None"),
])
def test_a_tuning_run_with_values_the_job_refuses_fails_clearly(lake, change, message):
    record = write_params(lake, day(-1))
    change(record)
    path = lake.zone(layout.MODELS, day(-1)) / layout.MODEL_PARAMS
    lake.write_json(path, record)
    with pytest.raises(tuning.TuningReuseError) as caught:
        decide(lake)
    assert message in str(caught.value) and lake.uri(path) in str(caught.value)
    assert "run this date with the tune param 'on'" in str(caught.value)
    # That way out: tune in this run, reading nothing.
    assert decide(lake, {"tune": "on"}).action == tuning.TUNE


def test_a_tuning_run_that_lacks_a_parameter_is_passed_over(lake):
    """A params.json written before a parameter existed: the run tunes (and says why) rather than fail."""
    write_params(lake, day(-3))
    record = write_params(lake, day(-1), rating={**RATING, "rank": 20})
    del record["models"]["als_explicit"]["params"]["reg_user"]
    del record["models"]["ease_ials"]
    lake.write_json(lake.zone(layout.MODELS, day(-1)) / layout.MODEL_PARAMS, record)
    decision = decide(lake)
    assert decision.source_ds == day(-3) and decision.params["als_rank"] == RATING["rank"]
    lake.zone(layout.MODELS, day(-3)).joinpath(layout.MODEL_PARAMS).unlink()
    decision = decide(lake)
    assert decision.action == tuning.TUNE
    assert "ds=2026-11-19: its params.json records no als_explicit.reg_user, ease_ials.ease_reg" in decision.reason


def test_a_params_file_that_is_not_json_fails_clearly(lake):
    path = lake.zone(layout.MODELS, day(-1)) / layout.MODEL_PARAMS
    path.parent.mkdir(parents=True)
    path.write_text('{"models": ')
    with pytest.raises(tuning.TuningReuseError, match=f"{lake.uri(path)} is not JSON"):
        decide(lake)


@pytest.mark.parametrize("value, message", [("0", "must be between 1 and 365, got 0"), ("-3", "must be between 1 and 365"),
                                            ("seven", "must be an integer, got 'seven'")])
def test_tune_every_days_must_be_a_positive_integer(lake, monkeypatch, value, message):
    monkeypatch.setenv("MOVIELENS_TUNE_EVERY_DAYS", value)
    with pytest.raises(ValueError, match=f"MOVIELENS_TUNE_EVERY_DAYS {message}"):
        config.load()
    with pytest.raises(ValueError, match="tune_every_days must be between 1 and 365"):
        spec.form_overrides({"tune_every_days": 0})


def test_the_reused_parameters_reach_the_job_s_spec_and_the_job_reads_them_back(lake):
    write_params(lake, day(-1))
    given = job_spec(None, DS)
    arguments = job_arguments("file:///lake", DS, given)
    assert arguments[:4] == ["--lake-root", "file:///lake", "--ds", DS] and arguments[4] == "--spec"
    assert len(arguments) == 6, "the spec is one argument"
    parsed = spec.job_parser("test").parse_args(arguments).spec
    assert parsed == given and parsed.tuning.action == spec.REUSE and parsed.tuning.source_ds == day(-1)
    assert parsed.tuning.params == REUSED and parsed.settings["tune"] is True
    assert parsed.fit_params("als_explicit") == RATING and parsed.fit_params("ease_ials") == TOP_N
    recorded = parsed.record(tuned=False)
    assert recorded["tuning"] == {"action": "reuse", "reason": given.tuning.reason, "source_ds": day(-1), "version": None}
    # A job that does not train gets no decision from the lake; tuning off gets none either.
    assert job_spec(None, DS, "similar.py").tuning.action == spec.TUNE
    off = job_spec({"tune": "off"}, DS)
    assert (off.tuning.action, off.tuning.params) == (spec.OFF, None) and off.fit_params("als_explicit")["rank"] == 20


def test_the_job_refuses_bad_specs(capsys):
    parser = spec.job_parser("test")
    base = ["--lake-root", "file:///lake", "--ds", DS]
    good = {"action": "reuse", "reason": "r", "source_ds": day(-1), "params": REUSED}
    for bad, message in (
        ({"tuning": {**good, "params": {**REUSED, "als_reg_param": -0.1}}}, "reused als_reg_param must be between 0 and 10"),
        ({"tuning": {**good, "params": {**REUSED, "tuning_s": 3.0}}}, "unknown ['tuning_s']"),
        ({"tuning": {**good, "source_ds": "2026-02-30"}}, "ds must be a real calendar date"),
        ({"tuning": {**good, "params": {k: v for k, v in REUSED.items() if k != "als_rank"}}}, "missing ['als_rank']"),
        ({"tuning": good, "settings": {"tune": False}}, "tuning action 'reuse' contradicts tune=False"),
        ({"tuning": {"action": "off", "reason": ""}}, "tuning action 'off' contradicts tune=True"),
        ({"tuning": {"action": "tune", "reason": "", "params": REUSED}}, "tuning action 'tune' takes no params"),
        ({"settings": {"als_rank": 0}}, "setting als_rank must be between 1 and 500, got 0"),
        ({"settings": {"rank": 10}}, "unknown settings ['rank']"),
        ({"settings": {}, "models": {}}, "the spec must be an object"),
    ):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, "--spec", json.dumps(bad)])
        assert message in capsys.readouterr().err, message
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--spec", "{not json"])
    assert "the spec is not JSON" in capsys.readouterr().err
    # Given nothing, the job runs with the defaults and tunes.
    assert parser.parse_args(base).spec == spec.JobSpec.build()


def test_reused_settings_are_what_train_fits_each_model_with():
    import inspect

    from spark_jobs import rating_model, top_n_model, train

    assert set(spec.MODELS) == {train.RATING_MODEL, train.TOP_N_MODEL}
    fit_args = set(inspect.signature(rating_model.fit).parameters) - {"train", "seed"}
    assert set(spec.model_settings(train.RATING_MODEL)) == fit_args
    # The top-N model's fit takes exactly its settings' parameters (others are refused before any work).
    with pytest.raises(ValueError, match=r"unknown top-N model parameters \['rank'\]"):
        top_n_model.fit(None, {"rank": 3}, 0)
    assert set(spec.model_defaults(train.TOP_N_MODEL)) == {"ease_reg", "ials_weight", "ials_rank", "ials_reg",
                                                            "ials_alpha", "ials_iterations", "max_items"}
    assert set(spec.reused_setting_names()) == {s.name for m in spec.MODELS for s in spec.model_settings(m).values()}


def test_the_run_summary_says_where_the_parameters_came_from(lake):
    from movielens import pipeline

    record = write_params(lake, DS, action=spec.REUSE, source_ds=day(-2), tune_every_days=3)
    summary = pipeline.build_run_summary(DS, "manual__1", "movielens_daily", run_params={"tune_every_days": 3})
    assert summary["tuning"] == {"action": "reuse", "reason": "as the test says", "source_ds": day(-2), "version": None,
                                 "tune_every_days": 3}
    assert summary["settings"] == record["spec"]["settings"] and summary["settings"]["tune_every_days"] == 3
