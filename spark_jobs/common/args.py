"""Command-line arguments shared by every job: the lake root, the run date and model parameters."""

from __future__ import annotations

import argparse

from spark_jobs.common.layout import check_ds


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
