"""The publish gate: the day's lists (the challenger) are served only if their models are not worse than
the served ones (the champion) beyond a tolerance.

The champion is the models of the served date before D (``backtest.served_before``). Both are judged on
D's test split: the challenger's metrics are D's; the champion's parameters are fitted on D's training
part and evaluated the same way (``train.champion_metrics``; when its parameters are the challenger's, its
metrics are the challenger's by construction and no fit runs). Compared: the top-N model's NDCG@k (lower
by more than ``gate_ndcg_tolerance`` of the champion's holds back) and the rating model's RMSE (higher by
more than ``gate_rmse_tolerance``). ``publish=force`` publishes whatever the comparison says; the first
run publishes. Both outputs stay in the lake either way; the decision is ``reports/ds=D/publication.json``,
which every reader of the served lists follows (``layout.served_date``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import SparkSession

from spark_jobs.common import layout, session, spec


def comparisons(k: int) -> tuple[tuple[str, str, str, str], ...]:
    """(model, metric, which way is better, the tolerance's setting) of every comparison."""
    return ((spec.TOP_N_MODEL, f"ndcg_at_{k}", "higher", "gate_ndcg_tolerance"),
            (spec.RATING_MODEL, "rmse", "lower", "gate_rmse_tolerance"))


def champion(spark: SparkSession, lake_root: str, ds: str) -> dict[str, Any] | None:
    """The served date before ``ds`` and its models' recorded parameters and metrics (None: nothing served)."""
    from spark_jobs.backtest import served_before

    served = served_before(spark, lake_root, ds)
    if served is None:
        return None
    url = layout.join(layout.zone_dir(lake_root, layout.MODELS, served), layout.MODEL_PARAMS)
    models = session.read_json(spark, url)["models"] if session.exists(spark, url) else {}
    return {"ds": served, "models": {name: {"params": m.get("params", {}), "metrics": m.get("metrics", {})}
                                     for name, m in models.items()}}


def compare(challenger: float, champion: float, better: str, tolerance: float) -> tuple[bool, float]:
    """(passed, relative change of the challenger against the champion)."""
    change = (challenger - champion) / champion if champion else 0.0
    worse = -change if better == "higher" else change
    return worse <= tolerance + 1e-12, change


def decide(ds: str, settings: Mapping[str, Any], challenger: Mapping[str, Mapping[str, float]],
           champion_info: dict[str, Any] | None, champion_scores: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """The publication record of ``ds``. ``challenger``: D's metrics by model; ``champion_scores``: the
    champion's metrics on D's split by model (a model missing: its parameters were not recorded)."""
    forced = settings["publish"] == "force"
    record: dict[str, Any] = {"ds": ds, "champion_ds": champion_info and champion_info["ds"], "forced": forced,
                              "comparisons": [], "reasons": []}
    if champion_info is None:
        record.update(published=True, served_ds=ds, reasons=["the first run: no lists were served before"])
        return record
    failed = []
    for model, metric, better, tolerance_name in comparisons(settings["top_k"]):
        tolerance = settings[tolerance_name]
        mine, theirs = challenger.get(model, {}).get(metric), champion_scores.get(model, {}).get(metric)
        if mine is None or theirs is None:
            record["reasons"].append(f"{model} {metric}: not compared (the champion's parameters are not recorded)")
            continue
        passed, change = compare(mine, theirs, better, tolerance)
        record["comparisons"].append({"model": model, "metric": metric, "better": better, "challenger": mine,
                                      "champion": theirs, "change": change, "tolerance": tolerance, "passed": passed})
        if not passed:
            failed.append(f"{model} {metric} {mine:.4f} against the served model's {theirs:.4f} (ds="
                          f"{champion_info['ds']}) on this date's test split: {change:+.1%}, beyond the "
                          f"tolerance of {tolerance:.1%} ({tolerance_name})")
    record["reasons"] += failed
    published = forced or not failed
    if forced:
        record["reasons"].append("published because the run's publish setting is 'force'")
    elif not failed:
        record["reasons"].append(f"not worse than the served lists of ds={champion_info['ds']} beyond the tolerances")
    record.update(published=published, served_ds=ds if published else champion_info["ds"])
    return record


def run(spark: SparkSession, lake_root: str, ds: str, settings: Mapping[str, Any], models: Mapping[str, Any],
        champion_info: dict[str, Any] | None, champion_scores: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Decide and write ``reports/ds=D/publication.json``; returns the record."""
    challenger = {name: model["metrics"] for name, model in models.items()}
    record = decide(ds, settings, challenger, champion_info, champion_scores)
    session.write_json(spark, layout.join(layout.zone_dir(lake_root, layout.REPORTS, ds), layout.PUBLICATION), record)
    return record
