"""Tune on a schedule, reuse in between: the decision of ``movielens.tuning`` over a file:// lake holding
``models/ds=D/params.json`` files written as the Spark job writes them, and the way the reused parameters
reach the job's arguments and are checked there."""

from __future__ import annotations

import json

import pytest

from movielens import config, tuning
from movielens.compute import job_arguments
from movielens.lake import Lake
from spark_jobs.common import layout
from spark_jobs.common.args import REUSABLE_PARAMS, TUNING_VERSION, add_model_args, base_parser, job_settings
from tests.tuned import DS, RATING, TOP_N, day, write_params


@pytest.fixture
def lake(lake_url, monkeypatch) -> Lake:
    for name in ("MOVIELENS_TUNE", "MOVIELENS_TUNE_EVERY_DAYS", "MOVIELENS_SEED", "MOVIELENS_TOP_N_MAX_ITEMS",
                 "MOVIELENS_ALS_RANK", "MOVIELENS_REFIT", "MOVIELENS_TUNE_MAX_USERS"):
        monkeypatch.delenv(name, raising=False)
    return Lake(lake_url)


def decide(lake: Lake, run_params: dict | None = None, ds: str = DS) -> tuning.Decision:
    return tuning.decide(lake, config.load(run_params), ds)


def test_the_first_run_tunes(lake):
    decision = decide(lake)
    assert (decision.action, decision.reuse_params) == (tuning.TUNE, None)
    assert "no run from ds=2026-11-14" in decision.reason


def test_the_latest_tuning_run_of_the_window_is_reused_with_exactly_its_parameters(lake):
    write_params(lake, day(-5), rating={**RATING, "rank": 20})
    write_params(lake, day(-2), rating=RATING, top_n=TOP_N)
    decision = decide(lake)
    assert decision.action == tuning.REUSE and decision.source_ds == day(-2)
    assert decision.reuse_params == {"ds": day(-2), "als_explicit": RATING, "ease_ials": TOP_N}
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
    write_params(lake, day(-1), tuning_status=f"reused from ds={day(-3)}", rating={**RATING, "rank": 99})
    decision = decide(lake)
    assert decision.source_ds == day(-3) and decision.reuse_params["als_explicit"]["rank"] == RATING["rank"]
    # Reuse does not chain: once its tuning run is out of the window, the run tunes even though the day
    # before reused parameters.
    assert decide(lake, ds=day(4)).action == tuning.TUNE
    assert "2026-11-19: reused from ds=2026-11-17" in decide(lake, ds=day(4)).reason


def test_only_earlier_dates_count_so_a_rerun_decides_the_same(lake):
    write_params(lake, DS)  # the date's own first run tuned: its rerun still tunes
    write_params(lake, day(1))  # a later date (a backfill runs in date order; this one is not seen)
    assert decide(lake).action == tuning.TUNE
    write_params(lake, day(-1))
    first = decide(lake)
    write_params(lake, DS, tuning_status=f"reused from ds={day(-1)}")  # what that run wrote
    assert decide(lake) == first and first.source_ds == day(-1)


def test_runs_tuned_with_other_tuning_settings_are_passed_over(lake, monkeypatch):
    write_params(lake, day(-4))
    write_params(lake, day(-1), seed=7, rating={**RATING, "rank": 20})
    decision = decide(lake)
    assert decision.source_ds == day(-4), "the latest tuning run with the same settings"
    monkeypatch.setenv("MOVIELENS_TOP_N_MAX_ITEMS", "3000")
    decision = decide(lake)
    assert decision.action == tuning.TUNE
    assert "max_items 6000 (now 3000)" in decision.reason and "seed 7 (now 42)" in decision.reason
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
    """Before this change, protocol.tuning described the validation split: such a run is passed over."""
    record = write_params(lake, day(-1))
    record["protocol"]["tuning"] = "validation split of the training part (fraction 0.25, seed 43), at most 10000 users"
    del record["settings"]["tune_max_users"]
    lake.write_json(lake.zone(layout.MODELS, day(-1)) / layout.MODEL_PARAMS, record)
    assert decide(lake).action == tuning.TUNE


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
    assert (decision.action, decision.reuse_params) == (tuning.OFF, None), "MOVIELENS_TUNE=false wins"


@pytest.mark.parametrize("change, message", [
    (lambda r: r["models"]["als_explicit"]["params"].update(rank=0), "als_explicit.rank must be between 1 and 500, got 0"),
    (lambda r: r["models"]["als_explicit"]["params"].update(rank=10.5), "als_explicit.rank must be an integer, got 10.5"),
    (lambda r: r["models"]["ease_ials"]["params"].update(ease_reg="400"), "ease_ials.ease_reg must be a number, got '400'"),
    (lambda r: r["models"]["ease_ials"]["params"].update(ials_weight=-1.0), "ease_ials.ials_weight must be between 0.0 and 100.0"),
    (lambda r: r["models"]["ease_ials"]["params"].update(ials_iterations=True), "ease_ials.ials_iterations must be an integer"),
    (lambda r: r["models"]["ease_ials"]["params"].update(max_items=None), "ease_ials.max_items must be an integer, got None"),
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
    assert decision.source_ds == day(-3) and decision.reuse_params["als_explicit"]["rank"] == RATING["rank"]
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


@pytest.mark.parametrize("value", ["0", "-3", "seven"])
def test_tune_every_days_must_be_a_positive_integer(lake, monkeypatch, value):
    monkeypatch.setenv("MOVIELENS_TUNE_EVERY_DAYS", value)
    with pytest.raises(ValueError, match="MOVIELENS_TUNE_EVERY_DAYS"):
        config.load()
    with pytest.raises(ValueError, match="tune_every_days must be between 1 and 365"):
        config.run_overrides({"tune_every_days": 0})


def test_the_reused_parameters_reach_the_job_s_arguments_and_the_job_reads_them_back(lake):
    write_params(lake, day(-1))
    settings = tuning.settings_for_run(None, DS)
    arguments = job_arguments(settings, "file:///lake", DS)
    value = arguments[arguments.index("--reuse-params") + 1]
    assert " " not in value, "one compact argument"
    parsed = add_model_args(base_parser("test")).parse_args(arguments)
    assert parsed.reuse_params == {"ds": day(-1), "als_explicit": RATING, "ease_ials": TOP_N}
    assert parsed.tune is True
    assert job_settings(parsed)["reuse_params"] == parsed.reuse_params, "recorded in params.json's settings"
    # A job that does not train gets no decision; tuning off gets none either.
    assert tuning.settings_for_run(None, DS, "similar.py").reuse_params is None
    assert "--reuse-params" not in job_arguments(tuning.settings_for_run({"tune": "off"}, DS), "file:///lake", DS)


def test_the_job_refuses_bad_reused_values_and_reuse_without_tuning(capsys):
    from spark_jobs import train

    parser = add_model_args(base_parser("test"))
    base = ["--lake-root", "file:///lake", "--ds", DS]
    good = {"ds": day(-1), "als_explicit": RATING, "ease_ials": TOP_N}
    for bad, message in (
        ({**good, "als_explicit": {**RATING, "reg_param": -0.1}}, "als_explicit.reg_param must be between 0.0 and 10.0"),
        ({**good, "ease_ials": {**TOP_N, "tuning_s": 3.0}}, "unknown ['tuning_s']"),
        ({**good, "ds": "2026-02-30"}, "ds must be a real calendar date"),
        ({k: v for k, v in good.items() if k != "ds"}, "missing ['ds']"),
    ):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, "--reuse-params", json.dumps(bad)])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--reuse-params", "{not json"])
    assert "--reuse-params: not JSON" in capsys.readouterr().err
    both = parser.parse_args([*base, "--no-tune", "--reuse-params", json.dumps(good)])
    with pytest.raises(ValueError, match="--reuse-params replaces tuning"):
        train.check_params(both)


def test_reusable_params_are_what_train_fits_each_model_with():
    from types import SimpleNamespace

    from spark_jobs import train

    names = {name: None for specs in REUSABLE_PARAMS.values() for name in specs}
    fields = {**names, "max_items": None}
    assert set(REUSABLE_PARAMS) == {train.RATING_MODEL, train.TOP_N_MODEL}
    assert set(REUSABLE_PARAMS[train.RATING_MODEL]) == set(train.rating_params(SimpleNamespace(**fields)))
    assert set(REUSABLE_PARAMS[train.TOP_N_MODEL]) == set(train.top_n_params(SimpleNamespace(**fields)))


def test_form_bounds_and_job_bounds_agree():
    """A value the trigger form accepts for a tuned parameter is one a reusing job accepts too."""
    job_names = {"als_rank": ("als_explicit", "rank"), "als_reg_param": ("als_explicit", "reg_param"),
                 "als_max_iter": ("als_explicit", "max_iter"), "ease_reg": ("ease_ials", "ease_reg"),
                 "ials_weight": ("ease_ials", "ials_weight"), "top_n_max_items": ("ease_ials", "max_items")}
    for spec in config.RUN_SETTINGS:
        if spec.name in job_names:
            model, name = job_names[spec.name]
            _, low, high = REUSABLE_PARAMS[model][name]
            assert (low, high) == (spec.minimum, spec.maximum), spec.name


def test_the_run_summary_says_where_the_parameters_came_from(lake):
    from movielens import pipeline

    protocol = {"tuning": f"reused from ds={day(-2)}", "params_tuned_on": day(-2), "seed": 42}
    lake.write_json(lake.zone(layout.REPORTS, DS) / layout.SPARK_REPORT, {"protocol": protocol, "settings": {}})
    summary = pipeline.build_run_summary(DS, "manual__1", "movielens_daily", run_params={"tune_every_days": 3})
    assert summary["tuning"] == {"status": f"reused from ds={day(-2)}", "params_tuned_on": day(-2), "tune_every_days": 3}
    assert summary["protocol"]["tuning"] == f"reused from ds={day(-2)}"
