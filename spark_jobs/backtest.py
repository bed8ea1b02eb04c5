"""Next-day backtest: did the lists served before a date predict what users rated on it?

For a date D: the served lists are those of the latest date S < D whose lists were served (its
``gold/recommendations``, unless its publication record says it was held back: ``layout.served_date``).
The relevant movies of a user are the (user, movie) pairs of the ratings that landed on D (bronze ``ds=D``)
that the user had not rated by the date before D (silver of the latest date < D). A user the served lists
do not know (no ratings by S) gets S's cold-start list (``gold/fallback_movies``), as serving answers them;
a lake without that table for S gives them the popularity baseline's list instead, and ``fallback_list``
says which. Each user with new pairs is
scored at k, for the served lists and for the popularity baseline of S (each user's most-rated movies as
of S that the user had not rated by S), with the protocol's metrics (``evaluation.ranking_metrics``).

``served_known`` and ``popularity_known`` are the same over the users the served lists hold (without the
fallback's users, who get the same list from both). Output: ``gold/backtest/ds=D`` (served_ds, list, metric, value), and the same numbers as a dict for the
job's report, with a ``status`` saying why there is nothing to score when that is so (the first date, no
ratings landed on D, or only re-ratings).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs import evaluation
from spark_jobs.common import layout, session

TABLE = "backtest"
SCHEMA = "served_ds string, list string, metric string, value double"
SERVED, POPULARITY = "served", "popularity"
#: The same two, over the users the served lists hold only (the model's own lists against popularity's).
SERVED_KNOWN, POPULARITY_KNOWN = "served_known", "popularity_known"


def served_before(spark: SparkSession, lake_root: str, ds: str) -> str | None:
    """The date whose lists were being served when the ratings of ``ds`` arrived (None: nothing yet)."""
    listed = session.table_dates(spark, lake_root, layout.GOLD, "recommendations")
    reports = layout.join(lake_root, layout.REPORTS)

    def published(date: str) -> bool:
        url = layout.join(reports, layout.partition(date), layout.PUBLICATION)
        record = session.read_json(spark, url) if session.exists(spark, url) else None
        return layout.is_published(record)

    return layout.served_date(listed, published, before=ds)


def new_pairs(landed: DataFrame, earlier: DataFrame | None) -> DataFrame:
    """userId, movieId: the pairs rated in ``landed`` that ``earlier`` (ratings up to the day before) lacks."""
    pairs = landed.select("userId", "movieId").distinct()
    if earlier is None:
        return pairs
    return pairs.join(earlier.select("userId", "movieId"), ["userId", "movieId"], "left_anti")


def fallback_lists(fallback_movies: DataFrame, users: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """userId, rank, movieId, score: the cold-start list for each of ``users``, without what the user had rated
    (``seen``: userId, seen): what serving answers a user with no ratings (genre weights all one)."""
    movies = fallback_movies.select(F.col("rank").alias("_order"), "movieId", F.col("n_ratings").cast("float").alias("score"))
    candidates = users.crossJoin(movies).join(seen, "userId", "left").where(
        F.col("seen").isNull() | ~F.array_contains(F.col("seen"), F.col("movieId")))
    order = Window.partitionBy("userId").orderBy("_order")
    return candidates.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k).select(
        "userId", "rank", "movieId", "score")


def with_fallback(served: DataFrame, fallback: DataFrame) -> DataFrame:
    """The served lists, and the fallback list for each user the served lists do not hold."""
    columns = ["userId", "rank", "movieId", "score"]
    missing = fallback.join(served.select("userId").distinct(), "userId", "left_anti")
    return served.select(*columns).unionByName(missing.select(*columns))


def evaluate(relevant: DataFrame, served: DataFrame, history: DataFrame, k: int,
             fallback_movies: DataFrame | None = None) -> dict[str, dict[str, float]]:
    """Metrics at ``k`` of the served lists (with the fallback) and of popularity alone.

    ``relevant``: userId, movieId of the new pairs; ``served``: the served lists (userId, rank, movieId,
    score); ``history``: the ratings as of the served date (the popularity counts and what users had seen);
    ``fallback_movies``: the served date's cold-start list (None: the popularity list stands in).
    """
    from spark_jobs.train import popularity_top_k

    users = relevant.select("userId").distinct()
    seen = evaluation.seen_items(history)
    popularity = popularity_top_k(history, users, seen, k).cache()
    served_k = served.where(F.col("rank") <= k).join(users, "userId")
    known_users = served_k.select("userId").distinct()
    catalogue = history.select("movieId").distinct().count()
    fallback = popularity if fallback_movies is None else fallback_lists(
        fallback_movies, users.join(known_users, "userId", "left_anti"), seen, k)
    result = {name: evaluation.ranking_metrics(frame, relevant, k, catalogue)
              for name, frame in {SERVED: with_fallback(served_k, fallback), POPULARITY: popularity}.items()}
    known, with_new = known_users.count(), users.count()
    if known:
        relevant_known = relevant.join(known_users, "userId")
        result[SERVED_KNOWN] = evaluation.ranking_metrics(served_k, relevant_known, k, catalogue)
        result[POPULARITY_KNOWN] = evaluation.ranking_metrics(popularity.join(known_users, "userId"), relevant_known, k,
                                                              catalogue)
    result[SERVED].update(users_with_new_ratings=with_new, fallback_users=with_new - known)
    popularity.unpersist()
    return result


def run(spark: SparkSession, lake_root: str, ds: str, k: int) -> dict:
    """Score the lists served before ``ds`` against the ratings of ``ds``; write ``gold/backtest/ds=D``."""
    served_ds = served_before(spark, lake_root, ds)
    landed_root = layout.table_dir(lake_root, layout.BRONZE, "ratings", ds)
    result: dict = {"ds": ds, "served_ds": served_ds, "k": k, "lists": {}}
    if served_ds is None:
        result["status"] = f"no lists were served before {ds}: nothing to score yet"
    elif not session.exists(spark, landed_root):
        result["status"] = f"no ratings landed on {ds}"
    else:
        before = max((d for d in session.table_dates(spark, lake_root, layout.SILVER, "ratings") if d < ds), default=None)
        earlier = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "ratings", before)) if before else None
        relevant = new_pairs(spark.read.parquet(landed_root), earlier).cache()
        result["new_pairs"] = relevant.count()
        if not result["new_pairs"]:
            result["status"] = f"the ratings that landed on {ds} only re-rate movies rated before"
        else:
            served = spark.read.parquet(layout.table_dir(lake_root, layout.GOLD, "recommendations", served_ds))
            history = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "ratings", served_ds))
            fallback_root = layout.table_dir(lake_root, layout.GOLD, "fallback_movies", served_ds)
            fallback_movies = None
            if session.exists(spark, fallback_root):
                fallback_movies = spark.read.parquet(fallback_root)
                result["fallback_list"] = layout.table_dir("", layout.GOLD, "fallback_movies", served_ds)
            else:
                result["fallback_list"] = f"popularity of {served_ds} (no gold/fallback_movies for it)"
            result["lists"] = evaluate(relevant, served, history, k, fallback_movies)
            result["status"] = "scored"
        relevant.unpersist()
    rows = [(served_ds, name, metric, float(value)) for name, metrics in result["lists"].items()
            for metric, value in metrics.items()]
    result["rows"] = session.write_table(spark, spark.createDataFrame(rows, SCHEMA), lake_root, layout.GOLD, TABLE, ds)
    return result
