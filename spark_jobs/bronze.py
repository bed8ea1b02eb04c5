"""Bronze: typed Parquet copies of one date's validated CSV files.

Reads ``validated/ds=D/<kind>*.csv`` and writes ``bronze/<kind>/ds=D/``. Only files that passed
validation are read, so training never sees rejected data. A kind with no validated file for D gets
its bronze partition removed, so a rerun after a re-routing never leaves stale rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.common import layout, session

SCHEMAS = {
    "ratings": T.StructType(
        [
            T.StructField("userId", T.IntegerType(), False),
            T.StructField("movieId", T.IntegerType(), False),
            T.StructField("rating", T.DoubleType(), False),
            T.StructField("timestamp", T.LongType(), False),
        ]
    ),
    "movies": T.StructType(
        [
            T.StructField("movieId", T.IntegerType(), False),
            T.StructField("title", T.StringType(), False),
            T.StructField("genres", T.StringType(), False),
        ]
    ),
    "tags": T.StructType(
        [
            T.StructField("userId", T.IntegerType(), False),
            T.StructField("movieId", T.IntegerType(), False),
            T.StructField("tag", T.StringType(), False),
            T.StructField("timestamp", T.LongType(), False),
        ]
    ),
    "links": T.StructType(
        [
            T.StructField("movieId", T.IntegerType(), False),
            T.StructField("imdbId", T.StringType(), True),
            T.StructField("tmdbId", T.StringType(), True),
        ]
    ),
}


def validated_files(spark: SparkSession, lake_root: str, ds: str, kind: str) -> list[str]:
    folder = layout.zone_dir(lake_root, layout.VALIDATED, ds)
    return [layout.join(folder, name) for name in session.list_names(spark, folder) if layout.file_kind(name) == kind]


def extract(spark: SparkSession, paths: list[str], kind: str) -> DataFrame:
    # MovieLens quotes fields with "..." and doubles embedded quotes; FAILFAST so that a line that
    # slipped past validation stops the job instead of turning into nulls.
    return (
        spark.read.schema(SCHEMAS[kind])
        .option("header", True)
        .option("enforceSchema", True)
        .option("quote", '"')
        .option("escape", '"')
        .option("mode", "FAILFAST")
        .csv(paths)
    )


def transform(df: DataFrame, kind: str) -> DataFrame:
    """Add lineage; keep the columns as typed. Pure: no I/O."""
    return df.withColumn("source_file", F.element_at(F.split(F.input_file_name(), "/"), -1))


def known_movies(spark: SparkSession, lake_root: str, ds: str) -> DataFrame | None:
    """movieIds of every bronze movies partition with ds <= D (this date's is written first)."""
    root = layout.table_root(lake_root, layout.BRONZE, "movies")
    partitions = [layout.partition(d) for d in session.table_dates(spark, lake_root, layout.BRONZE, "movies") if d <= ds]
    if not partitions:
        return None
    return spark.read.parquet(*[layout.join(root, p) for p in partitions]).select("movieId").distinct()


def split_unknown_movies(df: DataFrame, movies: DataFrame | None) -> tuple[DataFrame, DataFrame]:
    """(rows whose movieId is a known movie, rows whose movieId is not). Pure."""
    if movies is None:
        return df.limit(0), df
    return df.join(movies, "movieId", "left_semi"), df.join(movies, "movieId", "left_anti")


# Movies first: ratings and tags keep only rows whose movie is known (validation tolerates a few
# unknown ids, reported in the file's routing record; here they are excluded and counted).
ORDER = ("movies", "links", "ratings", "tags")


def run(spark: SparkSession, lake_root: str, ds: str) -> dict:
    counts: dict[str, int] = {}
    for kind in ORDER:
        target = layout.table_dir(lake_root, layout.BRONZE, kind, ds)
        paths = validated_files(spark, lake_root, ds, kind)
        if not paths:
            session.delete(spark, target)
            counts[kind] = 0
            continue
        df = transform(extract(spark, paths, kind), kind)
        if kind in ("ratings", "tags"):
            df, unknown = split_unknown_movies(df, known_movies(spark, lake_root, ds))
            counts[f"{kind}_excluded_unknown_movie"] = unknown.count()
        counts[kind] = session.write_table(spark, df, lake_root, layout.BRONZE, kind, ds)
    return counts


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.common.spec import job_parser

    args = job_parser(__doc__.splitlines()[0]).parse_args(argv)
    spark = session.get_session("movielens-bronze")
    print(run(spark, args.lake_root, args.ds))
    spark.stop()


if __name__ == "__main__":
    main()
