"""The rating model: global mean + user and item biases + explicit ALS on what the biases leave.

prediction(u, i) = mu + b_u + b_i + x_u . y_i, clipped to the training rating range.

Spark's ALS has no bias terms. Fitting regularised biases first (Koren 2010, sec. 2.1) and letting ALS
model only the residual interaction lowers RMSE most on MovieLens: the biases carry most of the
explainable variance, and ALS-WR's regularisation then only shrinks the interaction. Users or movies
unknown to the model fall back to the biases, then to the global mean, so every test pair is scored.

Tuning (:func:`tune`) runs on a validation split carved out of the training part (seed + 1), on a hash
sample of users when there are many: bias shrinkage first (biases only, cheap), then ALS regParam at
the smallest rank, walking the grid while RMSE improves, then the larger ranks around the best value.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import evaluation

BIAS_REGS = ((2.0, 2.0), (5.0, 5.0), (10.0, 10.0), (5.0, 15.0), (15.0, 5.0))
RANKS = (10, 20)
REG_PARAMS = (0.05, 0.1, 0.15, 0.2, 0.3)


@dataclass
class RatingModel:
    global_mean: float
    user_bias: DataFrame  # userId, b_user
    item_bias: DataFrame  # movieId, b_item
    als: ALSModel | None
    min_rating: float
    max_rating: float
    params: dict = field(default_factory=dict)


def _materialise(df: DataFrame) -> DataFrame:
    """Bring a small per-user or per-movie frame to the driver and back: cuts the lineage."""
    return df.sparkSession.createDataFrame(df.toPandas(), schema=df.schema)


def fit_biases(train: DataFrame, reg_user: float, reg_item: float, iterations: int = 3) -> tuple[float, DataFrame, DataFrame]:
    """Regularised baselines by alternating closed-form updates.

    b_item = sum(r - mu - b_user) / (reg_item + n_item); b_user = sum(r - mu - b_item) / (reg_user + n_user).
    Shrinkage keeps rarely rated movies and light users near the global mean. Sums are exact decimals
    so that a rerun gives the same biases bit for bit.
    """
    exact = evaluation.EXACT
    total = train.agg(F.sum(F.col("rating").cast(exact)).alias("s"), F.count("*").alias("n")).first()
    mu = float(total["s"]) / total["n"]
    residual = train.select("userId", "movieId", (F.col("rating") - F.lit(mu)).alias("_d"))

    def shrunk_mean(frame: DataFrame, key: str, error, reg: float, name: str) -> DataFrame:
        agg = frame.groupBy(key).agg(F.sum(error.cast(exact)).alias("_s"), F.count(F.lit(1)).alias("_n"))
        return _materialise(agg.select(key, (F.col("_s").cast("double") / (F.col("_n") + F.lit(reg))).alias(name)))

    user_bias = None
    item_bias = None
    for _ in range(max(1, iterations)):
        if user_bias is None:
            frame, error = residual, F.col("_d")
        else:
            frame = residual.join(F.broadcast(user_bias), "userId", "left")
            error = F.col("_d") - F.coalesce(F.col("b_user"), F.lit(0.0))
        item_bias = shrunk_mean(frame, "movieId", error, reg_item, "b_item")
        with_items = residual.join(F.broadcast(item_bias), "movieId", "left")
        user_bias = shrunk_mean(with_items, "userId", F.col("_d") - F.col("b_item"), reg_user, "b_user")
    return mu, user_bias, item_bias


def _with_baseline(model: RatingModel, pairs: DataFrame) -> DataFrame:
    return (
        pairs.join(F.broadcast(model.user_bias), "userId", "left")
        .join(F.broadcast(model.item_bias), "movieId", "left")
        .withColumn(
            "_baseline",
            F.lit(model.global_mean) + F.coalesce(F.col("b_user"), F.lit(0.0)) + F.coalesce(F.col("b_item"), F.lit(0.0)),
        )
        .drop("b_user", "b_item")
    )


def fit(train: DataFrame, rank: int, reg_param: float, max_iter: int, reg_user: float, reg_item: float,
        seed: int) -> RatingModel:
    """Biases, then explicit ALS on r - mu - b_user - b_item (``rank = 0``: the biases alone)."""
    return _with_als(_fit_baseline(train, reg_user, reg_item), train, rank, reg_param, max_iter, seed)


def _fit_baseline(train: DataFrame, reg_user: float, reg_item: float) -> RatingModel:
    """The model of the biases alone, which every fit with this shrinkage starts from."""
    bounds = train.agg(F.min("rating"), F.max("rating")).first()
    mu, user_bias, item_bias = fit_biases(train, reg_user, reg_item)
    return RatingModel(mu, user_bias, item_bias, None, float(bounds[0]), float(bounds[1]),
                       {"reg_user": reg_user, "reg_item": reg_item})


def _with_als(baseline: RatingModel, train: DataFrame, rank: int, reg_param: float, max_iter: int,
              seed: int) -> RatingModel:
    model = dataclasses.replace(baseline, params={
        "rank": rank, "reg_param": reg_param, "max_iter": max_iter, "reg_user": baseline.params["reg_user"],
        "reg_item": baseline.params["reg_item"], "seed": seed})
    if rank > 0:
        residuals = _with_baseline(model, train.select("userId", "movieId", "rating")).select(
            "userId", "movieId", (F.col("rating") - F.col("_baseline")).alias("residual")
        )
        als = ALS(rank=rank, regParam=reg_param, maxIter=max_iter, seed=seed, userCol="userId", itemCol="movieId",
                  ratingCol="residual", coldStartStrategy="nan", nonnegative=False, implicitPrefs=False)
        model.als = als.fit(residuals)
    return model


def predict(model: RatingModel, pairs: DataFrame) -> DataFrame:
    """``pairs`` (userId, movieId, ...) with a ``prediction`` column, never null."""
    scored = _with_baseline(model, pairs)
    if model.als is not None:
        scored = model.als.transform(scored).withColumn(
            "_als", F.when(F.isnan("prediction"), 0.0).otherwise(F.col("prediction"))
        ).drop("prediction")
    else:
        scored = scored.withColumn("_als", F.lit(0.0))
    clipped = F.least(F.greatest(F.col("_baseline") + F.col("_als"), F.lit(model.min_rating)), F.lit(model.max_rating))
    return scored.withColumn("prediction", clipped.cast("double")).drop("_baseline", "_als")


def ranking_factors(model: RatingModel):
    """(user frame (userId, features), item ids, item vectors) whose dot products rank like predictions.

    Per user, mu + b_u is a constant, so ranking by x_u . y_i + b_i is ranking by the prediction
    (clipping aside): users get [x_u, 1], movies [y_i, b_i].
    """
    import numpy as np

    items = model.als.itemFactors.join(
        model.item_bias.withColumnRenamed("movieId", "id"), "id", "left"
    ).toPandas()
    item_ids = items["id"].to_numpy(dtype=np.int64)
    vectors = np.hstack([
        np.vstack(items["features"].to_numpy()).astype(np.float32),
        items["b_item"].fillna(0.0).to_numpy(dtype=np.float32)[:, None],
    ])
    users = model.als.userFactors.select(
        F.col("id").alias("userId"), F.concat(F.col("features"), F.array(F.lit(1.0).cast("float"))).alias("features")
    )
    return users, item_ids, vectors


def tune(train: DataFrame, seed: int, validation_fraction: float, max_users: int | None, max_iter: int,
         ranks=RANKS, reg_params=REG_PARAMS, bias_regs=BIAS_REGS, split: str = "random") -> tuple[dict, list[dict]]:
    """Choose (reg_user, reg_item), then regParam and rank by validation RMSE. Returns (params, trials)."""
    vtrain, vtest, fraction = evaluation.validation_split(train, validation_fraction, max_users, seed, split)
    started = time.monotonic()
    trials: list[dict] = []
    # Every ALS trial shares the chosen shrinkage: its biases are fitted once (a fit is 6 driver round trips).
    baselines: dict[tuple[float, float], RatingModel] = {}

    def trial(rank: int, reg: float, reg_user: float, reg_item: float) -> float:
        t0 = time.monotonic()
        if (reg_user, reg_item) not in baselines:
            baselines[reg_user, reg_item] = _fit_baseline(vtrain, reg_user, reg_item)
        model = _with_als(baselines[reg_user, reg_item], vtrain, rank, reg, max_iter, seed)
        metrics = evaluation.rating_metrics(predict(model, vtest))
        trials.append({"rank": rank, "reg_param": reg, "reg_user": reg_user, "reg_item": reg_item,
                       "max_iter": max_iter, "rmse": metrics["rmse"], "mae": metrics["mae"],
                       "seconds": round(time.monotonic() - t0, 1), "user_fraction": round(fraction, 4)})
        return metrics["rmse"]

    bias_rmse = {regs: trial(0, 0.0, *regs) for regs in bias_regs}
    reg_user, reg_item = min(bias_rmse, key=bias_rmse.get)
    regs = sorted(reg_params)
    rmse: dict[float, float] = {}
    for reg in regs:  # up the grid while RMSE improves
        rmse[reg] = trial(ranks[0], reg, reg_user, reg_item)
        if len(rmse) > 1 and rmse[reg] > min(rmse.values()):
            break
    for _ in range(2):  # the smallest value won: try below the grid
        if min(rmse, key=rmse.get) != regs[0]:
            break
        regs.insert(0, regs[0] / 2)
        rmse[regs[0]] = trial(ranks[0], regs[0], reg_user, reg_item)
    best_reg = min(rmse, key=rmse.get)
    best = (ranks[0], best_reg, rmse[best_reg])
    at = regs.index(best_reg)
    for rank in ranks[1:]:
        for reg in regs[max(0, at - 1): at + 2]:
            value = trial(rank, reg, reg_user, reg_item)
            if value < best[2]:
                best = (rank, reg, value)
    vtrain.unpersist()
    vtest.unpersist()
    chosen = {"rank": best[0], "reg_param": best[1], "max_iter": max_iter, "reg_user": reg_user,
              "reg_item": reg_item, "tuning_s": round(time.monotonic() - started, 1),
              "tuning_user_fraction": round(fraction, 4)}
    return chosen, trials


def save(model: RatingModel, folder: str) -> dict[str, str]:
    """The ALS part as a Spark ALSModel (``<folder>``) and the biases as Parquet beside it."""
    model.als.write().overwrite().save(folder)
    paths = {"als": folder, "user_bias": folder + "_bias/users", "item_bias": folder + "_bias/items"}
    model.user_bias.write.mode("overwrite").parquet(paths["user_bias"])
    model.item_bias.write.mode("overwrite").parquet(paths["item_bias"])
    return paths
