"""Silver: clean tables as of a date, from every bronze partition with ds <= D.

A rating given again later replaces the earlier one (latest ds, then latest timestamp wins); a movie
listed again later takes its latest title and genres. Outputs, each under ``silver/<table>/ds=D/``:
ratings (with title, genres and the ``liked`` flag), movies (year, genre array, one-hot genres),
user_stats, movie_stats (count, mean, Bayesian average).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs.common import layout, session


class NoTrainingData(RuntimeError):
    """No validated ratings exist up to the run date."""


def extract_history(spark: SparkSession, lake_root: str, table: str, ds: str) -> DataFrame | None:
    """Every bronze partition of ``table`` with ds <= D, or None when there is none."""
    root = layout.table_root(lake_root, layout.BRONZE, table)
    partitions = [layout.partition(d) for d in session.table_dates(spark, lake_root, layout.BRONZE, table) if d <= ds]
    if not partitions:
        return None
    return spark.read.option("basePath", root).parquet(*[layout.join(root, p) for p in partitions])


def latest_ratings(bronze_ratings: DataFrame) -> DataFrame:
    """One row per (userId, movieId): the latest landing wins, then the latest timestamp."""
    order = Window.partitionBy("userId", "movieId").orderBy(F.col("ds").desc(), F.col("timestamp").desc())
    return (
        bronze_ratings.withColumn("_n", F.row_number().over(order))
        .where(F.col("_n") == 1)
        .select("userId", "movieId", "rating", "timestamp")
    )


def latest_movies(bronze_movies: DataFrame) -> DataFrame:
    order = Window.partitionBy("movieId").orderBy(F.col("ds").desc())
    return bronze_movies.withColumn("_n", F.row_number().over(order)).where(F.col("_n") == 1).select(
        "movieId", "title", "genres"
    )


def movie_features(movies: DataFrame) -> DataFrame:
    """Year from the title's trailing ``(YYYY)`` (null when absent), genre array and one-hot genres; the older
    releases' genre names are normalised (``layout.LEGACY_GENRES``: Children's -> Children, unknown dropped)."""
    renames = {legacy: current for legacy, current in layout.LEGACY_GENRES.items() if current is not None}
    dropped = [layout.NO_GENRES, *(legacy for legacy, current in layout.LEGACY_GENRES.items() if current is None)]

    def current_name(genre):
        name = genre
        for legacy, current in renames.items():
            name = F.when(genre == legacy, current).otherwise(name)
        return name

    renamed = F.transform(F.split(F.col("genres"), r"\|"), current_name)
    genre_list = F.array_distinct(F.filter(renamed, lambda genre: ~genre.isin(dropped)))
    year = F.regexp_extract(F.trim(F.col("title")), r"\((\d{4})\)$", 1)
    df = movies.select(
        "movieId",
        "title",
        genre_list.alias("genre_list"),
        F.when(year == "", None).otherwise(year.cast("int")).alias("year"),
    )
    one_hot = [
        F.array_contains("genre_list", g).cast("int").alias("genre_" + g.replace("-", "_")) for g in layout.GENRES
    ]
    return df.select("*", *one_hot)


def enrich_ratings(ratings: DataFrame, movies: DataFrame, liked_threshold: float) -> DataFrame:
    return ratings.join(movies.select("movieId", "title", "genre_list"), "movieId", "left").withColumn(
        "liked", F.col("rating") >= F.lit(liked_threshold)
    )


def user_stats(ratings: DataFrame) -> DataFrame:
    return ratings.groupBy("userId").agg(
        F.count("*").alias("n_ratings"), F.avg("rating").alias("mean_rating")
    )


def movie_stats(ratings: DataFrame, movies: DataFrame) -> DataFrame:
    """Count, mean and Bayesian average (prior: the global mean, weighted by the mean count per movie)."""
    per_movie = ratings.groupBy("movieId").agg(
        F.count("*").alias("n_ratings"), F.avg("rating").alias("mean_rating"), F.sum("rating").alias("_sum")
    )
    prior = per_movie.agg(
        (F.sum("_sum") / F.sum("n_ratings")).alias("global_mean"), F.avg("n_ratings").alias("prior_weight")
    )
    return (
        per_movie.crossJoin(prior)
        .withColumn(
            "bayesian_avg",
            (F.col("prior_weight") * F.col("global_mean") + F.col("_sum")) / (F.col("prior_weight") + F.col("n_ratings")),
        )
        .join(movies.select("movieId", "title", "year", "genre_list"), "movieId", "left")
        .drop("_sum", "global_mean", "prior_weight")
    )


def run(spark: SparkSession, lake_root: str, ds: str, liked_threshold: float) -> dict:
    bronze_ratings = extract_history(spark, lake_root, "ratings", ds)
    if bronze_ratings is None:
        raise NoTrainingData(f"no validated ratings in the lake with ds <= {ds}: nothing to train on")
    bronze_movies = extract_history(spark, lake_root, "movies", ds)
    if bronze_movies is None:
        raise NoTrainingData(f"no validated movies in the lake with ds <= {ds}: titles are unknown")

    movies = movie_features(latest_movies(bronze_movies))
    ratings = enrich_ratings(latest_ratings(bronze_ratings), movies, liked_threshold)
    outputs = {
        "movies": movies,
        "ratings": ratings,
        "user_stats": user_stats(ratings),
        "movie_stats": movie_stats(ratings, movies),
    }
    return session.write_tables(spark, outputs, lake_root, layout.SILVER, ds)


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.common.spec import job_parser

    args = job_parser(__doc__.splitlines()[0]).parse_args(argv)
    spark = session.get_session("movielens-silver")
    print(run(spark, args.lake_root, args.ds, args.spec.settings["liked_threshold"]))
    spark.stop()


if __name__ == "__main__":
    main()
