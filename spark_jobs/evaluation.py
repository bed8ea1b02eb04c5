"""The evaluation protocol: a reproducible split, rating metrics and ranking metrics.

Defaults follow recommenders-team/recommenders' MovieLens benchmark: a random split stratified by
movie (test fraction 0.25, seed 42); RMSE and MAE on every test pair; precision, recall, NDCG, MAP and
hit rate at k = 10 over the test users that have recommendations, with each user's training movies
excluded and every held-out movie of the user relevant; catalog coverage = distinct movies recommended
to those users / movies in training.

Every number is the same on a rerun: the split hashes (seed, userId, movieId) instead of drawing random
numbers, sums of errors are exact decimals, and per-user metrics are averaged with ``math.fsum`` on the
driver. Spark's float sums add partitions in whatever order they finish, which moves the last digits.
"""

from __future__ import annotations

import math

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.common import ranking

#: Exact sums: DECIMAL addition does not depend on the order of the terms.
EXACT = T.DecimalType(38, 18)


def split(ratings: DataFrame, test_fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Random split stratified by movie, the same on every run and cluster.

    Each movie's ratings are ordered by ``xxhash64(seed, userId, movieId)`` and the first
    ``round(n * (1 - test_fraction))`` (half to even) stay in training: a movie with one rating is never
    held out, so every test movie is known to the models. ``randomSplit`` is not used: its result
    depends on how the data happens to be partitioned.
    """
    key = F.xxhash64(F.lit(seed), F.col("userId"), F.col("movieId"))
    per_movie = Window.partitionBy("movieId")
    ranked = ratings.withColumn("_pos", F.row_number().over(per_movie.orderBy(key, "userId"))).withColumn(
        "_n", F.count(F.lit(1)).over(per_movie)
    )
    in_train = F.col("_pos") <= F.bround(F.col("_n") * F.lit(1.0 - test_fraction), 0)
    columns = ratings.columns
    return ranked.where(in_train).select(*columns), ranked.where(~in_train).select(*columns)


def split_by_time(ratings: DataFrame, test_fraction: float) -> tuple[DataFrame, DataFrame]:
    """The temporal protocol: each user's latest ratings held out, the last ``round(n * test_fraction)`` (half
    to even) of the user's n ratings by timestamp (ties: the larger movieId is later), always keeping one
    in training. Needs a ``timestamp`` column. Movies rated only after a user's cut can be unknown to the
    models: they are held out anyway (hits a model cannot make count against it, as in production)."""
    per_user = Window.partitionBy("userId")
    ranked = ratings.withColumn("_pos", F.row_number().over(per_user.orderBy(F.col("timestamp").desc(), F.col("movieId").desc()))
                                ).withColumn("_n", F.count(F.lit(1)).over(per_user))
    held = F.least(F.bround(F.col("_n") * F.lit(test_fraction), 0), F.col("_n") - 1)
    in_test = F.col("_pos") <= held
    columns = ratings.columns
    return ranked.where(~in_test).select(*columns), ranked.where(in_test).select(*columns)


SPLITS = {"random": "random, stratified by movie (xxhash64 of seed, userId, movieId)",
          "time": "temporal: each user's latest ratings held out (by timestamp)"}


def protocol_split(ratings: DataFrame, kind: str, test_fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """The split the ``split`` setting names: ``random`` (:func:`split`) or ``time`` (:func:`split_by_time`)."""
    if kind == "time":
        return split_by_time(ratings, test_fraction)
    if kind != "random":
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {kind!r}")
    return split(ratings, test_fraction, seed)


def user_sample(ratings: DataFrame, max_users: int | None, seed: int) -> tuple[DataFrame, float]:
    """The ratings of about ``max_users`` users chosen by a hash of (seed, userId), and the fraction kept.

    Tuning on large data uses a sample of users: the models' regularisation is per rating (ALS-WR) or a
    prior strength (EASE), so parameters chosen on a sample carry over to the whole data.
    """
    if not max_users:
        return ratings, 1.0
    n_users = ratings.select("userId").distinct().count()
    if n_users <= max_users:
        return ratings, 1.0
    fraction = max_users / n_users
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.col("userId")), F.lit(1_000_000))
    return ratings.where(bucket < F.lit(int(fraction * 1_000_000))), fraction


def validation_split(train: DataFrame, fraction: float, max_users: int | None, seed: int, kind: str = "random"
                     ) -> tuple[DataFrame, DataFrame, float]:
    """The tuning data: (validation train, validation test, user fraction kept), both cached.

    A split of the training part of the same ``kind`` as the protocol's (seed + 1 for ``random``), on a
    :func:`user_sample` of it when it has more than ``max_users`` users; the test part of the protocol is
    never seen. Unpersist both when done.
    """
    sample, kept = user_sample(train, max_users, seed)
    vtrain, vtest = protocol_split(sample, kind, fraction, seed + 1)
    return vtrain.cache(), vtest.cache(), kept


def seen_items(ratings: DataFrame) -> DataFrame:
    """userId, seen: the movies each user rated (excluded from that user's recommendations)."""
    return ratings.groupBy("userId").agg(F.collect_list("movieId").alias("seen"))


def rating_metrics(predictions: DataFrame) -> dict[str, float]:
    """RMSE and MAE of ``prediction`` against ``rating``, from exact sums; ``rated_pairs`` counted."""
    error = predictions.select((F.col("prediction") - F.col("rating")).alias("e"))
    sums = error.agg(
        F.sum((F.col("e") * F.col("e")).cast(EXACT)).alias("se"),
        F.sum(F.abs(F.col("e")).cast(EXACT)).alias("ae"),
        F.count("*").alias("n"),
    ).first()
    if not sums["n"]:
        return {"rmse": float("nan"), "mae": float("nan"), "rated_pairs": 0}
    n = sums["n"]
    return {"rmse": math.sqrt(float(sums["se"]) / n), "mae": float(sums["ae"]) / n, "rated_pairs": int(n)}


def ranking_metrics(recommendations: DataFrame, test: DataFrame, k: int, catalogue_size: int) -> dict[str, float]:
    """Mean per-user ranking metrics at ``k`` and catalog coverage of one list of recommendations."""
    recs = recommendations.withColumn("variant", F.lit(0))
    return ranking_metrics_by_variant(recs, test, k, catalogue_size).get(0, _empty_metrics(k))


def ranking_metrics_by_variant(
    recommendations: DataFrame, test: DataFrame, k: int, catalogue_size: int
) -> dict[int, dict[str, float]]:
    """:func:`ranking_metrics` for each value of the ``variant`` column (tuning scores many at once).

    Evaluated users: those with both recommendations and held-out movies. Per-user values are
    computed in pandas batches (:func:`spark_jobs.common.ranking.user_metrics`), come to the driver
    (one small row per user and variant) and are averaged with ``math.fsum``.
    """
    recs = recommendations.where(F.col("rank") <= k).groupBy("variant", "userId").agg(
        F.sort_array(F.collect_list(F.struct("rank", "movieId"))).alias("_r")
    ).select("variant", "userId", F.col("_r.movieId").alias("recommended"))
    relevant = test.groupBy("userId").agg(F.collect_set("movieId").alias("relevant"))
    joined = recs.join(relevant, "userId", "inner")
    names = ranking.metric_names(k)
    schema = T.StructType(
        [T.StructField("variant", T.IntegerType()), T.StructField("recommended", T.ArrayType(T.IntegerType()))]
        + [T.StructField(name, T.DoubleType()) for name in names]
    )

    def per_user(batches):
        import pandas as pd

        for pdf in batches:
            rows = [ranking.user_metrics(list(r), list(rel), k) for r, rel in zip(pdf["recommended"], pdf["relevant"])]
            out = pd.DataFrame(rows, columns=list(names))
            out.insert(0, "recommended", pdf["recommended"].to_numpy())
            out.insert(0, "variant", pdf["variant"].to_numpy())
            yield out

    by_variant: dict[int, list] = {}
    for row in joined.mapInPandas(per_user, schema).collect():
        by_variant.setdefault(int(row["variant"]), []).append(row)
    result = {}
    for variant, rows in by_variant.items():
        metrics = {names[name]: math.fsum(r[name] for r in rows) / len(rows) for name in names}
        metrics["evaluated_users"] = len(rows)
        distinct = {m for r in rows for m in r["recommended"]}
        metrics["catalog_coverage"] = len(distinct) / catalogue_size if catalogue_size else 0.0
        result[variant] = metrics
    return result


def _empty_metrics(k: int) -> dict[str, float]:
    metrics = {name: 0.0 for name in ranking.metric_names(k).values()}
    metrics.update(evaluated_users=0, catalog_coverage=0.0)
    return metrics
