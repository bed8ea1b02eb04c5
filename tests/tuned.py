"""``models/ds=D/params.json`` files as the Spark job writes them, for tests of what a run does with the
parameters an earlier run's tuning chose (``movielens.tuning``)."""

from __future__ import annotations

import datetime as dt

from movielens import config
from movielens.lake import Lake
from spark_jobs.common import layout, spec

DS = "2026-11-20"
# Parameters a tuning run chose (not the defaults, so a test sees where a value came from), by each model's
# parameter names as params.json records them ...
RATING = {"rank": 10, "reg_param": 0.3, "max_iter": 10, "reg_user": 5.0, "reg_item": 15.0}
TOP_N = {"ease_reg": 3200.0, "ials_weight": 0.5, "ials_rank": 32, "ials_reg": 0.3, "ials_alpha": 2.0,
         "ials_iterations": 8, "max_items": 6000}
# ... and by setting name, as a reusing run's spec carries them.
REUSED = {"als_rank": 10, "als_reg_param": 0.3, "als_max_iter": 10, "bias_reg_user": 5.0, "bias_reg_item": 15.0,
          "ease_reg": 3200.0, "ials_weight": 0.5, "ials_rank": 32, "ials_reg": 0.3, "ials_alpha": 2.0,
          "ials_iterations": 8, "top_n_max_items": 6000}


def day(offset: int, ds: str = DS) -> str:
    """The date ``offset`` days after ``ds`` (negative: before)."""
    return (dt.date.fromisoformat(ds) + dt.timedelta(days=offset)).isoformat()


def write_params(lake: Lake, ds: str, action: str = spec.TUNE, rating: dict | None = None, top_n: dict | None = None,
                 tuning_version: int | None = spec.TUNING_VERSION, source_ds: str | None = None,
                 **settings_changes) -> dict:
    """``models/ds=D/params.json`` as train.py writes it, for the settings of the environment (changed by
    ``settings_changes``) and the given chosen parameters."""
    settings = {**config.load().spec, **settings_changes}
    extra = {"tuning_s": 37.1, "tuning_user_fraction": 1.0} if action == spec.TUNE else {}
    record = {
        "spec": {"settings": settings,
                 "tuning": {"action": action, "reason": "as the test says", "source_ds": source_ds,
                            "version": tuning_version if action == spec.TUNE else None}},
        "models": {
            "als_explicit": {"params": {**(rating or RATING), "seed": settings["seed"], **extra}, "metrics": {"rmse": 0.9}},
            "ease_ials": {"params": {**(top_n or TOP_N), "seed": settings["seed"], **extra}, "metrics": {"ndcg_at_10": 0.3}},
            "popularity": {"params": {"score": "number of ratings in training"}, "metrics": {"ndcg_at_10": 0.2}},
        },
        "protocol": {"train_rows": 100, "test_rows": 30},
    }
    lake.write_json(lake.zone(layout.MODELS, ds) / layout.MODEL_PARAMS, record)
    return record
