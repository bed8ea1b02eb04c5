"""Gold analysis tables of a date, from the silver tables: what a report plots.

Outputs, each under ``gold/<table>/ds=D/``:

- ``popular_movies``: the top movies with at least ``min_ratings`` ratings, ranked by mean rating and
  by Bayesian average, overall, per genre and per decade (columns ``scope`` = overall | genre | decade,
  ``segment`` = all | the genre | e.g. 1990s, ``ranked_by`` = mean_rating | bayesian_avg, ``rank``);
- ``ratings_by_year``: number and mean of the ratings given in each calendar year (UTC);
- ``rating_distribution``: how many ratings have each value, and their share;
- ``fallback_movies``: the ``FALLBACK_MOVIES`` movies most rated in the last ``fallback_window_days`` days of
  the history (rank, title, genres, n_ratings: the ratings in that window), what a user the served model does
  not know is answered from (``movielens.serving.lookup``: the popularity list, weighted by the genres the
  user rated when they rated any). Recent counts, because what users rate next leans to what others rate
  now: on ml-latest-small's last year the last 365 days' counts predicted the next days' ratings better
  than all-time counts on every replayed date (bench/RESULTS.md, "Levers for the target").
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs.common import layout, session

RANKED_BY = ("mean_rating", "bayesian_avg")
FALLBACK_MOVIES = 500
MOVIE_COLUMNS = ("movieId", "title", "year", "n_ratings", "mean_rating", "bayesian_avg")


def extract(spark: SparkSession, lake_root: str, ds: str) -> tuple[DataFrame, DataFrame]:
    ratings = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "ratings", ds))
    movie_stats = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "movie_stats", ds))
    return ratings.select("userId", "movieId", "rating", "timestamp"), movie_stats


def popular_movies(movie_stats: DataFrame, min_ratings: int, top_n: int) -> DataFrame:
    """Top ``top_n`` movies per segment and ranking, among movies with at least ``min_ratings`` ratings.

    Ties are broken by more ratings, then the smaller movieId, so the table is the same on every rerun.
    """
    eligible = movie_stats.where(F.col("n_ratings") >= min_ratings)
    overall = eligible.select(F.lit("overall").alias("scope"), F.lit("all").alias("segment"), *MOVIE_COLUMNS)
    per_genre = eligible.select(
        F.lit("genre").alias("scope"), F.explode("genre_list").alias("segment"), *MOVIE_COLUMNS
    )
    per_decade = eligible.where(F.col("year").isNotNull()).select(
        F.lit("decade").alias("scope"),
        F.concat((F.floor(F.col("year") / 10) * 10).cast("int").cast("string"), F.lit("s")).alias("segment"),
        *MOVIE_COLUMNS,
    )
    segments = overall.unionByName(per_genre).unionByName(per_decade)
    ranked = []
    for column in RANKED_BY:
        order = Window.partitionBy("scope", "segment").orderBy(
            F.col(column).desc(), F.col("n_ratings").desc(), F.col("movieId")
        )
        ranked.append(
            segments.withColumn("ranked_by", F.lit(column))
            .withColumn("rank", F.row_number().over(order))
            .where(F.col("rank") <= top_n)
        )
    return ranked[0].unionByName(ranked[1]).select("scope", "segment", "ranked_by", "rank", *MOVIE_COLUMNS)


def fallback_movies(ratings: DataFrame, movie_stats: DataFrame, window_days: int, n: int = FALLBACK_MOVIES) -> DataFrame:
    """The ``n`` movies most rated in the last ``window_days`` days before the latest rating (0: all ratings),
    then by all their ratings, then the smaller movieId: ``segment`` (all), rank, movie, genres, and
    ``n_ratings``, the count the list ranks by (the window's), which serving weighs by genre."""
    recent = ratings
    if window_days:
        latest = ratings.agg(F.max("timestamp")).first()[0]
        recent = ratings.where(F.col("timestamp") > F.lit((latest or 0) - window_days * 86_400))
    counts = recent.groupBy("movieId").agg(F.count(F.lit(1)).alias("_recent"))
    ranked = movie_stats.join(counts, "movieId", "left").withColumn("_recent", F.coalesce("_recent", F.lit(0)))
    order = Window.orderBy(F.col("_recent").desc(), F.col("n_ratings").desc(), F.col("movieId"))
    return (ranked.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= n)
            .select(F.lit("all").alias("segment"), "rank", "movieId", "title",
                    F.array_join("genre_list", "|").alias("genres"), F.col("_recent").cast("int").alias("n_ratings")))


def ratings_by_year(ratings: DataFrame) -> DataFrame:
    year = F.year(F.to_timestamp(F.from_unixtime(F.col("timestamp")))).alias("year")
    return ratings.groupBy(year).agg(F.count("*").alias("n_ratings"), F.avg("rating").alias("mean_rating"))


def rating_distribution(ratings: DataFrame) -> DataFrame:
    counts = ratings.groupBy("rating").agg(F.count("*").alias("n_ratings"))
    return counts.withColumn("share", F.col("n_ratings") / F.sum("n_ratings").over(Window.partitionBy()))


def run(spark: SparkSession, lake_root: str, ds: str, settings: dict) -> dict:
    ratings, movie_stats = extract(spark, lake_root, ds)
    tables = {
        "popular_movies": popular_movies(movie_stats, settings["popular_min_ratings"], settings["popular_top_n"]),
        "ratings_by_year": ratings_by_year(ratings),
        "rating_distribution": rating_distribution(ratings),
        "fallback_movies": fallback_movies(ratings, movie_stats, settings["fallback_window_days"]),
    }
    return session.write_tables(spark, tables, lake_root, layout.GOLD, ds)


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.common.spec import job_parser

    args = job_parser(__doc__.splitlines()[0]).parse_args(argv)
    spark = session.get_session("movielens-gold")
    print(run(spark, args.lake_root, args.ds, args.spec.settings))
    spark.stop()


if __name__ == "__main__":
    main()
