"""The run spec: every model, protocol, tuning and output setting of a run, defined once.

Each :class:`Setting` holds its name, type, default, bounds (or choices) and help. Everything else derives
from :data:`SETTINGS`: the environment variable ``MOVIELENS_<NAME>`` (``movielens.config``), the daily
DAG's trigger form (the settings with a ``title``, ``movielens.trigger_form``), the Spark job's one
``--spec`` argument (:func:`job_parser`), the tuning inputs a reused run must share
(``movielens.tuning``) and the records: ``models/ds=D/params.json`` keeps the :class:`JobSpec` a job ran
with, and the run summary shows it.

A :class:`JobSpec` is the settings plus the run's tuning decision (:class:`Tuning`: tune, reuse the
parameters an earlier date's tuning chose, or off), made on the Airflow side for every backend.

Standard library only: it ships to clusters with the jobs.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spark_jobs.common.layout import check_ds

# The models whose fits take settings (the names of train.RATING_MODEL and train.TOP_N_MODEL).
RATING_MODEL = "als_explicit"
TOP_N_MODEL = "ease_ials"
MODELS = (RATING_MODEL, TOP_N_MODEL)

#: The version of what tuning does (its grids, the models it tunes), recorded with a run that tuned. Raise
#: it when a grid or a tuned model changes: parameters chosen by another version are never reused.
TUNING_VERSION = 1


class SpecError(ValueError):
    """A setting's value, or a job spec, that the job does not accept."""


@dataclass(frozen=True)
class Setting:
    """One setting of a run. ``title`` set: the trigger form has a field for it. ``model`` and ``param``:
    the model whose fit takes it, under that name (tuning chooses some of them; a reusing run fits with
    all of them). ``tuning_input``: parameters tuned with another value are not reused."""

    name: str
    type: type  # int, float, bool or str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    title: str | None = None
    model: str | None = None
    param: str | None = None
    tuning_input: bool = False
    # A form choice -> other settings it sets too (the form's tune "on" tunes now: a one-day schedule).
    implies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def env(self) -> str:
        return "MOVIELENS_" + self.name.upper()

    def bounds_text(self) -> str:
        def number(x: float) -> str:
            return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"

        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"between {number(self.minimum)} and {number(self.maximum)}"
        if self.minimum is not None:
            return f"at least {number(self.minimum)}"
        return ""

    def check(self, value: Any, where: str | None = None) -> Any:
        """``value`` as this setting's type if it is one the job accepts, else :class:`SpecError`."""
        where = where or self.name
        if self.type is bool:
            if not isinstance(value, bool):
                raise SpecError(f"{where} must be true or false, got {value!r}")
            return value
        if self.type is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise SpecError(f"{where} must be {self.bounds_text() or 'a string'}, got {value!r}")
            return value
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or (self.type is int and value != int(value)):
            raise SpecError(f"{where} must be {'an integer' if self.type is int else 'a number'}, got {value!r}")
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise SpecError(f"{where} must be {self.bounds_text()}, got {value!r}")
        return self.type(value)

    def parse(self, text: str, where: str) -> Any:
        """A value written as text (an environment variable), checked."""
        raw = text.strip()
        if self.type is bool:
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise SpecError(f"{where} must be true or false, got {raw!r}")
        if self.type is str:
            return self.check(raw, where)
        try:
            value = int(raw) if self.type is int else float(raw)
        except ValueError:
            raise SpecError(f"{where} must be {'an integer' if self.type is int else 'a number'}, got {raw!r}") from None
        return self.check(value, where)


_R, _T = RATING_MODEL, TOP_N_MODEL

SETTINGS: tuple[Setting, ...] = (
    # The rating model: biases + explicit ALS on what the biases leave (spark_jobs/rating_model.py).
    Setting("als_rank", int, 20, "Latent factors of the explicit ALS (tuned unless tuning is off).", 1, 500,
            title="Rating model: ALS rank", model=_R, param="rank"),
    Setting("als_reg_param", float, 0.15, "Regularisation of the explicit ALS (tuned unless tuning is off).", 0, 10,
            title="Rating model: ALS regParam", model=_R, param="reg_param"),
    Setting("als_max_iter", int, 10, "Iterations of the explicit ALS, in tuning trials too.", 1, 100,
            title="Rating model: ALS iterations", model=_R, param="max_iter", tuning_input=True),
    Setting("bias_reg_user", float, 5.0, "Shrinkage of the user biases (tuned unless tuning is off).", 0, 10_000,
            model=_R, param="reg_user"),
    Setting("bias_reg_item", float, 5.0, "Shrinkage of the movie biases (tuned unless tuning is off).", 0, 10_000,
            model=_R, param="reg_item"),
    # The top-N model: EASE blended with implicit ALS (spark_jobs/top_n_model.py).
    Setting("ease_reg", float, 400.0, "L2 regularisation of EASE (tuned unless tuning is off).", 1, 1_000_000,
            title="Top-N model: EASE regularisation", model=_T, param="ease_reg"),
    Setting("ials_weight", float, 1.0, "Weight of implicit ALS in the blend with EASE; 0 is EASE alone (tuned "
            "unless tuning is off).", 0, 100, title="Top-N model: iALS weight", model=_T, param="ials_weight"),
    Setting("ials_rank", int, 32, "Latent factors of implicit ALS.", 1, 500, model=_T, param="ials_rank",
            tuning_input=True),
    Setting("ials_reg", float, 0.3, "Regularisation of implicit ALS (times each row's number of ratings).", 0, 1000,
            model=_T, param="ials_reg", tuning_input=True),
    Setting("ials_alpha", float, 2.0, "Confidence of a rating in implicit ALS: 1 + alpha.", 0, 10_000,
            model=_T, param="ials_alpha", tuning_input=True),
    Setting("ials_iterations", int, 8, "Iterations of implicit ALS.", 1, 100, model=_T, param="ials_iterations",
            tuning_input=True),
    Setting("top_n_max_items", int, 6000, "The top-N model covers this many most-rated movies; EASE inverts a "
            "float64 matrix of that size on the Spark driver (20,000 movies: 3.2 GB per copy).", 10, 20_000,
            title="Top-N model: movies covered", model=_T, param="max_items", tuning_input=True),
    # The evaluation protocol (spark_jobs/evaluation.py).
    Setting("split", str, "random", "The evaluation protocol's split: random (each movie's ratings split at "
            "random, stratified) or time (each user's latest ratings held out, as the next days would bring them).",
            choices=("random", "time"), title="Evaluation split", tuning_input=True),
    Setting("test_fraction", float, 0.25, "Share of each movie's (random) or each user's (time) ratings held out "
            "for the test.", 0.01, 0.99, tuning_input=True),
    Setting("seed", int, 42, "Seed of the split, the tuning split (seed + 1), the models and the synthetic data.",
            0, 2**31 - 1, tuning_input=True),
    Setting("top_k", int, 10, "k of the ranking metrics (precision@k, NDCG@k, ...).", 1, 100, tuning_input=True),
    # Tuning.
    Setting("tune", bool, True, "Tune both models on a validation split of the training part, on the schedule "
            "of tune_every_days; off: use the values as given. The form's 'on' tunes in this run.",
            title="Tune the models", implies={"on": {"tune_every_days": 1}}),
    Setting("tune_every_days", int, 7, "With tuning on, reuse the parameters of the latest run of the previous "
            "N - 1 days that tuned with the same tuning inputs, and tune when there is none; 1 tunes in every run.",
            1, 365, title="Tune every N days"),
    Setting("validation_fraction", float, 0.25, "Share of the training part held out to tune on.", 0.01, 0.99,
            tuning_input=True),
    Setting("tune_max_users", int, 10_000, "Tune on a hash sample of at most this many users (faster on big "
            "data).", 100, 10_000_000, title="Tuning sample (users)", tuning_input=True),
    # Outputs.
    Setting("refit", str, "top-n", "Models refit on every rating up to the date after evaluation: top-n (the "
            "product's model), all (also the rating model, whose factors give similar "
            "movies from als-factors), none.",
            choices=("top-n", "all", "none"), title="Refit after evaluation"),
    Setting("liked_threshold", float, 4.0, "A rating at least this high counts as liked (silver tables).", 0.5, 5),
    Setting("recommendations_per_user", int, 20, "Recommendations kept per user.", 1, 1000),
    Setting("similar_per_movie", int, 50, "Similar movies kept per movie.", 1, 1000),
    Setting("similar_source", str, "item-knn", "What similar movies come from: item-knn (cosine of the movies' "
            "liked-by-user vectors) or als-factors (cosine of the rating model's ALS movie factors); "
            "bench/RESULTS.md compares them.", choices=("item-knn", "als-factors")),
    Setting("knn_liked_threshold", float, 3.0, "Item-kNN (the similar movies' item-knn source and the evaluated "
            "item_knn model): a rating at least this high counts as a like.", 0.5, 5),
    Setting("knn_neighbours", int, 100, "Neighbours per movie of the evaluated item_knn model.", 1, 10_000),
    Setting("similar_min_ratings", int, 10, "A movie is another's similar movie only with at least this many "
            "ratings (rarely rated movies have noisy neighbours).", 1, 1_000_000_000),
    Setting("popular_min_ratings", int, 50, "Ratings a movie needs to be ranked among the popular movies.", 1,
            1_000_000_000),
    Setting("popular_top_n", int, 20, "Movies per popularity ranking.", 1, 1000),
    Setting("fallback_window_days", int, 365, "The cold-start list (users the served model does not know) ranks "
            "movies by their ratings in the last this many days of the history, up to its latest rating; 0 counts "
            "every rating.", 0, 36_500),
    # Publishing: the gate between the day's lists and the served ones (spark_jobs/gate.py).
    Setting("publish", str, "gate", "gate: the day's lists are served only when their models are not worse "
            "than the served ones' beyond the tolerances, on the day's test split; force: served whatever the "
            "comparison says. The first run always publishes.", choices=("gate", "force"),
            title="Publish the day's lists"),
    Setting("gate_ndcg_tolerance", float, 0.02, "The gate holds the day's lists back when the top-N model's "
            "NDCG@k is lower than the served model's by more than this share.", 0, 1),
    Setting("gate_rmse_tolerance", float, 0.02, "The gate holds the day's lists back when the rating model's "
            "RMSE is higher than the served model's by more than this share.", 0, 10),
    # The daily checks of what landed (spark_jobs/drift.py).
    Setting("drift_window_days", int, 7, "Earlier dates with ratings that volume and rating shift are measured "
            "against.", 1, 365),
    Setting("volume_alert_ratio", float, 5.0, "A data incident email when a date lands this many times the "
            "trailing median of ratings or more, or that many times less (or none at all).", 1.1, 1_000_000),
    Setting("psi_alert", float, 0.25, "A data incident email when the population stability index of the rating "
            "values against the trailing dates is above this.", 0, 100),
)


def by_name() -> dict[str, Setting]:
    return {setting.name: setting for setting in SETTINGS}


def defaults() -> dict[str, Any]:
    return {setting.name: setting.default for setting in SETTINGS}


def tuning_inputs() -> tuple[str, ...]:
    """The settings that change what tuning would choose (the split, the tuning sample, the fixed parts of
    both models' fits): a tuning run's parameters are reused only by runs with the same values."""
    return tuple(setting.name for setting in SETTINGS if setting.tuning_input)


def model_settings(model: str) -> dict[str, Setting]:
    """The settings ``model``'s fit takes, by that fit's parameter name."""
    return {setting.param: setting for setting in SETTINGS if setting.model == model}


def model_defaults(model: str) -> dict[str, Any]:
    """The defaults of what ``model``'s fit takes, by its parameter names."""
    return {param: setting.default for param, setting in model_settings(model).items()}


def resolve(values: Mapping[str, Any] | None = None, where: str = "setting") -> dict[str, Any]:
    """Every setting: ``values`` (checked) over the defaults. Unknown names are refused."""
    values = dict(values or {})
    known = by_name()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SpecError(f"unknown {where}s {unknown}; known: {sorted(known)}")
    resolved = defaults()
    for name, value in values.items():
        resolved[name] = known[name].check(value, f"{where} {name}")
    return resolved


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """Every setting from its ``MOVIELENS_<NAME>`` variable (empty or unset: the default)."""
    values = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env, "").strip()
        if raw:
            values[setting.name] = setting.parse(raw, setting.env)
    return resolve(values)


# --- the trigger form's values --------------------------------------------------------------------

#: A choice field's value that follows the environment (a number field follows it when left empty).
FOLLOW_ENV = "default"
#: A yes/no setting's choices on the form (a switch cannot say "follow the environment").
BOOL_CHOICES = {"on": True, "off": False}


def form_settings() -> tuple[Setting, ...]:
    return tuple(setting for setting in SETTINGS if setting.title)


def form_choices(setting: Setting) -> dict[str, Any]:
    """A choice field's values -> the setting's values (empty for a number field)."""
    if setting.type is bool:
        return dict(BOOL_CHOICES)
    return {choice: choice for choice in setting.choices}


def form_overrides(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings a run's form values set (fields left to follow the environment are left out), checked.

    Airflow checks a run's params against the form's schema when the run is created; the same bounds are
    checked here for callers outside a DAG run.
    """
    params = params or {}
    overrides: dict[str, Any] = {}
    for setting in form_settings():
        value = params.get(setting.name)
        if value is None or value == FOLLOW_ENV:
            continue
        choices = form_choices(setting)
        if choices:
            if value not in choices:
                raise SpecError(f"param {setting.name} must be one of {(FOLLOW_ENV, *choices)}, got {value!r}")
            overrides[setting.name] = choices[value]
        else:
            overrides[setting.name] = setting.check(value, f"param {setting.name}")
    for setting in form_settings():
        implied = setting.implies.get(params.get(setting.name)) if isinstance(params.get(setting.name), str) else None
        overrides.update(implied or {})
    return overrides


# --- the job spec: settings + the run's tuning decision ---------------------------------------------

TUNE, REUSE, OFF = "tune", "reuse", "off"


@dataclass(frozen=True)
class Tuning:
    """What the job does about tuning, and why. ``reuse``: fit with ``params`` (every model setting, by
    setting name) that the tuning run of ``source_ds`` chose."""

    action: str
    reason: str
    source_ds: str | None = None
    params: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"action": self.action, "reason": self.reason, "source_ds": self.source_ds}
        if self.params is not None:
            record["params"] = dict(self.params)
        return record


def reused_setting_names() -> tuple[str, ...]:
    """The settings a reusing run takes from the tuning run: everything the two models' fits take."""
    return tuple(setting.name for setting in SETTINGS if setting.model)


def check_tuning(value: Any, settings: Mapping[str, Any]) -> Tuning:
    if not isinstance(value, Mapping):
        raise SpecError(f"tuning must be an object, got {value!r}")
    unknown = sorted(set(value) - {"action", "reason", "source_ds", "params"})
    if unknown:
        raise SpecError(f"unknown tuning keys {unknown}")
    action, reason = value.get("action"), value.get("reason", "")
    if action not in (TUNE, REUSE, OFF):
        raise SpecError(f"tuning action must be one of {(TUNE, REUSE, OFF)}, got {action!r}")
    if not isinstance(reason, str):
        raise SpecError(f"tuning reason must be text, got {reason!r}")
    if (action == OFF) == settings["tune"]:
        raise SpecError(f"tuning action {action!r} contradicts tune={settings['tune']}: 'off' goes with tune=false")
    params, source = value.get("params"), value.get("source_ds")
    if action != REUSE:
        if params is not None or source is not None:
            raise SpecError(f"tuning action {action!r} takes no params or source_ds")
        return Tuning(action, reason)
    try:
        check_ds(source)
    except ValueError as err:
        raise SpecError(f"tuning source_ds: {err}") from None
    if not isinstance(params, Mapping):
        raise SpecError(f"tuning params must be an object, got {params!r}")
    expected = set(reused_setting_names())
    if set(params) != expected:
        missing, unknown = sorted(expected - set(params)), sorted(set(params) - expected)
        raise SpecError(f"reused parameters need exactly {sorted(expected)}"
                        + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
    known = by_name()
    checked = {name: known[name].check(params[name], f"reused {name}") for name in sorted(params)}
    return Tuning(REUSE, reason, source, checked)


@dataclass(frozen=True)
class JobSpec:
    """The settings a Spark job runs with and the run's tuning decision."""

    settings: Mapping[str, Any]
    tuning: Tuning

    @classmethod
    def build(cls, settings: Mapping[str, Any] | None = None, tuning: Tuning | Mapping | None = None) -> "JobSpec":
        """Settings over the defaults, checked; without a decision: tune (tuning on) or off, as given."""
        resolved = resolve(settings)
        if tuning is None:
            tuning = Tuning(TUNE, "tuning in this run (no decision given to the job)") if resolved["tune"] else \
                Tuning(OFF, "tuning is off: the configured values are used")
        if isinstance(tuning, Tuning):
            tuning = tuning.to_dict()
        return cls(resolved, check_tuning(tuning, resolved))

    @classmethod
    def from_json(cls, text: str) -> "JobSpec":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"the spec is not JSON ({err})") from None
        if not isinstance(value, Mapping) or set(value) - {"settings", "tuning"}:
            raise SpecError('the spec must be an object {"settings": {...}, "tuning": {...}} (both optional)')
        return cls.build(value.get("settings"), value.get("tuning"))

    def to_json(self) -> str:
        """Compact JSON: one argument, no spaces, whatever passes it on (spark-submit, an EMR step, Databricks)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        return {"settings": dict(self.settings), "tuning": self.tuning.to_dict()}

    def fit_params(self, model: str) -> dict[str, Any]:
        """What ``model`` is fitted with (by its fit's parameter names): the reused values, else the settings."""
        chosen = self.tuning.params or self.settings
        return {param: chosen[setting.name] for param, setting in model_settings(model).items()}

    def record(self, tuned: bool) -> dict[str, Any]:
        """What ``params.json`` keeps: the settings and the decision (reused values are in the models' params)."""
        tuning = {key: value for key, value in self.tuning.to_dict().items() if key != "params"}
        tuning["version"] = TUNING_VERSION if tuned else None
        return {"settings": dict(self.settings), "tuning": tuning}


def job_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of every Spark entry point: where, when, and the spec."""

    def spec_arg(text: str) -> JobSpec:
        try:
            return JobSpec.from_json(text)
        except SpecError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    settings_help = "; ".join(f"{s.name} ({s.type.__name__}, default {s.default!r})" for s in SETTINGS)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lake-root", required=True, help="lake root URL as Spark sees it (file:///..., s3a://...)")
    parser.add_argument("--ds", required=True, type=check_ds, help="the run's logical date, YYYY-MM-DD")
    parser.add_argument("--spec", type=spec_arg, default=JobSpec.build(), metavar="JSON",
                        help='{"settings": {...}, "tuning": {"action": "tune"|"reuse"|"off", "reason": ..., '
                        '"source_ds": ..., "params": {...}}}, both optional; settings: ' + settings_help)
    return parser
