"""The publish gate's decision and the drift measures, as plain functions (the DAG runs them in
tests/integration/test_daily_loop.py)."""

from __future__ import annotations

import math

import pytest

from spark_jobs import drift, gate
from spark_jobs.common import spec

SETTINGS = spec.resolve()
S, D = "2026-11-01", "2026-11-02"
CHAMPION = {"ds": S, "models": {}}


def scores(ndcg: float, rmse: float) -> dict:
    return {spec.TOP_N_MODEL: {"ndcg_at_10": ndcg}, spec.RATING_MODEL: {"rmse": rmse}}


def test_the_first_run_publishes():
    record = gate.decide(D, SETTINGS, scores(0.1, 1.0), None, {})
    assert (record["published"], record["served_ds"], record["champion_ds"]) == (True, D, None)
    assert record["reasons"] == ["the first run: no lists were served before"]


def test_within_the_tolerances_publishes_and_beyond_them_holds_back():
    # NDCG 2 % lower and RMSE 2 % higher: at the tolerances, published.
    record = gate.decide(D, SETTINGS, scores(0.294, 0.918), CHAMPION, scores(0.3, 0.9))
    assert record["published"] and [c["passed"] for c in record["comparisons"]] == [True, True]
    record = gate.decide(D, SETTINGS, scores(0.25, 0.9), CHAMPION, scores(0.3, 0.9))
    assert (record["published"], record["served_ds"]) == (False, S)
    [reason] = record["reasons"]
    assert reason.startswith("ease_ials ndcg_at_10 0.2500 against the served model's 0.3000 (ds=2026-11-01)")
    assert "-16.7%, beyond the tolerance of 2.0% (gate_ndcg_tolerance)" in reason
    worse_rmse = gate.decide(D, SETTINGS, scores(0.3, 0.95), CHAMPION, scores(0.3, 0.9))
    assert not worse_rmse["published"] and "als_explicit rmse" in worse_rmse["reasons"][0]


def test_force_publishes_a_worse_model_and_keeps_the_comparison():
    record = gate.decide(D, {**SETTINGS, "publish": "force"}, scores(0.1, 2.0), CHAMPION, scores(0.3, 0.9))
    assert (record["published"], record["served_ds"], record["forced"]) == (True, D, True)
    assert [c["passed"] for c in record["comparisons"]] == [False, False]
    assert record["reasons"][-1] == "published because the run's publish setting is 'force'"


def test_a_champion_without_recorded_parameters_is_not_compared():
    record = gate.decide(D, SETTINGS, scores(0.1, 2.0), CHAMPION, {})
    assert record["published"] and record["comparisons"] == []
    assert all("not compared" in r for r in record["reasons"][:2])


def test_psi_of_equal_histograms_is_zero_and_grows_with_the_shift():
    same = {4.0: 50, 3.0: 50}
    assert drift.psi(same, {4.0: 5, 3.0: 5}) == pytest.approx(0.0)
    # Shares 0.8/0.2 against 0.5/0.5: (0.3 ln 1.6) + (-0.3 ln 0.4).
    assert drift.psi({4.0: 80, 3.0: 20}, same) == pytest.approx(0.3 * math.log(1.6) - 0.3 * math.log(0.4))
    assert drift.psi({}, same) is None


def test_volume_alerts():
    assert drift.volume_alerts(0, [], 5) == ["no ratings landed"]
    assert drift.volume_alerts(10, [90_000, 100], 5) == [], "too little history to judge"
    assert drift.volume_alerts(1000, [90_000, 100, 120, 110], 5) == [
        "1,000 ratings landed, 8.7 times the trailing median of 115"]
    assert drift.volume_alerts(20, [100, 100, 100], 5) == ["20 ratings landed, 1/5.0 of the trailing median of 100"]
    assert drift.volume_alerts(21, [100, 100, 100], 5) == []
