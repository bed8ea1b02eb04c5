"""Train and evaluate recommendation models on the silver ratings of a date; write recommendations.

Protocol (defaults, all configurable): a random split of the silver ratings stratified by movie
(test fraction 0.25, seed 42; see ``split``); rating metrics (RMSE, MAE) on test pairs the model can score; ranking metrics at k=10 over
test users that also appear in training, with their training items excluded from recommendations.
Models: explicit-feedback ALS, and a popularity baseline (most-rated unseen movies). After evaluation
ALS is refit on all ratings, and its top-N unseen movies per user (with titles) go to
``gold/recommendations/ds=D``; the model to ``models/ds=D/als_explicit``.

Uses pyspark (and numpy/pandas, which pyspark's ML and pandas functions need) only.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.common import layout, ranking, session

RECOMMENDATION_SCHEMA = "userId int, rank int, movieId int, score float"
#: The model whose item factors give similar movies (similar.py).
SIMILARITY_MODEL = "als_explicit"


def extract(spark: SparkSession, lake_root: str, ds: str) -> tuple[DataFrame, DataFrame]:
    ratings = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "ratings", ds))
    movies = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "movies", ds))
    return ratings.select("userId", "movieId", "rating"), movies.select("movieId", "title")


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


def fit_als(train: DataFrame, rank: int, reg_param: float, max_iter: int, seed: int) -> ALSModel:
    als = ALS(
        rank=rank,
        regParam=reg_param,
        maxIter=max_iter,
        seed=seed,
        userCol="userId",
        itemCol="movieId",
        ratingCol="rating",
        coldStartStrategy="drop",
        nonnegative=False,
    )
    return als.fit(train)


def rating_metrics(model: ALSModel, test: DataFrame) -> dict[str, float]:
    """RMSE and MAE over the test pairs the model can score (cold-start pairs are dropped).

    Errors are summed as DECIMAL(38,18): exact, so the result is the same whatever order the
    partitions are added in (a float sum changes its last digits from run to run).
    """
    error = model.transform(test).select((F.col("prediction") - F.col("rating")).alias("e"))
    exact = T.DecimalType(38, 18)
    sums = error.agg(
        F.sum((F.col("e") * F.col("e")).cast(exact)).alias("se"),
        F.sum(F.abs(F.col("e")).cast(exact)).alias("ae"),
        F.count("*").alias("n"),
    ).first()
    if not sums["n"]:
        return {"rmse": float("nan"), "mae": float("nan")}
    return {"rmse": math.sqrt(float(sums["se"]) / sums["n"]), "mae": float(sums["ae"]) / sums["n"]}


def seen_items(ratings: DataFrame) -> DataFrame:
    return ratings.groupBy("userId").agg(F.collect_list("movieId").alias("seen"))


def _recommendation_frame(user_ids, top_ids, top_scores, k: int):
    """Rows (userId, rank, movieId, score) from per-user top-k arrays; padding (id -1) dropped."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        {
            "userId": np.repeat(user_ids, k).astype("int32"),
            "rank": np.tile(np.arange(1, k + 1, dtype="int32"), len(user_ids)),
            "movieId": top_ids.reshape(-1).astype("int64"),
            "score": top_scores.reshape(-1).astype("float32"),
        }
    )
    frame = frame[frame["movieId"] >= 0]
    frame["movieId"] = frame["movieId"].astype("int32")
    return frame


def top_k(users: DataFrame, item_ids, item_vectors, k: int) -> DataFrame:
    """Top-k unseen items per user from a (userId, features, seen) frame; blocked matrix products."""
    import numpy as np

    spark = users.sparkSession
    order = np.argsort(item_ids)
    shared = spark.sparkContext.broadcast((np.asarray(item_ids)[order], np.asarray(item_vectors)[order]))

    def score(batches):
        import numpy as np
        import pandas as pd

        ids, vectors = shared.value
        for pdf in batches:
            if pdf.empty:
                continue
            user_vectors = np.vstack(pdf["features"].to_numpy()).astype(np.float32)
            top_ids, top_scores = ranking.top_k_block(user_vectors, ids, vectors, list(pdf["seen"]), k)
            yield _recommendation_frame(pdf["userId"].to_numpy(), top_ids, top_scores, k)

    return users.mapInPandas(score, RECOMMENDATION_SCHEMA)


def als_top_k(model: ALSModel, seen: DataFrame, k: int) -> DataFrame:
    items = model.itemFactors.orderBy("id").collect()
    item_ids = [row["id"] for row in items]
    item_vectors = [row["features"] for row in items]
    users = model.userFactors.select(F.col("id").alias("userId"), "features").join(seen, "userId", "left")
    return top_k(users, item_ids, item_vectors, k)


def popularity_top_k(train: DataFrame, users: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """The baseline: each user's k most-rated unseen movies (ties: the smaller movieId first)."""
    import numpy as np

    counts = train.groupBy("movieId").count().orderBy(F.col("count").desc(), "movieId").collect()
    ranked_ids = np.array([row["movieId"] for row in counts], dtype=np.int64)
    ranked_scores = np.array([row["count"] for row in counts], dtype=np.float32)
    shared = users.sparkSession.sparkContext.broadcast((ranked_ids, ranked_scores))

    def score(batches):
        import pandas as pd

        ids, scores = shared.value
        for pdf in batches:
            if pdf.empty:
                continue
            top_ids, top_scores = ranking.top_k_same_order(ids, scores, list(pdf["seen"]), k)
            yield _recommendation_frame(pdf["userId"].to_numpy(), top_ids, top_scores, k)

    return users.select("userId").distinct().join(seen, "userId", "left").mapInPandas(score, RECOMMENDATION_SCHEMA)


def ranking_metrics(recommendations: DataFrame, test: DataFrame, k: int, catalogue_size: int) -> dict[str, float]:
    """Mean per-user ranking metrics over the users that have recommendations and test items."""
    recs = recommendations.groupBy("userId").agg(
        F.sort_array(F.collect_list(F.struct("rank", "movieId"))).alias("_r")
    ).select("userId", F.col("_r.movieId").alias("recommended"))
    relevant = test.groupBy("userId").agg(F.collect_set("movieId").alias("relevant"))
    joined = recs.join(relevant, "userId", "inner")
    names = ranking.metric_names(k)
    schema = T.StructType([T.StructField(name, T.DoubleType()) for name in names])

    def per_user(batches):
        import pandas as pd

        for pdf in batches:
            rows = [ranking.user_metrics(list(r), list(rel), k) for r, rel in zip(pdf["recommended"], pdf["relevant"])]
            yield pd.DataFrame(rows, columns=list(names))

    # Per-user values come to the driver (one small row per user) and are averaged with math.fsum, whose
    # result does not depend on the order of the rows: Spark's avg sums partitions in whatever order
    # they finish, which changes the last digits from run to run.
    rows = joined.mapInPandas(per_user, schema).collect()
    result = {names[name]: (math.fsum(r[name] for r in rows) / len(rows) if rows else 0.0) for name in names}
    result["evaluated_users"] = len(rows)
    distinct = joined.select(F.explode("recommended").alias("m")).distinct().count()
    result["catalog_coverage"] = distinct / catalogue_size if catalogue_size else 0.0
    return result


def with_titles(recommendations: DataFrame, movies: DataFrame) -> DataFrame:
    return recommendations.join(movies, "movieId", "left").select("userId", "rank", "movieId", "title", "score")


def run(spark: SparkSession, lake_root: str, ds: str, params) -> dict:
    ratings, movies = extract(spark, lake_root, ds)
    ratings = ratings.cache()
    train, test = split(ratings, params.test_fraction, params.seed)
    train, test = train.cache(), test.cache()
    k = params.top_k
    catalogue = train.select("movieId").distinct().count()
    train_seen = seen_items(train).cache()

    als = fit_als(train, params.rank, params.reg_param, params.max_iter, params.seed)
    als_metrics = rating_metrics(als, test)
    als_metrics.update(ranking_metrics(als_top_k(als, train_seen, k), test, k, catalogue))
    popularity_metrics = ranking_metrics(popularity_top_k(train, test, train_seen, k), test, k, catalogue)

    # The product: ALS refit on every rating up to ds, recommending movies the user has not rated.
    final = fit_als(ratings, params.rank, params.reg_param, params.max_iter, params.seed)
    recommendations = with_titles(als_top_k(final, seen_items(ratings), params.recommendations), movies)
    target = layout.table_dir(lake_root, layout.GOLD, "recommendations", ds)
    recommendations.write.mode("overwrite").parquet(target)
    model_dir = layout.join(layout.zone_dir(lake_root, layout.MODELS, ds), "als_explicit")
    final.write().overwrite().save(model_dir)

    models = {
        "als_explicit": {
            "params": {"rank": params.rank, "reg_param": params.reg_param, "max_iter": params.max_iter},
            "metrics": als_metrics,
        },
        "popularity": {"params": {"score": "number of ratings in training"}, "metrics": popularity_metrics},
    }
    metric_rows = [
        (name, metric, float(value)) for name, model in models.items() for metric, value in model["metrics"].items()
    ]
    spark.createDataFrame(metric_rows, "model string, metric string, value double").write.mode("overwrite").parquet(
        layout.table_dir(lake_root, layout.GOLD, "model_metrics", ds)
    )
    session.write_json(spark, layout.join(layout.zone_dir(lake_root, layout.MODELS, ds), "params.json"), models)
    return {
        "models": models,
        "protocol": {
            "split": "random, stratified by movie (xxhash64 of seed, userId, movieId)",
            "test_fraction": params.test_fraction,
            "seed": params.seed,
            "k": k,
            "relevance": "every held-out rating of a user is relevant (binary)",
            "exclude_train_items": True,
            "train_rows": train.count(),
            "test_rows": test.count(),
        },
        "outputs": {
            "recommendations": target,
            "model_metrics": layout.table_dir(lake_root, layout.GOLD, "model_metrics", ds),
            "model": model_dir,
        },
        "counts": {"recommendations": spark.read.parquet(target).count()},
    }


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.common.args import add_model_args, base_parser

    args = add_model_args(base_parser(__doc__.splitlines()[0])).parse_args(argv)
    spark = session.get_session("movielens-train")
    print(run(spark, args.lake_root, args.ds, args))
    spark.stop()


if __name__ == "__main__":
    main()
