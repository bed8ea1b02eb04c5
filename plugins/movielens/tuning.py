"""Tune on a schedule; in between, reuse the parameters the last tuning run chose.

The rule (told once, in the docs' Models page): with tuning on and ``tune_every_days`` = N, the run of
``ds`` reuses the parameters chosen by the latest run of a date D with ``ds - N < D < ds`` that tuned
(a run that itself reused is never a source) with this :data:`TUNING_VERSION` and the same tuning inputs
(``spec.tuning_inputs()``); otherwise it tunes. Only dates before ``ds`` are read, so a rerun decides as
its first run did.

:func:`decide` reads ``models/ds=D/params.json`` through the lake (``file://``, ``s3://``, ``abfs://``
alike) and returns the :class:`~spark_jobs.common.spec.Tuning` that goes into the job's spec, the same
for every backend. Every reused value is checked against the spec before anything is submitted.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from movielens.lake import Lake
from spark_jobs.common import layout, spec
from spark_jobs.common.spec import OFF, REUSE, TUNE, TUNING_VERSION, Tuning

__all__ = ["TUNE", "REUSE", "OFF", "TUNING_VERSION", "TuningReuseError", "decide"]


class TuningReuseError(ValueError):
    """The parameters of the tuning run to reuse cannot be read or are not values the Spark job accepts."""

    def __init__(self, message: str):
        super().__init__(f"{message}. Fix or remove that file, or run this date with the tune param 'on' "
                         "(tunes afresh, reads no earlier run)")


def chosen_params(record: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(what each model of a ``params.json`` was fitted with, by setting name; the settings it lacks)."""
    chosen, missing = {}, []
    for model in spec.MODELS:
        params = ((record.get("models") or {}).get(model) or {}).get("params")
        params = params if isinstance(params, Mapping) else {}
        for param, setting in spec.model_settings(model).items():
            if param in params:
                chosen[setting.name] = params[param]
            else:
                missing.append(f"{model}.{param}")
    return chosen, missing


def _differences(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    absent = object()
    return [f"{name} {recorded.get(name, 'unset')} (now {wanted[name]})"
            for name in spec.tuning_inputs() if recorded.get(name, absent) != wanted[name]]


def _passed_over(record: Any, settings: Mapping[str, Any]) -> str | None:
    """Why a ``params.json`` is not a source of parameters for a run with ``settings``; None if it is."""
    run_spec = record.get("spec") if isinstance(record, Mapping) else None
    if not isinstance(run_spec, Mapping):
        return "no spec recorded (an older layout)"
    tuning = run_spec.get("tuning") or {}
    action = tuning.get("action")
    if action != TUNE:
        return {REUSE: f"reused the parameters of ds={tuning.get('source_ds')}", OFF: "tuning was off"}.get(
            action, f"tuning action {action!r}")
    if tuning.get("version") != TUNING_VERSION:
        return f"tuned by tuning version {tuning.get('version') or 'unrecorded'} (now {TUNING_VERSION})"
    differences = _differences(run_spec.get("settings") or {}, settings)
    if differences:
        return f"tuned with other settings: {', '.join(differences)}"
    missing = chosen_params(record)[1]
    if missing:
        return f"its params.json records no {', '.join(missing)} (an older layout)"
    return None


def decide(lake: Lake, settings: Mapping[str, Any], ds: str) -> Tuning:
    """Tune, reuse (and which parameters) or neither, for the run of ``ds`` with the run's ``settings``
    (every setting of the spec). Reads only dates before ``ds``."""
    layout.check_ds(ds)
    if not settings["tune"]:
        return Tuning(OFF, "tuning is off (MOVIELENS_TUNE=false, or the run's tune param): the configured values are used")
    days = settings["tune_every_days"]
    if days == 1:
        return Tuning(TUNE, "tuning in this run: MOVIELENS_TUNE_EVERY_DAYS=1, or the run's tune param is on")
    first = (dt.date.fromisoformat(ds) - dt.timedelta(days=days - 1)).isoformat()
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
        why = _passed_over(record, settings)
        if why:
            passed_over.append(f"ds={date}: {why}")
            continue
        reason = f"reusing the parameters tuned on ds={date} (tuning every {days} days; {where})"
        try:
            return spec.check_tuning({"action": REUSE, "reason": reason, "source_ds": date,
                                      "params": chosen_params(record)[0]}, settings)
        except spec.SpecError as err:
            raise TuningReuseError(f"{where}: {err}") from None
    why = f"no run from ds={first} to the day before tuned with these settings (tuning every {days} days)"
    return Tuning(TUNE, why + (f"; passed over {'; '.join(passed_over)}" if passed_over else ""))
