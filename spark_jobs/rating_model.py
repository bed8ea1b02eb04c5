"""The rating model: global mean + user and item biases + explicit ALS on what the biases leave.

prediction(u, i) = mu + b_u + b_i + x_u . y_i, clipped to the training rating range.

Spark's ALS has no bias terms. Fitting regularised biases first (Koren 2010, sec. 2.1) and letting ALS
model only the residual interaction lowers RMSE most on MovieLens: the biases carry most of the
explainable variance, and ALS-WR's regularisation then only shrinks the interaction. Users or movies
unknown to the model fall back to the biases, then to the global mean, so every test pair is scored.

Tuning (:func:`tune`) runs on a validation split carved out of the training part (seed + 1), on a hash
sample of users when there are many: bias shrinkage first (biases only, cheap), then ALS regParam at
the smallest rank, walking the grid while RMSE improves, then the larger ranks around the best value.
Up to ``top_n_model.LOCAL_MAX_RATINGS`` ratings the fits and the tuning trials run on the driver with numpy
(:class:`DriverRatings`: the same bias updates, and the equations Spark's explicit ALS solves), which saves
Spark's per-job overhead of a dozen fits; above, they are Spark's ALS. Either way the model is the same
frames (biases, factors) and :func:`predict` scores it in Spark.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs import evaluation, top_n_model

BIAS_REGS = ((2.0, 2.0), (5.0, 5.0), (10.0, 10.0), (5.0, 15.0), (15.0, 5.0))
RANKS = (10, 20)
REG_PARAMS = (0.05, 0.1, 0.15, 0.2, 0.3)
COLUMNS = ["userId", "movieId", "rating"]
#: The factor frames, as Spark's ALSModel has them (``userFactors``, ``itemFactors``) and saves them.
FACTORS_SCHEMA = "id int, features array<float>"


@dataclass
class RatingModel:
    global_mean: float
    user_bias: DataFrame  # userId, b_user
    item_bias: DataFrame  # movieId, b_item
    user_factors: DataFrame | None  # FACTORS_SCHEMA: the ALS part (None: the biases alone)
    item_factors: DataFrame | None
    min_rating: float
    max_rating: float
    params: dict = field(default_factory=dict)
    engine: str = "spark"  # where it was fitted: "spark" or "driver"


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
    """Biases, then explicit ALS on r - mu - b_user - b_item (``rank = 0``: the biases alone).

    Up to ``LOCAL_MAX_RATINGS`` ratings on the driver (:class:`DriverRatings`), above with Spark's ALS."""
    if train.count() <= top_n_model.LOCAL_MAX_RATINGS:
        driver = DriverRatings(train.select(COLUMNS).toPandas())
        return driver.model(train.sparkSession, rank, reg_param, max_iter, reg_user, reg_item, seed)
    return _with_als(_fit_baseline(train, reg_user, reg_item), train, rank, reg_param, max_iter, seed)


def _fit_params(rank: int, reg_param: float, max_iter: int, reg_user: float, reg_item: float, seed: int) -> dict:
    return {"rank": rank, "reg_param": reg_param, "max_iter": max_iter, "reg_user": reg_user, "reg_item": reg_item,
            "seed": seed}


def _fit_baseline(train: DataFrame, reg_user: float, reg_item: float) -> RatingModel:
    """The model of the biases alone, which every fit with this shrinkage starts from."""
    bounds = train.agg(F.min("rating"), F.max("rating")).first()
    mu, user_bias, item_bias = fit_biases(train, reg_user, reg_item)
    return RatingModel(mu, user_bias, item_bias, None, None, float(bounds[0]), float(bounds[1]),
                       {"reg_user": reg_user, "reg_item": reg_item})


def _with_als(baseline: RatingModel, train: DataFrame, rank: int, reg_param: float, max_iter: int,
              seed: int) -> RatingModel:
    model = dataclasses.replace(baseline, params=_fit_params(
        rank, reg_param, max_iter, baseline.params["reg_user"], baseline.params["reg_item"], seed))
    if rank > 0:
        residuals = _with_baseline(model, train.select("userId", "movieId", "rating")).select(
            "userId", "movieId", (F.col("rating") - F.col("_baseline")).alias("residual")
        )
        als = ALS(rank=rank, regParam=reg_param, maxIter=max_iter, seed=seed, userCol="userId", itemCol="movieId",
                  ratingCol="residual", coldStartStrategy="nan", nonnegative=False, implicitPrefs=False)
        fitted = als.fit(residuals)
        model.user_factors, model.item_factors = fitted.userFactors, fitted.itemFactors
    return model


def predict(model: RatingModel, pairs: DataFrame) -> DataFrame:
    """``pairs`` (userId, movieId, ...) with a ``prediction`` column, never null."""
    scored = _with_baseline(model, pairs)
    if model.user_factors is not None:
        users = model.user_factors.select(F.col("id").alias("userId"), F.col("features").alias("_x"))
        items = model.item_factors.select(F.col("id").alias("movieId"), F.col("features").alias("_y"))
        dot = F.aggregate(F.zip_with("_x", "_y", lambda x, y: x.cast("double") * y.cast("double")), F.lit(0.0),
                          lambda total, term: total + term)
        scored = (scored.join(users, "userId", "left").join(items, "movieId", "left")
                  .withColumn("_als", F.coalesce(dot, F.lit(0.0))).drop("_x", "_y"))
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

    items = model.item_factors.join(
        model.item_bias.withColumnRenamed("movieId", "id"), "id", "left"
    ).toPandas()
    item_ids = items["id"].to_numpy(dtype=np.int64)
    vectors = np.hstack([
        np.vstack(items["features"].to_numpy()).astype(np.float32),
        items["b_item"].fillna(0.0).to_numpy(dtype=np.float32)[:, None],
    ])
    users = model.user_factors.select(
        F.col("id").alias("userId"), F.concat(F.col("features"), F.array(F.lit(1.0).cast("float"))).alias("features")
    )
    return users, item_ids, vectors


class DriverRatings:
    """The rating model's fits on the driver, for ratings small enough to hold in memory, and the validation
    metrics of the tuning trials.

    It fits what Spark fits: biases by the same alternating shrunk means (:func:`fit_biases`), then explicit
    ALS on the residuals solving Spark's equations per row, (Y_r'Y_r + regParam n_r I) x = Y_r' r
    (``ALS.computeFactors``, ALS-WR), items then users each iteration from seeded unit-norm user factors.
    :meth:`metrics` scores as :func:`predict` does: unknown users or movies fall back to the biases,
    predictions clipped to the training range. The factors differ from Spark's by their random start
    only, so the RMSE is Spark's to within the spread of ALS's local optima. The ratings are sorted by
    (userId, movieId), so a fit does not depend on the order they were collected in.
    """

    def __init__(self, vtrain, vtest=None):
        import numpy as np

        vtrain = vtrain.sort_values(["userId", "movieId"], kind="stable")
        self.user_ids = np.unique(vtrain["userId"].to_numpy(dtype=np.int64))
        self.item_ids = np.unique(vtrain["movieId"].to_numpy(dtype=np.int64))
        self.users = np.searchsorted(self.user_ids, vtrain["userId"].to_numpy(dtype=np.int64))
        self.items = np.searchsorted(self.item_ids, vtrain["movieId"].to_numpy(dtype=np.int64))
        self.ratings = vtrain["rating"].to_numpy(dtype=np.float64)
        self.bounds = (float(self.ratings.min()), float(self.ratings.max()))
        if vtest is not None:
            self.test_users, self.test_known_users = self._positions(self.user_ids, vtest["userId"])
            self.test_items, self.test_known_items = self._positions(self.item_ids, vtest["movieId"])
            self.test_ratings = vtest["rating"].to_numpy(dtype=np.float64)
        self._biases: dict[tuple[float, float], tuple] = {}
        # The ratings grouped by user and by movie (the same for every trial; only the residuals change).
        self._by_user, self._by_item = self._grouping(self.users), self._grouping(self.items)

    @staticmethod
    def _grouping(key):
        import numpy as np

        return np.argsort(key, kind="stable"), np.cumsum(np.bincount(key))[:-1]

    @staticmethod
    def grouped(grouping, values) -> list:
        """``values`` (aligned with the ratings) as one array per user or movie of ``grouping``."""
        import numpy as np

        order, bounds = grouping
        return np.split(values[order], bounds)

    @staticmethod
    def _positions(ids, column):
        import numpy as np

        values = column.to_numpy(dtype=np.int64)
        at = np.minimum(np.searchsorted(ids, values), len(ids) - 1)
        return at, ids[at] == values

    def biases(self, reg_user: float, reg_item: float, iterations: int = 3):
        """(mu, user biases, movie biases) as :func:`fit_biases` computes them; fitted once per shrinkage."""
        import numpy as np

        if (reg_user, reg_item) not in self._biases:
            mu = math.fsum(self.ratings) / len(self.ratings)
            d = self.ratings - mu
            n_user, n_item = np.bincount(self.users), np.bincount(self.items)
            user_bias = np.zeros(len(self.user_ids))
            for _ in range(max(1, iterations)):
                item_bias = np.bincount(self.items, weights=d - user_bias[self.users]) / (n_item + reg_item)
                user_bias = np.bincount(self.users, weights=d - item_bias[self.items]) / (n_user + reg_user)
            self._biases[reg_user, reg_item] = (mu, user_bias, item_bias)
        return self._biases[reg_user, reg_item]

    def als(self, residual, rank: int, reg: float, iterations: int, seed: int):
        """(user factors, movie factors) of explicit ALS on ``residual`` (aligned with the ratings)."""
        import numpy as np

        user_rows, user_targets = self.grouped(self._by_user, self.items), self.grouped(self._by_user, residual)
        item_rows, item_targets = self.grouped(self._by_item, self.users), self.grouped(self._by_item, residual)
        users = np.random.default_rng(seed).standard_normal((len(self.user_ids), rank))
        users /= np.linalg.norm(users, axis=1, keepdims=True)
        zero = np.zeros((rank, rank))
        for _ in range(iterations):
            items = top_n_model.solve_rows(item_rows, users, zero, reg, 1.0, targets=item_targets).astype(np.float64)
            users = top_n_model.solve_rows(user_rows, items, zero, reg, 1.0, targets=user_targets).astype(np.float64)
        return users, items

    def fit(self, rank: int, reg: float, reg_user: float, reg_item: float, max_iter: int, seed: int):
        """(mu, user biases, movie biases, user factors, movie factors); factors None for ``rank = 0``."""
        mu, user_bias, item_bias = self.biases(reg_user, reg_item)
        if rank <= 0:
            return mu, user_bias, item_bias, None, None
        residual = self.ratings - mu - user_bias[self.users] - item_bias[self.items]
        return (mu, user_bias, item_bias, *self.als(residual, rank, reg, max_iter, seed))

    def model(self, spark: SparkSession, rank: int, reg: float, max_iter: int, reg_user: float, reg_item: float,
              seed: int) -> RatingModel:
        """The fit as a :class:`RatingModel` of Spark frames, as :func:`fit` returns it."""
        import numpy as np
        import pandas as pd

        mu, user_bias, item_bias, users, items = self.fit(rank, reg, reg_user, reg_item, max_iter, seed)

        def frame(key: str, ids, name: str, values) -> DataFrame:
            return spark.createDataFrame(pd.DataFrame({key: ids.astype(np.int32), name: values}), f"{key} int, {name} double")

        def factors(ids, vectors) -> DataFrame | None:
            if vectors is None:
                return None
            rows = pd.DataFrame({"id": ids.astype(np.int32), "features": vectors.astype(np.float32).tolist()})
            return spark.createDataFrame(rows, FACTORS_SCHEMA)

        return RatingModel(mu, frame("userId", self.user_ids, "b_user", user_bias),
                           frame("movieId", self.item_ids, "b_item", item_bias),
                           factors(self.user_ids, users), factors(self.item_ids, items), *self.bounds,
                           _fit_params(rank, reg, max_iter, reg_user, reg_item, seed), engine="driver")

    def metrics(self, rank: int, reg: float, reg_user: float, reg_item: float, max_iter: int, seed: int) -> dict:
        """The validation RMSE and MAE of the model :func:`fit` would fit with these parameters."""
        import numpy as np

        mu, user_bias, item_bias, users, items = self.fit(rank, reg, reg_user, reg_item, max_iter, seed)
        known_u, known_i = self.test_known_users, self.test_known_items
        predicted = (mu + np.where(known_u, user_bias[self.test_users], 0.0)
                     + np.where(known_i, item_bias[self.test_items], 0.0))
        if users is not None:
            interaction = np.einsum("ij,ij->i", users[self.test_users], items[self.test_items])
            predicted += np.where(known_u & known_i, interaction, 0.0)
        error = np.clip(predicted, *self.bounds) - self.test_ratings
        return {"rmse": math.sqrt(math.fsum(error * error) / len(error)), "mae": math.fsum(np.abs(error)) / len(error)}


def tune(train: DataFrame, seed: int, validation_fraction: float, max_users: int | None, max_iter: int,
         ranks=RANKS, reg_params=REG_PARAMS, bias_regs=BIAS_REGS, split: str = "random") -> tuple[dict, list[dict]]:
    """Choose (reg_user, reg_item), then regParam and rank by validation RMSE. Returns (params, trials)."""
    vtrain, vtest, fraction = evaluation.validation_split(train, validation_fraction, max_users, seed, split)
    started = time.monotonic()
    trials: list[dict] = []
    on_driver = vtrain.count() <= top_n_model.LOCAL_MAX_RATINGS
    if on_driver:
        driver = DriverRatings(vtrain.select(COLUMNS).toPandas(), vtest.select(COLUMNS).toPandas())
    # Every ALS trial in Spark shares the chosen shrinkage: its biases are fitted once (6 driver round trips).
    baselines: dict[tuple[float, float], RatingModel] = {}

    def trial(rank: int, reg: float, reg_user: float, reg_item: float) -> float:
        t0 = time.monotonic()
        if on_driver:
            metrics = driver.metrics(rank, reg, reg_user, reg_item, max_iter, seed)
        else:
            if (reg_user, reg_item) not in baselines:
                baselines[reg_user, reg_item] = _fit_baseline(vtrain, reg_user, reg_item)
            model = _with_als(baselines[reg_user, reg_item], vtrain, rank, reg, max_iter, seed)
            metrics = evaluation.rating_metrics(predict(model, vtest))
        trials.append({"rank": rank, "reg_param": reg, "reg_user": reg_user, "reg_item": reg_item,
                       "max_iter": max_iter, "rmse": metrics["rmse"], "mae": metrics["mae"],
                       "seconds": round(time.monotonic() - t0, 1), "user_fraction": round(fraction, 4),
                       "engine": "driver" if on_driver else "spark"})
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


def factor_paths(folder: str) -> dict[str, str]:
    """Where :func:`save` writes the factors: ``<folder>/userFactors`` and ``<folder>/itemFactors``, the
    Parquet folders a Spark ALSModel saves (so the item factors of either are read the same way)."""
    return {"user_factors": folder + "/userFactors", "item_factors": folder + "/itemFactors"}


def save(model: RatingModel, folder: str) -> dict[str, str]:
    """The factors as Parquet in ``<folder>`` (:func:`factor_paths`) and the biases beside it."""
    paths = {**factor_paths(folder), "user_bias": folder + "_bias/users", "item_bias": folder + "_bias/items"}
    frames = {"user_factors": model.user_factors, "item_factors": model.item_factors,
              "user_bias": model.user_bias, "item_bias": model.item_bias}
    for name, frame in frames.items():
        frame.write.mode("overwrite").parquet(paths[name])
    return paths
