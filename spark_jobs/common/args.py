"""Command-line arguments shared by every job: the lake root, the run date and model parameters."""

from __future__ import annotations

import argparse
import json
import math

from spark_jobs.common.layout import check_ds

# What ``protocol.tuning`` of ``models/ds=D/params.json`` says about the parameters of the date's models:
# chosen by tuning in that run, reused from the tuning run of an earlier date, or as configured.
TUNED = "tuned"
REUSED_FROM = "reused from ds={ds}"
TUNING_OFF = "off"
#: The version of what tuning does (its grids, the models it tunes), recorded as ``protocol.tuning_version``
#: by a run that tuned. Raise it when a grid or a tuned model changes: parameters chosen by another
#: version are never reused (``movielens.tuning``), so the first run after the change tunes afresh.
TUNING_VERSION = 1

#: The parameters ``--reuse-params`` carries, per model (the names of ``train.RATING_MODEL`` and
#: ``train.TOP_N_MODEL``), with the type and bounds the job accepts: (type, minimum, maximum or None).
#: A tuning run records them under ``models`` of its ``params.json``; the bounds of the settings that
#: the trigger form also sets are the form's (``movielens.config.RUN_SETTINGS``).
REUSABLE_PARAMS: dict[str, dict[str, tuple[type, float, float | None]]] = {
    "als_explicit": {"rank": (int, 1, 500), "reg_param": (float, 0.0, 10.0), "max_iter": (int, 1, 100),
                     "reg_user": (float, 0.0, None), "reg_item": (float, 0.0, None)},
    "ease_ials": {"ease_reg": (float, 1.0, 1_000_000.0), "ials_weight": (float, 0.0, 100.0),
                  "ials_rank": (int, 1, None), "ials_reg": (float, 0.0, None), "ials_alpha": (float, 0.0, None),
                  "ials_iterations": (int, 1, None), "max_items": (int, 10, 20_000)},
}


def check_reuse_params(value) -> dict:
    """The value of ``--reuse-params`` if the job accepts it, else ValueError saying what is wrong.

    ``{"ds": "<the date whose tuning chose them>", "als_explicit": {...}, "ease_ials": {...}}`` with every
    parameter of :data:`REUSABLE_PARAMS`, no other, each of its type (an integer for a number is fine)
    and within its bounds. Returns it with numbers as their types.
    """
    if not isinstance(value, dict):
        raise ValueError(f"reused parameters must be a JSON object, got {type(value).__name__}")
    expected = {"ds", *REUSABLE_PARAMS}
    if set(value) != expected:
        missing, unknown = sorted(expected - set(value)), sorted(set(value) - expected)
        raise ValueError(f"reused parameters need exactly the keys {sorted(expected)}"
                         + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
    checked: dict = {"ds": check_ds(value["ds"])}
    for model, specs in REUSABLE_PARAMS.items():
        params = value[model]
        if not isinstance(params, dict):
            raise ValueError(f"reused parameters of {model} must be an object, got {params!r}")
        if set(params) != set(specs):
            missing, unknown = sorted(set(specs) - set(params)), sorted(set(params) - set(specs))
            raise ValueError(f"reused parameters of {model} need exactly {sorted(specs)}"
                             + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
        checked[model] = {}
        for name, (kind, low, high) in specs.items():
            raw = params[name]
            number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
            if not number or not math.isfinite(raw) or (kind is int and raw != int(raw)):
                raise ValueError(f"reused {model}.{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}")
            if raw < low or (high is not None and raw > high):
                bounds = f"between {low} and {high}" if high is not None else f">= {low}"
                raise ValueError(f"reused {model}.{name} must be {bounds}, got {raw!r}")
            checked[model][name] = kind(raw)
    return checked


def reuse_params_arg(text: str) -> dict:
    """argparse type of ``--reuse-params``: JSON checked by :func:`check_reuse_params`."""
    try:
        return check_reuse_params(json.loads(text))
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text!r}") from None
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lake-root", required=True, help="lake root URL as Spark sees it (file:///..., s3a://...)")
    parser.add_argument("--ds", required=True, type=check_ds, help="the run's logical date, YYYY-MM-DD")
    return parser


def add_model_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Model, evaluation and output settings; defaults are the documented protocol and tuned starting points."""
    g = parser.add_argument_group("rating model (biases + explicit ALS); used as given with --no-tune")
    g.add_argument("--rank", type=int, default=20)
    g.add_argument("--reg-param", type=float, default=0.15)
    g.add_argument("--max-iter", type=int, default=10)
    g.add_argument("--reg-user", type=float, default=5.0, help="shrinkage of the user biases")
    g.add_argument("--reg-item", type=float, default=5.0, help="shrinkage of the movie biases")
    g = parser.add_argument_group("top-N model (EASE + implicit ALS)")
    g.add_argument("--ease-reg", type=float, default=400.0, help="EASE regularisation (tuned unless --no-tune)")
    g.add_argument("--ials-weight", type=float, default=1.0, help="weight of implicit ALS in the blend (tuned unless --no-tune)")
    g.add_argument("--ials-rank", type=int, default=32)
    g.add_argument("--ials-reg", type=float, default=0.3)
    g.add_argument("--ials-alpha", type=float, default=2.0)
    g.add_argument("--ials-iterations", type=int, default=8)
    g.add_argument("--max-items", type=int, default=6000, help="the top-N model covers this many most-rated movies")
    g = parser.add_argument_group("protocol")
    g.add_argument("--test-fraction", type=float, default=0.25)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--top-k", type=int, default=10, help="k of the ranking metrics")
    g.add_argument("--tune", action=argparse.BooleanOptionalAction, default=True,
                   help="tune both models on a validation split of the training part")
    g.add_argument("--validation-fraction", type=float, default=0.25)
    g.add_argument("--tune-max-users", type=int, default=10_000, help="tune on a hash sample of this many users at most")
    g.add_argument("--reuse-params", type=reuse_params_arg, default=None, metavar="JSON",
                   help="with --tune: skip tuning and fit both models with these parameters, chosen by the tuning "
                   'run of an earlier date: {"ds": "YYYY-MM-DD", "als_explicit": {...}, "ease_ials": {...}} '
                   "(every parameter of REUSABLE_PARAMS)")
    g.add_argument("--refit", choices=("top-n", "all", "none"), default="top-n",
                   help="models refit on every rating after evaluation: the top-N model (its lists are the product), "
                   "all (also the rating model, whose item factors give similar movies), or none")
    g = parser.add_argument_group("outputs")
    g.add_argument("--liked-threshold", type=float, default=4.0)
    g.add_argument("--recommendations", type=int, default=20, help="recommendations kept per user")
    g.add_argument("--similar-movies", type=int, default=50, help="similar movies kept per movie")
    g.add_argument("--popular-min-ratings", type=int, default=50, help="ratings a movie needs to be ranked as popular")
    g.add_argument("--popular-top-n", type=int, default=20, help="movies per popularity ranking")
    return parser


# Arguments that say where and when, not how: left out of the recorded settings.
_NOT_SETTINGS = ("lake_root", "ds", "stages")


def job_settings(args: argparse.Namespace) -> dict:
    """The model, protocol and output settings a job ran with, as recorded in its report and params.json."""
    return {key: value for key, value in sorted(vars(args).items()) if key not in _NOT_SETTINGS}
