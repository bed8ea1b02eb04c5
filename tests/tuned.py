"""``models/ds=D/params.json`` files as the Spark job writes them, for tests of what a run does with the
parameters an earlier run's tuning chose (``movielens.tuning``)."""

from __future__ import annotations

import datetime as dt

from movielens import config
from movielens.compute import job_arguments
from movielens.lake import Lake
from spark_jobs.common import layout
from spark_jobs.common.args import TUNING_VERSION, add_model_args, base_parser, job_settings

DS = "2026-11-20"
# Parameters a tuning run chose (not the defaults, so a test sees where a value came from).
RATING = {"rank": 10, "reg_param": 0.3, "max_iter": 10, "reg_user": 5.0, "reg_item": 15.0}
TOP_N = {"ease_reg": 3200.0, "ials_weight": 0.5, "ials_rank": 32, "ials_reg": 0.3, "ials_alpha": 2.0,
         "ials_iterations": 8, "max_items": 6000}


def day(offset: int, ds: str = DS) -> str:
    """The date ``offset`` days after ``ds`` (negative: before)."""
    return (dt.date.fromisoformat(ds) + dt.timedelta(days=offset)).isoformat()


def spark_settings(settings: config.Settings, ds: str) -> dict:
    """The settings the Spark job records for these settings, as it parses them from its arguments."""
    return job_settings(add_model_args(base_parser("test")).parse_args(job_arguments(settings, "file:///lake", ds)))


def write_params(lake: Lake, ds: str, tuning_status: str = "tuned", rating: dict | None = None, top_n: dict | None = None,
                 tuning_version: int | None = TUNING_VERSION, **settings_changes) -> dict:
    """``models/ds=D/params.json`` as train.py writes it, for the settings of the environment (changed by
    ``settings_changes``, Spark job setting names) and the given chosen parameters."""
    settings = {**spark_settings(config.load(), ds), **settings_changes}
    extra = {"tuning_s": 37.1, "tuning_user_fraction": 1.0} if tuning_status == "tuned" else {}
    record = {
        "models": {
            "als_explicit": {"params": {**(rating or RATING), "seed": settings["seed"], **extra}, "metrics": {"rmse": 0.9}},
            "ease_ials": {"params": {**(top_n or TOP_N), "seed": settings["seed"], **extra}, "metrics": {"ndcg_at_10": 0.3}},
            "popularity": {"params": {"score": "number of ratings in training"}, "metrics": {"ndcg_at_10": 0.2}},
        },
        "protocol": {"tuning": tuning_status, "seed": settings["seed"], "k": settings["top_k"],
                     "tuning_version": tuning_version if tuning_status == "tuned" else None},
        "settings": settings,
    }
    lake.write_json(lake.zone(layout.MODELS, ds) / layout.MODEL_PARAMS, record)
    return record
