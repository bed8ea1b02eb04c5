"""The rating model, the top-N model and the evaluation protocol, on small in-memory inputs."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from spark_jobs import evaluation, rating_model, top_n_model
from spark_jobs.common import scoring

pytestmark = pytest.mark.spark


def _ratings(spark, rows):
    return spark.createDataFrame(rows, "userId int, movieId int, rating double")


def _latent_ratings(n_users=40, n_items=30, seed=3):
    """Ratings = 3 + user bias + item bias + a rank-2 interaction, rounded to half stars; 60% observed."""
    rng = np.random.default_rng(seed)
    bu, bi = rng.normal(0, 0.5, n_users), rng.normal(0, 0.5, n_items)
    p, q = rng.normal(0, 0.6, (n_users, 2)), rng.normal(0, 0.6, (n_items, 2))
    rows = []
    for u in range(n_users):
        for i in range(n_items):
            if rng.random() < 0.6:
                r = float(np.clip(np.round((3 + bu[u] + bi[i] + p[u] @ q[i]) * 2) / 2, 0.5, 5.0))
                rows.append((u + 1, i + 1, r))
    return rows


def test_biases_are_shrunk_means_of_the_residuals(spark):
    # One user, movie 1 rated 5 by everyone (2 users), movie 2 rated 3 (2 users): mu = 4.
    df = _ratings(spark, [(1, 1, 5.0), (2, 1, 5.0), (1, 2, 3.0), (2, 2, 3.0)])
    mu, users, items = rating_model.fit_biases(df, reg_user=0.0, reg_item=2.0, iterations=1)
    assert mu == 4.0
    b_item = {r["movieId"]: r["b_item"] for r in items.collect()}
    assert b_item == pytest.approx({1: 2 * 1.0 / (2 + 2.0), 2: 2 * -1.0 / (2 + 2.0)})
    b_user = {r["userId"]: r["b_user"] for r in users.collect()}
    assert b_user == pytest.approx({1: 0.0, 2: 0.0})


def test_rating_model_beats_the_biases_and_scores_every_pair(spark):
    rows = _latent_ratings()
    df = _ratings(spark, rows)
    train_df, test_df = evaluation.split(df, 0.25, 42)
    biases = rating_model.fit(train_df, 0, 0.0, 1, 2.0, 2.0, seed=1)
    full = rating_model.fit(train_df, 4, 0.05, 15, 2.0, 2.0, seed=1)
    rmse_biases = evaluation.rating_metrics(rating_model.predict(biases, test_df))["rmse"]
    scored = evaluation.rating_metrics(rating_model.predict(full, test_df))
    assert scored["rated_pairs"] == test_df.count()
    assert scored["rmse"] < rmse_biases, "the ALS part must learn the interaction the biases miss"
    # An unknown user and an unknown movie fall back to the biases, within the rating range.
    unknown = _ratings(spark, [(999, 1, 3.0), (1, 999, 3.0), (999, 999, 3.0)])
    predictions = {(r["userId"], r["movieId"]): r["prediction"] for r in rating_model.predict(full, unknown).collect()}
    assert predictions[(999, 999)] == pytest.approx(full.global_mean)
    assert all(0.5 <= p <= 5.0 for p in predictions.values())


def test_rating_model_ranking_follows_its_predictions(spark):
    df = _ratings(spark, _latent_ratings())
    model = rating_model.fit(df, 4, 0.05, 10, 2.0, 2.0, seed=1)
    user_factors, ids, vectors = rating_model.ranking_factors(model)
    pairs = spark.createDataFrame([(1, int(m), 0.0) for m in ids], "userId int, movieId int, rating double")
    predicted = {r["movieId"]: r["prediction"] for r in rating_model.predict(model, pairs).collect()}
    u = np.array(user_factors.where("userId = 1").first()["features"], dtype=np.float32)
    by_factors = dict(zip(ids.tolist(), (vectors @ u).tolist()))
    mu_bu = predicted[ids[0]] - by_factors[ids[0]]
    unclipped = [m for m in ids.tolist() if 0.5 < predicted[m] < 5.0]
    assert len(unclipped) > 10
    for m in unclipped:
        assert predicted[m] == pytest.approx(by_factors[m] + mu_bu, abs=1e-4)


@pytest.mark.parametrize("where", ["driver", "spark"])
def test_item_gram_counts_co_occurrences_for_light_and_heavy_users(spark, monkeypatch, where):
    if where == "spark":
        monkeypatch.setattr(top_n_model, "LOCAL_MAX_RATINGS", 0)
    rng = np.random.default_rng(0)
    rows = []
    for u in range(1, 300):
        n = 2 if u % 10 else 40  # every tenth user rates many movies (the dense path)
        for m in rng.choice(np.arange(1, 101), size=n, replace=False):
            rows.append((u, int(m), 4.0))
    data = top_n_model.interactions(_ratings(spark, rows), max_items=None)
    assert data.local == (where == "driver")
    x = np.zeros((300, len(data.item_ids)))
    for u, m, _ in rows:
        x[u, np.searchsorted(data.item_ids, m)] = 1.0
    np.testing.assert_array_equal(top_n_model.item_gram(data), x.T @ x)
    data.release()


def _ials_loss(x: np.ndarray, factors, reg: float, alpha: float) -> float:
    """The iALS objective on a dense binary user x item matrix ``x``: c (p - u'v)^2 over every pair plus
    reg (n_u |u|^2 + n_i |v|^2), with p = x and c = 1 + alpha x."""
    u, v = factors.user_factors.astype(float), factors.item_factors.astype(float)
    scores = u @ v.T
    fit = np.sum((1.0 + alpha * x) * (x - scores) ** 2)
    return float(fit + reg * (x.sum(axis=1) @ (u * u).sum(axis=1) + x.sum(axis=0) @ (v * v).sum(axis=1)))


def test_ials_on_the_driver_and_spark_als_solve_the_same_equations(spark, monkeypatch):
    data = top_n_model.interactions(_ratings(spark, _latent_ratings()), max_items=20)
    assert data.local and len(data.item_ids) == 20
    reg, alpha = 0.3, 2.0
    x = np.zeros((len(data.user_ids), len(data.item_ids)))
    for row, idx in enumerate(data.user_rows()):
        x[row, idx] = 1.0
    on_driver = top_n_model.fit_ials(data, rank=3, reg=reg, alpha=alpha, iterations=10, seed=1)
    monkeypatch.setattr(top_n_model, "LOCAL_MAX_RATINGS", 0)
    assert not data.local
    in_spark = top_n_model.fit_ials(data, rank=3, reg=reg, alpha=alpha, iterations=10, seed=1)
    for got in (on_driver, in_spark):
        np.testing.assert_array_equal(got.user_ids, data.user_ids)
        np.testing.assert_array_equal(got.item_ids, data.item_ids)
        assert np.abs(got.user_factors).sum() > 0 and np.abs(got.item_factors).sum() > 0
    # Each path's last half-step solved one side from the other: our normal equations (solve_rows) give
    # it back. The driver ends on the items; Spark's ALS on the users, which checks that Spark's ALS got
    # regParam = reg and alpha as solve_rows uses them, and that its factors are aligned with the ids.
    u = on_driver.user_factors.astype(float)
    items = top_n_model.solve_rows(top_n_model._transpose(data.user_rows(), 20), u, u.T @ u, reg, alpha)
    np.testing.assert_allclose(on_driver.item_factors, items, rtol=1e-4, atol=1e-6)
    v = in_spark.item_factors.astype(float)
    users = top_n_model.solve_rows(data.user_rows(), v, v.T @ v, reg, alpha)
    np.testing.assert_allclose(in_spark.user_factors, users, rtol=1e-4, atol=1e-6)
    # From different random starts, both reach about the same value of the same objective.
    driver_loss, spark_loss = _ials_loss(x, on_driver, reg, alpha), _ials_loss(x, in_spark, reg, alpha)
    assert abs(driver_loss - spark_loss) <= 0.01 * driver_loss
    # A seeded fit on a fixed block count: a rerun gives the same factors, bit for bit.
    again = top_n_model.fit_ials(data, rank=3, reg=reg, alpha=alpha, iterations=10, seed=1)
    np.testing.assert_array_equal(again.user_factors, in_spark.user_factors)
    np.testing.assert_array_equal(again.item_factors, in_spark.item_factors)
    data.release()


@pytest.fixture(params=["scipy", "numpy"])
def inverse_path(request, monkeypatch):
    """EASE's inverse with SciPy's Cholesky routines, and as on a cluster whose Python has no SciPy."""
    if request.param == "numpy":
        monkeypatch.setitem(sys.modules, "scipy.linalg", None)  # the import fails as if not installed
    return request.param


def test_spd_inverse_is_the_inverse_and_symmetric(inverse_path):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(37, 37))
    g = a @ a.T + 0.5 * np.eye(37)
    got = top_n_model.spd_inverse(g.copy(), block_rows=5)  # blocks that do not divide 37
    np.testing.assert_allclose(got @ g, np.eye(37), atol=1e-9)
    np.testing.assert_allclose(got, got.T, atol=1e-12)
    with pytest.raises(np.linalg.LinAlgError):
        top_n_model.spd_inverse(np.diag([1.0, -1.0, 2.0]) if inverse_path == "scipy" else np.zeros((3, 3)))


def test_ease_weights_solve_the_constrained_regression(inverse_path):
    rng = np.random.default_rng(1)
    x = (rng.random((50, 8)) < 0.4).astype(float)
    gram, reg = x.T @ x, 3.0
    b = top_n_model.ease_weights(gram, reg).astype(float)
    assert np.all(np.diag(b) == 0)
    # The closed form satisfies the stationarity condition of min ||X - XB||^2 + reg ||B||^2 with
    # diag(B) = 0: off the diagonal, (X'X + reg I) B = X'X.
    residual = (gram + reg * np.eye(8)) @ b - gram
    off = ~np.eye(8, dtype=bool)
    assert np.abs(residual[off]).max() < 1e-4


def test_ials_rows_solve_their_normal_equations():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(20, 3))
    rows = [np.array([1, 4, 7]), np.array([2]), np.array([], dtype=int), np.arange(0, 20, 2)]
    reg, alpha = 0.3, 2.0
    got = top_n_model.solve_rows(rows, y, y.T @ y, reg, alpha, max_cells=30)  # small groups: padding is used
    for row, idx in enumerate(rows):
        p = np.zeros(20)
        p[idx] = 1.0
        c = 1.0 + alpha * p
        a = y.T @ (c[:, None] * y) + reg * len(idx) * np.eye(3)
        expected = np.linalg.solve(a, y.T @ (c * p))
        np.testing.assert_allclose(got[row], expected, rtol=1e-4, atol=1e-6)


def test_top_n_never_recommends_seen_movies_and_serves_unknown_users(spark):
    rows = [(u, m, 4.0) for u in range(1, 31) for m in range(1, 21) if (u + m) % 3 and (u * m) % 7]
    df = _ratings(spark, rows)
    model = top_n_model.fit(df, {"ials_rank": 4, "ials_iterations": 3, "ease_reg": 10.0, "ials_weight": 0.5}, seed=1)
    users = spark.createDataFrame([(u,) for u in list(range(1, 31)) + [777]], "userId int")
    recs = top_n_model.recommend(model, 3, users=users).collect()
    seen = {(u, m) for u, m, _ in rows}
    assert {r["userId"] for r in recs} == set(range(1, 31)) | {777}
    assert not [r for r in recs if (r["userId"], r["movieId"]) in seen]
    for user in range(1, 31):
        assert sorted(r["rank"] for r in recs if r["userId"] == user) == [1, 2, 3]
    # A user the model never saw gets the most-rated movies.
    counts = df.groupBy("movieId").count().toPandas().sort_values(["count", "movieId"], ascending=[False, True])
    stranger = [r["movieId"] for r in recs if r["userId"] == 777]
    third = counts["count"].iloc[2]
    assert len(stranger) == 3 and set(stranger) <= set(counts.loc[counts["count"] >= third, "movieId"])
    model.data.release()


def test_ranking_metrics_by_hand(spark):
    recs = spark.createDataFrame(
        [(1, 1, 10, 1.0), (1, 2, 11, 0.9), (1, 3, 12, 0.8), (2, 1, 20, 1.0), (2, 2, 10, 0.5), (3, 1, 30, 1.0)],
        scoring.schema(),
    )
    test = _ratings(spark, [(1, 11, 4.0), (1, 99, 3.0), (2, 21, 5.0)])  # user 3 has no test movie: not evaluated
    m = evaluation.ranking_metrics(recs, test, k=3, catalogue_size=10)
    assert m["evaluated_users"] == 2
    assert m["precision_at_3"] == pytest.approx((1 / 3 + 0) / 2)
    assert m["recall_at_3"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["ndcg_at_3"] == pytest.approx(((1 / math.log2(3)) / (1 + 1 / math.log2(3))) / 2)
    assert m["map_at_3"] == pytest.approx((1 / 2) / 2 / 2)
    assert m["hit_rate_at_3"] == 0.5
    assert m["catalog_coverage"] == pytest.approx(4 / 10)  # 10, 11, 12, 20 went to evaluated users


def test_tuning_picks_from_its_grid_on_a_validation_split(spark, monkeypatch):
    df = _ratings(spark, _latent_ratings(n_users=60, n_items=25))
    chosen, trials = rating_model.tune(df, seed=42, validation_fraction=0.25, max_users=None, max_iter=5,
                                       ranks=(2, 4), reg_params=(0.05, 0.5), bias_regs=((1.0, 1.0), (20.0, 20.0)))
    assert {t["engine"] for t in trials} == {"driver"}  # small data: trials on the driver
    best = min((t for t in trials if t["rank"] > 0), key=lambda t: t["rmse"])
    assert (chosen["rank"], chosen["reg_param"]) == (best["rank"], best["reg_param"])
    assert len([t for t in trials if t["rank"] == 0]) == 2
    biases = min((t for t in trials if t["rank"] == 0), key=lambda t: t["rmse"])
    assert (chosen["reg_user"], chosen["reg_item"]) == (biases["reg_user"], biases["reg_item"])
    # A trial in Spark is fit() with its parameters: the biases it shares with the other ALS trials are fit()'s own.
    monkeypatch.setattr(top_n_model, "LOCAL_MAX_RATINGS", 0)
    _, spark_trials = rating_model.tune(df, seed=42, validation_fraction=0.25, max_users=None, max_iter=5,
                                        ranks=(4,), reg_params=(0.05,), bias_regs=((1.0, 1.0),))
    assert {t["engine"] for t in spark_trials} == {"spark"} and [t["rank"] for t in spark_trials] == [0, 4, 4, 4]
    vtrain, vtest, _ = evaluation.validation_split(df, 0.25, None, 42)
    model = rating_model.fit(vtrain, 4, spark_trials[1]["reg_param"], 5, 1.0, 1.0, seed=42)
    assert evaluation.rating_metrics(rating_model.predict(model, vtest))["rmse"] == spark_trials[1]["rmse"]


def test_rating_fits_on_the_driver_fit_what_spark_fits(spark, monkeypatch):
    """The driver's fits and trials: fit_biases' biases, Spark's explicit-ALS equations, predict's fallbacks
    and clip; its model is scored by predict as Spark's is."""
    df = _ratings(spark, _latent_ratings(n_users=60, n_items=25))
    vtrain, vtest, _ = evaluation.validation_split(df, 0.25, None, 42)
    unknown = _ratings(spark, [(999, 1, 4.0), (1, 999, 2.0), (999, 998, 0.5)])  # a new user, a new movie, both
    vtest = vtest.unionByName(unknown)
    columns = ["userId", "movieId", "rating"]
    driver = rating_model.DriverRatings(vtrain.select(columns).toPandas(), vtest.select(columns).toPandas())
    reg_user, reg_item, rank, reg, iterations = 2.0, 5.0, 3, 0.1, 10

    mu, user_bias, item_bias = driver.biases(reg_user, reg_item)
    spark_mu, spark_users, spark_items = rating_model.fit_biases(vtrain, reg_user, reg_item)
    assert mu == pytest.approx(spark_mu, abs=1e-12)
    spark_user_bias = spark_users.toPandas().set_index("userId")["b_user"]
    spark_item_bias = spark_items.toPandas().set_index("movieId")["b_item"]
    np.testing.assert_allclose(user_bias, spark_user_bias[driver.user_ids].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(item_bias, spark_item_bias[driver.item_ids].to_numpy(), atol=1e-12)

    def spark_scores(model):
        return evaluation.rating_metrics(rating_model.predict(model, vtest))

    # Small data: fit() fits on the driver, and predict() scores its model as the driver's own trial does.
    on_driver_model = rating_model.fit(vtrain, rank, reg, iterations, reg_user, reg_item, seed=1)
    assert on_driver_model.engine == "driver"
    on_driver = driver.metrics(rank, reg, reg_user, reg_item, iterations, seed=1)
    scored = spark_scores(on_driver_model)
    assert scored["rated_pairs"] == len(driver.test_ratings)
    assert scored["rmse"] == pytest.approx(on_driver["rmse"], rel=1e-6)
    assert scored["mae"] == pytest.approx(on_driver["mae"], rel=1e-6)
    reordered = rating_model.fit(vtrain.repartition(3, "rating"), rank, reg, iterations, reg_user, reg_item, seed=1)
    assert spark_scores(reordered) == scored, "the same ratings in another order: the same fit"

    # In Spark (above LOCAL_MAX_RATINGS): the biases alone score as the driver's trial does.
    monkeypatch.setattr(top_n_model, "LOCAL_MAX_RATINGS", 0)
    biases_only = rating_model.fit(vtrain, 0, 0.0, 1, reg_user, reg_item, seed=1)
    assert biases_only.engine == "spark" and biases_only.user_factors is None
    assert driver.metrics(0, 0.0, reg_user, reg_item, 1, seed=1) == pytest.approx(
        {key: value for key, value in spark_scores(biases_only).items() if key != "rated_pairs"}, abs=1e-12)

    # Spark's last half-step solved the users from its movie factors: solve_rows on the same residuals, with
    # regParam * n_r, gives them back, so the driver solves Spark's equations.
    model = rating_model.fit(vtrain, rank, reg, iterations, reg_user, reg_item, seed=1)
    assert model.engine == "spark"
    spark_item_factors = model.item_factors.toPandas().set_index("id")["features"]
    spark_user_factors = model.user_factors.toPandas().set_index("id")["features"]
    items = np.vstack(spark_item_factors[driver.item_ids].to_numpy()).astype(np.float64)
    residual = driver.ratings - mu - user_bias[driver.users] - item_bias[driver.items]
    by_user = driver._by_user
    users = top_n_model.solve_rows(driver.grouped(by_user, driver.items), items, np.zeros((rank, rank)), reg, 1.0,
                                   targets=driver.grouped(by_user, residual))
    np.testing.assert_allclose(users, np.vstack(spark_user_factors[driver.user_ids].to_numpy()), rtol=1e-3, atol=1e-5)

    # From different random starts both reach about the same validation error, every pair scored.
    in_spark = spark_scores(model)
    assert in_spark["rated_pairs"] == len(driver.test_ratings)
    assert on_driver["rmse"] == pytest.approx(in_spark["rmse"], rel=0.02)
    assert on_driver["rmse"] < driver.metrics(0, 0.0, reg_user, reg_item, 1, seed=1)["rmse"]  # ALS adds to the biases


    params, trials = top_n_model.tune(df, {"ials_rank": 3, "ials_iterations": 2}, seed=42, validation_fraction=0.25,
                                      max_users=None, k=5, ease_regs=(5.0, 50.0), ials_weights=(0.0, 1.0), extend=1)
    top = max(trials, key=lambda t: (t["ndcg_at_5"], t["precision_at_5"], -t["ease_reg"], -t["ials_weight"]))
    assert (params["ease_reg"], params["ials_weight"]) == (top["ease_reg"], top["ials_weight"])
    assert {t["ials_weight"] for t in trials} == {0.0, 1.0} and len(trials) in (4, 6)


def test_item_knn_scores_a_movie_by_its_similarities_to_the_movies_a_user_liked(spark):
    """Brute force with every movie a neighbour: score(u, i) = sum over the movies u liked of cosine(j, i),
    over unseen movies with a positive score; every listed score is exact and the lists are the best k."""
    from spark_jobs import item_knn

    rng = np.random.default_rng(5)
    n_users, n_movies, k = 12, 15, 4
    rated = rng.random((n_users, n_movies)) < 0.35
    stars = rng.integers(1, 11, size=(n_users, n_movies)) / 2.0
    rows = [(u + 1, m + 1, float(stars[u, m])) for u in range(n_users) for m in range(n_movies) if rated[u, m]]
    train = spark.createDataFrame(rows, "userId int, movieId int, rating double")
    got = item_knn.recommend(train, train.select("userId"), evaluation.seen_items(train), k, neighbours=n_movies,
                             liked_threshold=3.0).collect()

    liked = (rated & (stars >= 3.0)).astype(float)
    norms = np.linalg.norm(liked, axis=0)
    cosine = (liked.T @ liked) / np.outer(np.where(norms > 0, norms, 1), np.where(norms > 0, norms, 1))
    np.fill_diagonal(cosine, 0.0)
    expected = liked @ cosine
    lists = {}
    for r in got:
        lists.setdefault(r["userId"], []).append((r["rank"], r["movieId"], r["score"]))
    assert lists, "some user gets a list"
    for u in range(n_users):
        candidates = [expected[u, m] for m in range(n_movies) if not rated[u, m] and expected[u, m] > 1e-9]
        listed = sorted(lists.get(u + 1, []))
        assert np.allclose([s for _, _, s in listed], sorted(candidates, reverse=True)[:k], atol=1e-4), u
        for _, movie, score in listed:
            assert not rated[u, movie - 1] and abs(expected[u, movie - 1] - score) < 1e-4, (u, movie)
