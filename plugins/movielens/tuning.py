"""Tune on a schedule; in between, reuse the parameters the last tuning run chose.

Tuning both models is most of a daily run's training time (128 s of 175 s on ml-latest-small), and the
parameters it chooses change slowly. With tuning on (``MOVIELENS_TUNE``) and ``MOVIELENS_TUNE_EVERY_DAYS``
= N, the run of date ``ds``:

- reuses the parameters chosen by the latest run of a date D with ``ds - N < D < ds`` that **tuned**
  (``protocol.tuning == "tuned"`` in ``models/ds=D/params.json``; a run that itself reused is never a
  source) by the same tuning code (``protocol.tuning_version`` = ``TUNING_VERSION``: grids and models) and
  with the same :data:`TUNING_INPUTS` as this run's Spark job gets (seed, split, k, the tuning sample, the
  fixed parameters of both models' fits);
- tunes when there is no such run. So one tuning serves at most the N - 1 dates after it, and N = 1 tunes
  in every run.

``MOVIELENS_TUNE=false`` (or a run's ``tune`` param ``off``) turns tuning off: the configured values are
used and nothing is read. A run's ``tune`` param ``on`` tunes in that run whatever the schedule
(``config.RUN_SETTINGS``: it sets ``tune_every_days`` to 1).

Only dates strictly before ``ds`` are read, so a rerun of ``ds`` decides as its first run did; backfills run
in date order (``wait_for_earlier_runs``), so each date sees the choices of the dates before it.

The decision is made on the Airflow side, through the lake's ``ObjectStoragePath`` (``file://``, ``s3://``,
``abfs://`` alike), and reaches the Spark job on every backend (local, Databricks, EMR, EMR Serverless)
the way every setting does: ``settings_for_run`` puts the parameters in ``Settings.reuse_params`` and
``movielens.compute.job_arguments`` passes them as ``--reuse-params``. Every value is checked against what
the job accepts (``spark_jobs.common.args.check_reuse_params``) before anything is submitted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from movielens import config
from movielens.lake import Lake
from spark_jobs.common import layout
from spark_jobs.common.args import (REUSABLE_PARAMS, TUNED, TUNING_VERSION, add_model_args, base_parser,
                                    check_reuse_params, job_settings)

log = logging.getLogger(__name__)

#: The Spark job's settings (as ``params.json`` records them) that change what tuning would choose: the
#: split (seed, test fraction) and so the training part tuning sees, the validation split, the metric's k,
#: the tuning sample, and the parameters both models' fits take as given (ALS iterations, the movies the
#: top-N model covers, its iALS part). The tuned values themselves (rank, regParam, EASE regularisation,
#: blend weight) and output settings (refit, list lengths, liked threshold) do not matter.
TUNING_INPUTS = ("seed", "test_fraction", "validation_fraction", "top_k", "tune_max_users", "max_iter",
                 "max_items", "ials_rank", "ials_reg", "ials_alpha", "ials_iterations")

TUNE, REUSE, OFF = "tune", "reuse", "off"


class TuningReuseError(ValueError):
    """The parameters of the tuning run to reuse cannot be read or are not values the Spark job accepts."""

    def __init__(self, message: str):
        super().__init__(f"{message}. Fix or remove that file, or run this date with the tune param 'on' "
                         "(tunes afresh, reads no earlier run)")


@dataclass(frozen=True)
class Decision:
    """What the Spark job of a run does about tuning, and why."""

    action: str  # TUNE, REUSE or OFF
    reason: str
    # REUSE: the --reuse-params value, {"ds": <the tuning run's date>, <model>: {<param>: value}}.
    reuse_params: Mapping[str, Any] | None = None

    @property
    def source_ds(self) -> str | None:
        return self.reuse_params["ds"] if self.reuse_params else None


def job_tuning_inputs(settings: config.Settings, ds: str) -> dict[str, Any]:
    """The :data:`TUNING_INPUTS` of the settings this run's Spark job parses from its arguments (the job's
    own defaults included), as ``params.json`` records them."""
    from movielens.compute import job_arguments

    arguments = job_arguments(dataclasses.replace(settings, reuse_params=None), "file:///lake", ds)
    parsed = job_settings(add_model_args(base_parser("tuning inputs")).parse_args(arguments))
    return {key: parsed[key] for key in TUNING_INPUTS}


def missing_params(record: Mapping[str, Any]) -> list[str]:
    """The parameters of :data:`REUSABLE_PARAMS` a ``params.json`` does not record (``model.param``): one
    written before a parameter existed cannot be reused, and the run tunes."""
    missing = []
    for model, names in REUSABLE_PARAMS.items():
        params = ((record.get("models") or {}).get(model) or {}).get("params")
        params = params if isinstance(params, Mapping) else {}
        missing += [f"{model}.{name}" for name in names if name not in params]
    return missing


def reusable_params(record: Mapping[str, Any], ds: str, where: str) -> dict[str, Any]:
    """The ``--reuse-params`` value of a tuning run's ``params.json`` (``record``, of date ``ds``, at ``where``)
    that records every parameter (:func:`missing_params` is empty).

    Raises :class:`TuningReuseError` naming the file and the value when a value is not one the Spark job
    accepts (a wrong type, out of bounds).
    """
    reuse: dict[str, Any] = {"ds": ds}
    for model, names in REUSABLE_PARAMS.items():
        params = record["models"][model]["params"]
        reuse[model] = {name: params[name] for name in names}
    try:
        return check_reuse_params(reuse)
    except ValueError as err:
        raise TuningReuseError(f"{where}: {err}") from None


def _differences(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    missing = object()
    return [f"{key} {recorded.get(key, 'unset')} (now {wanted[key]})"
            for key in TUNING_INPUTS if recorded.get(key, missing) != wanted[key]]


def decide(lake: Lake, settings: config.Settings, ds: str) -> Decision:
    """Tune, reuse (and which parameters) or neither, for the run of ``ds``. Reads only dates before ``ds``."""
    layout.check_ds(ds)
    if not settings.tune:
        return Decision(OFF, "tuning is off (MOVIELENS_TUNE=false, or the run's tune param): the configured values are used")
    days = settings.tune_every_days
    if days == 1:
        return Decision(TUNE, "tuning in this run: MOVIELENS_TUNE_EVERY_DAYS=1, or the run's tune param is on")
    first = (dt.date.fromisoformat(ds) - dt.timedelta(days=days - 1)).isoformat()
    wanted = job_tuning_inputs(settings, ds)
    passed_over: list[str] = []
    for date in reversed(lake.partition_dates(lake.path(layout.MODELS), ds)):
        if date >= ds:
            continue
        if date < first:
            break
        path = lake.zone(layout.MODELS, date) / layout.MODEL_PARAMS
        if not path.exists():
            continue
        where = lake.uri(path)
        try:
            record = lake.read_json(path)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise TuningReuseError(f"{where} is not JSON ({err})") from None
        status = (record.get("protocol") or {}).get("tuning") if isinstance(record, dict) else None
        if status != TUNED:
            passed_over.append(f"ds={date}: {status or 'no protocol.tuning'}")
            continue
        version = record["protocol"].get("tuning_version")
        if version != TUNING_VERSION:
            passed_over.append(f"ds={date}: tuned by tuning version {version or 'unrecorded'} (now {TUNING_VERSION})")
            continue
        differences = _differences(record.get("settings") or {}, wanted)
        if differences:
            passed_over.append(f"ds={date}: tuned with other settings: {', '.join(differences)}")
            continue
        missing = missing_params(record)
        if missing:
            passed_over.append(f"ds={date}: its params.json records no {', '.join(missing)} (an older layout)")
            continue
        reuse = reusable_params(record, date, where)
        return Decision(REUSE, f"reusing the parameters tuned on ds={date} (tuning every {days} days; "
                        f"{where})", reuse)
    why = f"no run from ds={first} to the day before tuned with these settings (tuning every {days} days)"
    return Decision(TUNE, why + (f"; passed over {'; '.join(passed_over)}" if passed_over else ""))


# The Spark entry points that train (and so tune) the models.
TRAINING_JOBS = ("daily.py", "train.py")


def settings_for_run(run_params: Mapping[str, Any] | None, ds: str, job: str = "daily.py") -> config.Settings:
    """``config.load(run_params)`` for the Spark job ``job`` of ``ds``; for a job that trains, with the tuned
    parameters to reuse, if any (:func:`decide`), in ``reuse_params``. Every backend builds the job's
    arguments from these."""
    settings = config.load(run_params)
    if job not in TRAINING_JOBS:
        return settings
    decision = decide(Lake.from_settings(settings), settings, ds)
    log.info("tuning for ds=%s: %s: %s", ds, decision.action, decision.reason)
    return dataclasses.replace(settings, reuse_params=decision.reuse_params)
