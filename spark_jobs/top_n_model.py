"""The top-N model: EASE blended with implicit-feedback ALS, computed with Spark and numpy.

score(u, i) = z_u(EASE) + ials_weight * z_u(iALS), each part standardised per user over the movies.

- **EASE** (Steck 2019): a closed-form item-item regression on binary feedback,
  B = I - P diag(1 / diag(P)), P = (X'X + reg I)^-1, zero diagonal. The Gram matrix X'X is accumulated
  per Spark partition with numpy and summed on the driver, which inverts it. Restricted to the
  ``max_items`` most-rated movies so the N x N inverse stays bounded at any data size (6,000 movies:
  a 150 MB float32 matrix); other movies are never recommended.
- **iALS** (Hu, Koren, Volinsky 2008) with one unit of feedback per rating (confidence 1 + alpha,
  regularisation reg * n as in ALS-WR). Above ``LOCAL_MAX_RATINGS`` it is Spark's own
  ``ALS(implicitPrefs=True)``, which solves exactly these equations (regParam = reg, no mapping); up to
  it, the same equations are solved on the driver with batched numpy solves (:func:`solve_rows`), about
  7x faster than Spark's ALS on ml-latest-small at equal quality. Our own Spark solver (mapInPandas) was
  1.44x faster than Spark's ALS at ML-25M scale, short of the 2x that would keep it (bench/RESULTS.md,
  "iALS: Spark's ALS or our own solver").

The two make different errors (a full-rank item-item regression, a low-rank factorisation), which is
why the blend ranks better than either. Every rating counts as an interaction, whatever its value:
on MovieLens, which movies a user chose to rate predicts what they watch next better than the stars.

Tuning (:func:`tune`): on a validation split of the training part (seed + 1), over a user sample when
there are many users, for NDCG@k. iALS is fitted once; each EASE regularisation costs one inverse and
one scoring pass that ranks every blend weight at once; the regularisation grid is extended by
doubling or halving while its best value sits at an end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import evaluation
from spark_jobs.common import ranking, scoring, spec

EASE_REGS = (100.0, 200.0, 400.0, 800.0)
#: Up to this many ratings, EASE's Gram matrix and the iALS solves run on the driver with numpy: the data
#: fits in memory many times over, and it saves Spark's per-job overhead, which dominates on
#: ml-latest-small-sized data (iALS: 2.1 s on the driver, 14.9 s with Spark's ALS). Above, Spark's ALS.
LOCAL_MAX_RATINGS = 2_000_000
IALS_WEIGHTS = (0.0, 0.5, 1.0, 2.0)


# ------------------------------------------------------------------------------------------------
# The training feedback as rows of item positions, shared by EASE, iALS and scoring
# ------------------------------------------------------------------------------------------------


def _index_frame(spark, ids: np.ndarray, id_col: str, idx_col: str) -> DataFrame:
    import pandas as pd

    pdf = pd.DataFrame({id_col: np.asarray(ids).astype("int32"), idx_col: np.arange(len(ids), dtype="int32")})
    return spark.createDataFrame(pdf, schema=f"{id_col} int, {idx_col} int")


def _group_rows(pairs: DataFrame, key: str, idx: str, partitions: int) -> DataFrame:
    """key, idx (ascending positions): one row per ``key``."""
    return (
        pairs.groupBy(key)
        .agg(F.sort_array(F.collect_list(F.col(idx))).alias("_positions"))
        .select(F.col(key).alias("key"), F.col("_positions").alias("idx"))
        .repartition(partitions, "key")
    )


@dataclass
class Interactions:
    """Training ratings over ``item_ids`` (the most-rated movies), grouped by user; cached.

    ``by_user``: (key = userId, idx = positions in ``item_ids``); ``pairs``: (movieId, userId, idx), one
    row per rating of those movies (Spark's ALS reads it).
    """

    item_ids: np.ndarray  # sorted movie ids
    user_ids: np.ndarray  # sorted user ids with at least one rating of those movies
    popularity: np.ndarray  # training ratings per item (aligned with item_ids)
    by_user: DataFrame
    pairs: DataFrame
    partitions: int
    ratings: int
    _user_rows: list | None = None

    @property
    def local(self) -> bool:
        return self.ratings <= LOCAL_MAX_RATINGS

    def user_rows(self) -> list[np.ndarray]:
        """Each user's item positions, aligned with ``user_ids`` (collected once; small data only)."""
        if self._user_rows is None:
            pdf = self.by_user.toPandas()
            by_key = dict(zip(pdf["key"].to_numpy(dtype=np.int64).tolist(), pdf["idx"]))
            self._user_rows = [np.asarray(by_key[int(u)], dtype=np.int64) for u in self.user_ids]
        return self._user_rows

    def release(self) -> None:
        self.by_user.unpersist()


def interactions(train: DataFrame, max_items: int | None) -> Interactions:
    """Group the training ratings by user over the ``max_items`` most-rated movies (ties: smaller id)."""
    spark = train.sparkSession
    counts = train.groupBy("movieId").count().toPandas().sort_values(["count", "movieId"], ascending=[False, True])
    if max_items:
        counts = counts.head(int(max_items))
    counts = counts.sort_values("movieId")
    item_ids = counts["movieId"].to_numpy(dtype=np.int64)
    partitions = max(2, spark.sparkContext.defaultParallelism)
    pairs = train.select("userId", "movieId").join(F.broadcast(_index_frame(spark, item_ids, "movieId", "idx")), "movieId")
    by_user = _group_rows(pairs, "userId", "idx", partitions).cache()
    user_ids = np.sort(by_user.select("key").toPandas()["key"].to_numpy(dtype=np.int64))
    popularity = counts["count"].to_numpy(dtype=np.float32)
    return Interactions(item_ids, user_ids, popularity, by_user, pairs, partitions, int(popularity.sum()))


# ------------------------------------------------------------------------------------------------
# EASE
# ------------------------------------------------------------------------------------------------


def item_gram(data: Interactions) -> np.ndarray:
    """X'X over ``data.item_ids`` (float64, N x N), X the binary user x movie matrix.

    Per partition, a light user adds its n^2 co-occurrence cells directly (cost n^2, nothing of size
    N^2); heavy users (n >= N/8) are stacked in dense blocks and added with one matrix product at BLAS
    speed. Each partition returns its partial matrix in row chunks; counts are whole numbers, exact in
    float32, so the sum does not depend on the order of the partitions.
    """
    n_items = len(data.item_ids)
    if data.local:
        return partial_gram(data.user_rows(), n_items).astype(np.float64)
    chunk_rows = max(1, 16_000_000 // max(1, n_items))

    def accumulate(batches):
        import pandas as pd

        gram = partial_gram((idx for pdf in batches for idx in pdf["idx"]), n_items)
        for start in range(0, n_items, chunk_rows):
            yield pd.DataFrame({"row0": [start], "data": [gram[start: start + chunk_rows].tobytes()]})

    gram = np.zeros((n_items, n_items), dtype=np.float64)
    for row in data.by_user.select("idx").mapInPandas(accumulate, "row0 int, data binary").collect():
        block = np.frombuffer(row["data"], dtype=np.float32).reshape(-1, n_items)
        gram[row["row0"]: row["row0"] + block.shape[0]] += block
    return gram


def partial_gram(rows, n_items: int) -> np.ndarray:
    """X'X (float32) of the users whose item positions ``rows`` yields."""
    dense_min = max(64, n_items // 8)
    gram = np.zeros((n_items, n_items), dtype=np.float32)
    flat = gram.reshape(-1)
    heavy: list[np.ndarray] = []

    def flush():
        if heavy:
            x = np.zeros((len(heavy), n_items), dtype=np.float32)
            for row, idx in enumerate(heavy):
                x[row, idx] = 1.0
            gram.__iadd__(x.T @ x)
            heavy.clear()

    for idx in rows:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size >= dense_min:
            heavy.append(idx)
            if len(heavy) >= 256:
                flush()
        elif idx.size:
            flat[(idx[:, None] * n_items + idx[None, :]).reshape(-1)] += 1.0
    flush()
    return gram


def ease_weights(gram: np.ndarray, reg: float) -> np.ndarray:
    """EASE's closed form on the driver: float64 inverse, float32 N x N result with a zero diagonal."""
    g = gram.copy()
    g[np.diag_indices_from(g)] += reg
    p = spd_inverse(g)
    del g
    p /= -np.diag(p)[None, :]
    np.fill_diagonal(p, 0.0)
    return p.astype(np.float32)


def spd_inverse(g: np.ndarray, block_rows: int = 512) -> np.ndarray:
    """The inverse of a symmetric positive definite float64 matrix; ``g`` is overwritten.

    With SciPy: LAPACK's Cholesky factorisation and inverse (``dpotrf`` + ``dpotri``, about a third of the
    work of a general inverse: 2.1 s against 5.8 s at 6,000 movies here), in place, the lower triangle
    then mirrored from the upper one block by block (no N x N temporary). Without SciPy (a cluster whose
    Python lacks it): numpy's general inverse.
    """
    try:
        from scipy.linalg import lapack
    except ImportError:
        return np.linalg.inv(g)
    factor, info = lapack.dpotrf(g, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"X'X + reg I is not positive definite (LAPACK dpotrf info {info})")
    inverse, info = lapack.dpotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"X'X + reg I is singular (LAPACK dpotri info {info})")
    n = inverse.shape[0]
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        block = inverse[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        block[lower] = block.T[lower]
        inverse[stop:, start:stop] = inverse[start:stop, stop:].T
    return inverse


# ------------------------------------------------------------------------------------------------
# Implicit ALS: Spark's ALS on large data, batched numpy solves on the driver on small data
# ------------------------------------------------------------------------------------------------


def solve_rows(idx_list, y: np.ndarray, yty: np.ndarray, reg: float, alpha: float,
               max_cells: int = 4_000_000, targets=None) -> np.ndarray:
    """Regularised least-squares solutions for rows given as positions into ``y``, float32.

    Row r solves (Y'Y + alpha Y_r'Y_r + reg n_r I) x = Y_r' t_r, with t_r = 1 + alpha (implicit ALS, unit
    feedback) or ``targets[r]`` (its values, aligned with ``idx_list[r]``: explicit ALS, with ``yty`` zero
    and ``alpha`` 1). Rows are sorted by length and solved in groups padded to the group's longest row: one
    batched matrix product and one batched ``np.linalg.solve`` per group, no numpy call per row.
    """
    n_rows, rank = len(idx_list), y.shape[1]
    out = np.zeros((n_rows, rank), dtype=np.float32)
    lengths = np.fromiter((len(i) for i in idx_list), dtype=np.int64, count=n_rows)
    order = np.argsort(lengths, kind="stable")
    eye = np.eye(rank)
    start = 0
    while start < n_rows:
        stop = start + 1
        while stop < n_rows and (stop - start + 1) * max(1, int(lengths[order[stop]])) * rank <= max_cells:
            stop += 1  # lengths ascend: the group's last row is its longest
        rows = order[start:stop]
        width = max(1, int(lengths[rows[-1]]))
        idx = np.zeros((len(rows), width), dtype=np.int64)
        live = np.zeros((len(rows), width))  # 1 at a rated position, 0 in the padding
        t = None if targets is None else np.zeros((len(rows), width))
        for j, r in enumerate(rows):
            idx[j, : lengths[r]] = idx_list[r]
            live[j, : lengths[r]] = 1.0
            if t is not None:
                t[j, : lengths[r]] = targets[r]
        yg = y[idx] * live[:, :, None]  # padding rows are zero
        a = alpha * np.matmul(np.swapaxes(yg, 1, 2), yg)
        a += yty[None, :, :]
        a += (reg * lengths[rows]).astype(np.float64)[:, None, None] * eye[None, :, :]
        if t is None:
            b = (1.0 + alpha) * yg.sum(axis=1)
        else:
            b = np.matmul(np.swapaxes(yg, 1, 2), t[:, :, None])[:, :, 0]
        out[rows] = np.linalg.solve(a, b[:, :, None])[:, :, 0].astype(np.float32)
        start = stop
    return out


@dataclass
class Factors:
    user_ids: np.ndarray  # sorted
    user_factors: np.ndarray  # float32, aligned with user_ids
    item_ids: np.ndarray  # sorted
    item_factors: np.ndarray


def fit_ials(data: Interactions, rank: int, reg: float, alpha: float, iterations: int, seed: int) -> Factors:
    """iALS factors of ``data``: on the driver up to ``LOCAL_MAX_RATINGS`` ratings, else Spark's ALS.

    Both are seeded, so reruns give identical factors. The driver path alternates half-steps from a
    seeded numpy draw and does not depend on the partitioning; Spark's ALS starts from per-block seeded
    draws, so its factors depend on ``data.partitions`` (its block count) as well as on the seed.
    """
    if not data.local:
        return fit_spark_als(data, rank, reg, alpha, iterations, seed)
    rng = np.random.default_rng(seed)
    items = (rng.standard_normal((len(data.item_ids), rank)) * 0.01).astype(np.float32)
    users = np.zeros((len(data.user_ids), rank), dtype=np.float32)
    user_rows = data.user_rows()
    item_rows = _transpose(user_rows, len(data.item_ids))
    for _ in range(iterations):
        y = items.astype(np.float64)
        users = solve_rows(user_rows, y, y.T @ y, reg, alpha)
        y = users.astype(np.float64)
        items = solve_rows(item_rows, y, y.T @ y, reg, alpha)
    return Factors(data.user_ids, users, data.item_ids, items)


def fit_spark_als(data: Interactions, rank: int, reg: float, alpha: float, iterations: int, seed: int,
                  blocks: int | None = None) -> Factors:
    """Spark's ``ALS(implicitPrefs=True)`` on (userId, movieId, 1.0), factors aligned with the ids.

    Spark solves, per row, (Y'Y + alpha sum_i r_i y_i y_i' + regParam n I) x = sum_i (1 + alpha r_i) y_i
    over its n positive ratings (``ALS.computeFactors``): with r = 1, :func:`solve_rows`' equations, so
    ``regParam = reg``. ``blocks`` user and item blocks (default ``data.partitions``): a fixed count, so
    that reruns start from the same per-block seeded draws. Its last half-step solves the users.
    """
    from pyspark.ml.recommendation import ALS

    blocks = blocks or data.partitions
    als = ALS(rank=rank, regParam=reg, alpha=alpha, maxIter=iterations, seed=seed, implicitPrefs=True,
              userCol="userId", itemCol="movieId", ratingCol="rating", numUserBlocks=blocks, numItemBlocks=blocks)
    model = als.fit(data.pairs.select("userId", "movieId", F.lit(1.0).cast("float").alias("rating")))

    def aligned(frame: DataFrame, ids: np.ndarray) -> np.ndarray:
        pdf = frame.toPandas()
        out = np.zeros((len(ids), rank), dtype=np.float32)
        if len(pdf):
            out[np.searchsorted(ids, pdf["id"].to_numpy(dtype=np.int64))] = np.vstack(pdf["features"].to_numpy())
        return out

    users, items = aligned(model.userFactors, data.user_ids), aligned(model.itemFactors, data.item_ids)
    # ALS keeps its final factor RDDs cached; the factors now live on the driver.
    for rdd in list(data.pairs.sparkSession.sparkContext._jsc.getPersistentRDDs().values()):
        if rdd.name() in ("userFactors", "itemFactors"):
            rdd.unpersist(False)
    return Factors(data.user_ids, users, data.item_ids, items)


def _transpose(user_rows: list[np.ndarray], n_items: int) -> list[np.ndarray]:
    """Each item's user positions (ascending), from each user's item positions."""
    lengths = np.fromiter((len(r) for r in user_rows), dtype=np.int64, count=len(user_rows))
    users = np.repeat(np.arange(len(user_rows)), lengths)
    items = np.concatenate(user_rows) if len(user_rows) else np.zeros(0, np.int64)
    order = np.argsort(items, kind="stable")
    bounds = np.cumsum(np.bincount(items, minlength=n_items))[:-1]
    return np.split(users[order], bounds)


# ------------------------------------------------------------------------------------------------
# The blend and its top-N lists
# ------------------------------------------------------------------------------------------------


@dataclass
class TopNModel:
    data: Interactions
    ease: np.ndarray | None  # N x N weights
    ials: Factors | None
    ials_weight: float
    params: dict = field(default_factory=dict)


def _zscore(scores: np.ndarray) -> np.ndarray:
    scores -= scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    scores /= np.where(std > 0, std, 1.0)
    return scores


def recommend(model: TopNModel, k: int, users: DataFrame | None = None, weights: list[float] | None = None,
              max_cells: int = 4_000_000) -> DataFrame:
    """Top-k unseen movies per user: (userId, rank, movieId, score), plus ``variant`` with several weights.

    Per block of users: EASE scores X_b @ B and iALS scores U_b @ V', each z-scored per user, added with
    the blend weight, seen movies masked, top k by ``argpartition``; a tiny popularity term breaks ties.
    ``users``: a frame with userId (default: every training user); a user with no rating of the modelled
    movies gets the most popular ones. ``weights``: several blend weights scored in one pass (tuning).
    """
    data = model.data
    tie = (data.popularity / max(1.0, float(data.popularity.max())) * 1e-3).astype(np.float32)
    weights = [model.ials_weight] if weights is None else list(weights)
    ials = model.ials
    shared = {
        "item_ids": data.item_ids, "b": model.ease, "tie": tie,
        "v": ials.item_factors if ials else None, "uids": ials.user_ids if ials else None,
        "u": ials.user_factors if ials else None,
    }
    who = data.by_user.select(F.col("key").alias("userId")) if users is None else users.select("userId").distinct()
    scored = who.join(data.by_user.select(F.col("key").alias("userId"), "idx"), "userId", "left")
    several = len(weights) > 1

    def rank(s, batch):
        ids, b, v = s["item_ids"], s["b"], s["v"]
        block = max(1, max_cells // max(1, len(ids)))
        for start in range(0, len(batch), block):
            part = batch.iloc[start: start + block]
            x = np.zeros((len(part), len(ids)), dtype=np.float32)
            for row, idx in enumerate(part["idx"]):
                if idx is not None and len(idx):
                    x[row, np.asarray(idx, dtype=np.int64)] = 1.0
            ease = _zscore(x @ b) if b is not None else None
            factors = None
            if v is not None:
                user = part["userId"].to_numpy(dtype=np.int64)
                pos = np.minimum(np.searchsorted(s["uids"], user), len(s["uids"]) - 1)
                known = (s["uids"][pos] == user)[:, None]
                factors = _zscore(np.where(known, s["u"][pos], 0.0).astype(np.float32) @ v.T)
            seen = x > 0
            for variant, weight in enumerate(weights):
                if ease is not None and factors is not None:
                    total = ease + np.float32(weight) * factors
                else:
                    total = (ease if ease is not None else factors).copy()
                total += s["tie"]
                total[seen] = -np.inf
                top, top_scores = ranking.top_k_dense(total, k)
                top_ids = np.where(top >= 0, ids[np.maximum(top, 0)], -1)
                yield part["userId"].to_numpy(), top_ids, top_scores, {"variant": np.int32(variant)} if several else {}

    return scoring.top_k_lists(scored, shared, rank, extra_schema=", variant int" if several else "")


def fit(train: DataFrame, params: dict, seed: int) -> TopNModel:
    """The blend with ``params`` (its settings in the run spec; those left out take their defaults);
    ``ials_weight = 0`` is EASE alone. Call ``model.data.release()`` when done with it."""
    defaults = spec.model_defaults(spec.TOP_N_MODEL)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"unknown top-N model parameters {unknown}; known: {sorted(defaults)}")
    p = {**defaults, **params}
    data = interactions(train, p["max_items"])
    ease = ease_weights(item_gram(data), p["ease_reg"])
    ials = None
    if p["ials_weight"] > 0:
        ials = fit_ials(data, p["ials_rank"], p["ials_reg"], p["ials_alpha"], p["ials_iterations"], seed)
    return TopNModel(data, ease, ials, p["ials_weight"], {**p, "items": int(len(data.item_ids)), "seed": seed})


def tune(train: DataFrame, params: dict, seed: int, validation_fraction: float, max_users: int | None, k: int,
         ease_regs=EASE_REGS, ials_weights=IALS_WEIGHTS, extend: int = 2, split: str = "random"
         ) -> tuple[dict, list[dict]]:
    """Choose EASE's regularisation and the iALS blend weight for NDCG@k (then precision@k) on a
    validation split of ``train``. Returns (chosen parameters, every trial with its metrics)."""
    p = {**spec.model_defaults(spec.TOP_N_MODEL), **params}
    vtrain, vtest, fraction = evaluation.validation_split(train, validation_fraction, max_users, seed, split)
    started = time.monotonic()
    catalogue = vtrain.select("movieId").distinct().count()
    data = interactions(vtrain, p["max_items"])
    gram = item_gram(data)
    ials = fit_ials(data, p["ials_rank"], p["ials_reg"], p["ials_alpha"], p["ials_iterations"], seed)
    users = vtest.select("userId").distinct()
    weights = sorted(ials_weights)
    trials: list[dict] = []
    ndcg, precision = f"ndcg_at_{k}", f"precision_at_{k}"

    def trial(reg: float) -> None:
        t0 = time.monotonic()
        model = TopNModel(data, ease_weights(gram, reg), ials, 1.0)
        recs = recommend(model, k, users=users, weights=weights)
        if "variant" not in recs.columns:
            recs = recs.withColumn("variant", F.lit(0))
        for variant, metrics in sorted(evaluation.ranking_metrics_by_variant(recs, vtest, k, catalogue).items()):
            trials.append({"ease_reg": reg, "ials_weight": weights[variant], **metrics,
                           "seconds": round(time.monotonic() - t0, 1), "user_fraction": round(fraction, 4)})

    def best() -> dict:
        return max(trials, key=lambda t: (t[ndcg], t[precision], -t["ease_reg"], -t["ials_weight"]))

    regs = sorted(ease_regs)
    for reg in regs:
        trial(reg)
    for _ in range(extend):
        if best()["ease_reg"] == regs[-1]:
            regs.append(regs[-1] * 2)
            trial(regs[-1])
        elif best()["ease_reg"] == regs[0]:
            regs.insert(0, regs[0] / 2)
            trial(regs[0])
        else:
            break
    chosen = best()
    data.release()
    vtrain.unpersist()
    vtest.unpersist()
    return ({**p, "ease_reg": chosen["ease_reg"], "ials_weight": chosen["ials_weight"],
             "tuning_s": round(time.monotonic() - started, 1), "tuning_user_fraction": round(fraction, 4)}, trials)


def save(model: TopNModel, folder: str) -> dict[str, str]:
    """The iALS factors and the modelled movies as Parquet. EASE's N x N weights are not kept (150 MB
    at 6,000 movies): they are recomputed from the data and ``params.json`` in seconds."""
    import pandas as pd

    spark = model.data.by_user.sparkSession
    paths = {"items": folder + "/items"}
    items = pd.DataFrame({"movieId": model.data.item_ids.astype("int32"),
                          "n_ratings": model.data.popularity.astype("int64")})
    if model.ials is not None:
        items["features"] = model.ials.item_factors.tolist()
        users = pd.DataFrame({"userId": model.ials.user_ids.astype("int32"), "features": model.ials.user_factors.tolist()})
        paths["user_factors"] = folder + "/user_factors"
        spark.createDataFrame(users, "userId int, features array<float>").write.mode("overwrite").parquet(paths["user_factors"])
        spark.createDataFrame(items, "movieId int, n_ratings long, features array<float>").write.mode("overwrite").parquet(paths["items"])
    else:
        spark.createDataFrame(items, "movieId int, n_ratings long").write.mode("overwrite").parquet(paths["items"])
    return paths
