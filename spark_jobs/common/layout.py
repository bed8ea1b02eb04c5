"""The lake contract as plain strings: zones, partitions and table locations.

This module is the single definition of the layout. The Airflow side (``movielens.lake``) imports it
and wraps the strings in ``ObjectStoragePath``; the Spark jobs use the strings directly. Standard
library only, so it ships to clusters with the jobs.

    <root>/landing/ds=YYYY-MM-DD/<file>.csv        files as they arrive
    <root>/validated/ds=YYYY-MM-DD/<file>.csv      byte-identical copies of files that passed
    <root>/rejected/ds=YYYY-MM-DD/<file>.csv       byte-identical copies of files that failed
    <root>/rejected/ds=YYYY-MM-DD/<stem>.report.json   why
    <root>/bronze/<table>/ds=YYYY-MM-DD/           Parquet, typed copy of that date's validated files
    <root>/silver/<table>/ds=YYYY-MM-DD/           Parquet, clean tables as of that date
    <root>/gold/<table>/ds=YYYY-MM-DD/             Parquet, products: recommendations, metrics, ...
    <root>/models/ds=YYYY-MM-DD/                   model artifacts and parameters
    <root>/reports/ds=YYYY-MM-DD/run_summary.json  one summary per run
    <root>/reports/ds=YYYY-MM-DD/files/<file>.json routing record per landed file
    <root>/reports/ds=YYYY-MM-DD/data_docs/index.html  Great Expectations Data Docs of the validations
    <root>/reports/ds=YYYY-MM-DD/report.html       the run's HTML report (plots of the gold tables, metrics)
    <root>/reports/ds=YYYY-MM-DD/publication.json  whether that date's lists are served, and why
"""

from __future__ import annotations

import datetime as _dt
import re

LANDING = "landing"
VALIDATED = "validated"
REJECTED = "rejected"
BRONZE = "bronze"
SILVER = "silver"
GOLD = "gold"
MODELS = "models"
REPORTS = "reports"
CLAIMS = "claims"  # claims/ds=D.json: the run writing date D (movielens.lake.Lake.claim_date); gone when it ends

FILE_ZONES = (LANDING, VALIDATED, REJECTED)
TABLE_ZONES = (BRONZE, SILVER, GOLD)
ZONES = FILE_ZONES + TABLE_ZONES + (MODELS, REPORTS)

# A file's kind is its name prefix, as in MovieLens' CSV layout (ratings.csv, movies.csv, ...).
FILE_KINDS = ("ratings", "movies", "tags", "links")

RUN_SUMMARY = "run_summary.json"
SPARK_REPORT = "spark_job.json"
MODEL_PARAMS = "params.json"  # models/ds=D/params.json: the models' parameters, metrics, protocol and settings
DATA_DOCS = "data_docs"  # reports/ds=D/data_docs/index.html: GX Data Docs of the run's validations
RUN_REPORT = "report.html"  # reports/ds=D/report.html: the run's report, one self-contained HTML file
PUBLICATION = "publication.json"  # reports/ds=D/publication.json: whether D's lists were served (the gate)
ROUTING_RECORDS = "files"
#: Spark writes it into a table partition last, when the partition is whole. Readers of earlier dates take only
#: partitions that have it (``spark_jobs.common.session.table_dates``): a job stopped mid-write leaves none.
COMPLETE_MARKER = "_SUCCESS"
REPORT_SUFFIX = ".report.json"

_DS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_ds(ds: str) -> str:
    """Return ``ds`` if it is a real YYYY-MM-DD date, else raise ValueError saying so."""
    if not isinstance(ds, str) or not _DS_RE.match(ds):
        raise ValueError(f"ds must be a date as YYYY-MM-DD, got {ds!r}")
    try:
        _dt.date.fromisoformat(ds)
    except ValueError:
        raise ValueError(f"ds must be a real calendar date, got {ds!r}") from None
    return ds


def partition(ds: str) -> str:
    return f"ds={check_ds(ds)}"


def is_published(record: dict | None) -> bool:
    """Whether a date's lists were served, from its publication record: served unless it says held back
    (a date without a record, from before the gate existed, was served)."""
    return record is None or bool(record.get("published", True))


def served_date(listed: list[str], published, before: str | None = None) -> str | None:
    """The date whose lists are served: the latest of ``listed`` (dates with lists; < ``before`` if given)
    for which ``published(date)`` is true. Every reader of the served lists goes through this rule."""
    for date in sorted((d for d in listed if before is None or d < before), reverse=True):
        if published(date):
            return date
    return None


COMPRESSED_SUFFIXES = (".gz", ".zip", ".bz2", ".xz", ".zst")


def claimed_kind(file_name: str) -> str | None:
    """The kind a file's name claims, whatever its extension (``ratings.csv.gz`` -> ``ratings``), or None."""
    base = file_name.rsplit("/", 1)[-1].lower()
    return next((kind for kind in FILE_KINDS if base.startswith(kind)), None)


def file_kind(file_name: str) -> str | None:
    """The kind of a landed file from its name (``ratings_2024.csv`` -> ``ratings``), or None: a readable
    MovieLens file is a ``.csv`` whose name starts with its kind."""
    return claimed_kind(file_name) if file_name.lower().endswith(".csv") else None


def report_name(file_name: str) -> str:
    """Name of the report beside a rejected file: it starts with the file's stem."""
    stem = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
    return stem + REPORT_SUFFIX


def join(root: str, *parts: str) -> str:
    """``root/part/...``; with an empty root, a path relative to the lake root (what records keep)."""
    return "/".join(([root.rstrip("/")] if root else []) + [p.strip("/") for p in parts if p])


def relative(root: str, url: str) -> str:
    """``url`` relative to the lake root ``root`` (what records keep: true wherever Spark ran)."""
    base = root.rstrip("/") + "/"
    if not url.startswith(base):
        raise ValueError(f"{url!r} is not inside the lake root {root!r}")
    return url[len(base):].rstrip("/")


def zone_dir(root: str, zone: str, ds: str) -> str:
    """``<root>/<zone>/ds=<ds>`` for the dated zones (landing, validated, rejected, models, reports)."""
    if zone not in ZONES or zone in TABLE_ZONES:
        raise ValueError(f"{zone!r} is not a dated zone; table zones use table_dir()")
    return join(root, zone, partition(ds))


def table_root(root: str, zone: str, table: str) -> str:
    """``<root>/<zone>/<table>``: a Parquet table partitioned by ds."""
    if zone not in TABLE_ZONES:
        raise ValueError(f"{zone!r} is not a table zone (one of {TABLE_ZONES})")
    return join(root, zone, table)


def table_dir(root: str, zone: str, table: str, ds: str) -> str:
    """One ds partition of a table."""
    return join(table_root(root, zone, table), partition(ds))

# The MovieLens genre list (ml-latest README), in its order; "(no genres listed)" marks none.
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
NO_GENRES = "(no genres listed)"
# The older releases' genre names (ml-100k, ml-1m, ml-10m) as another tool may have written them into a CSV:
# accepted by validation, normalised in silver (None: not a genre, dropped).
LEGACY_GENRES = {"Children's": "Children", "unknown": None}
