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
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--reg-param", type=float, default=0.1)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--liked-threshold", type=float, default=4.0)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--recommendations", type=int, default=20, help="recommendations kept per user")
    parser.add_argument("--similar-movies", type=int, default=50, help="similar movies kept per movie")
    parser.add_argument("--popular-min-ratings", type=int, default=50, help="ratings a movie needs to be ranked as popular")
    parser.add_argument("--popular-top-n", type=int, default=20, help="movies per popularity ranking")
    return parser
