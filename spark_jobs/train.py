"""Train, tune and evaluate the recommendation models of a date; write recommendations and models.

Models (see ``rating_model`` and ``top_n_model``):

- ``als_explicit``: the rating model, biases + explicit Spark ALS on the residuals, tuned for RMSE;
- ``ease_ials``: the top-N model, EASE blended with implicit ALS, tuned for NDCG@k;
- ``item_knn``: item-kNN on liked movies (``item_knn``), evaluated beside them, not served;
- ``popularity``: the baseline, each user's most-rated unseen movies.

Protocol (``evaluation``): a split stratified by movie (test fraction 0.25, seed 42 by default); tuning
only ever sees a validation split of the training part. Every model gets every ranking metric; the rating
model also RMSE and MAE. Then the models are refit on every rating up to ``ds`` (the ``refit`` setting:
``top-n``, the default, refits the top-N model, whose lists are the product; ``all`` also the rating model;
``none`` keeps the evaluated ones) and give the product: ``gold/recommendations`` (the top-N model's list per
user, with titles) and the model artifacts in ``models/ds=D/`` (the rating model's item factors give similar
movies). Also ``gold/model_metrics`` and ``gold/model_tuning`` (every trial of the tuning grids, empty unless
this run tuned) and ``models/ds=D/params.json``: the job's spec (settings and tuning decision), each model's
parameters, metrics and artifacts, and the protocol.

The spec's tuning decision (``spark_jobs.common.spec.Tuning``) says whether to tune, to fit with the
parameters an earlier date's tuning chose (``reuse``), or to use the settings as given (``off``).

Uses pyspark (and numpy/pandas, which pyspark's ML and pandas functions need) only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import DataFrame, SparkSession

from spark_jobs import evaluation, item_knn, rating_model, top_n_model
from spark_jobs.common import layout, ranking, scoring, session, spec
from spark_jobs.common.spec import JobSpec

RATING_MODEL = spec.RATING_MODEL
TOP_N_MODEL = spec.TOP_N_MODEL
BASELINE = "popularity"
#: The model whose item factors give similar movies (similar.py): it has factors for every rated movie.
SIMILARITY_MODEL = RATING_MODEL


def extract(spark: SparkSession, lake_root: str, ds: str) -> tuple[DataFrame, DataFrame]:
    ratings = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "ratings", ds))
    movies = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "movies", ds))
    return ratings.select("userId", "movieId", "rating", "timestamp"), movies.select("movieId", "title")


def factor_top_k(users: DataFrame, seen: DataFrame, item_ids, item_vectors, k: int) -> DataFrame:
    """Top-k unseen movies per user of a (userId, features) frame: blocked matrix products."""
    import numpy as np

    order = np.argsort(item_ids)
    shared = (np.asarray(item_ids, dtype=np.int64)[order], np.asarray(item_vectors, dtype=np.float32)[order])

    def rank(value, batch):
        ids, vectors = value
        user_vectors = np.vstack(batch["features"].to_numpy()).astype(np.float32)
        yield (batch["userId"].to_numpy(), *ranking.top_k_block(user_vectors, ids, vectors, list(batch["seen"]), k), {})

    return scoring.top_k_lists(users.join(seen, "userId", "left"), shared, rank)


def popularity_top_k(train: DataFrame, users: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """The baseline: each user's k most-rated unseen movies (ties: the smaller movieId first)."""
    import numpy as np

    counts = train.groupBy("movieId").count().toPandas().sort_values(["count", "movieId"], ascending=[False, True])
    shared = (counts["movieId"].to_numpy(dtype=np.int64), counts["count"].to_numpy(dtype=np.float32))

    def rank(value, batch):
        ids, scores = value
        yield (batch["userId"].to_numpy(), *ranking.top_k_same_order(ids, scores, list(batch["seen"]), k), {})

    return scoring.top_k_lists(users.select("userId").distinct().join(seen, "userId", "left"), shared, rank)


def rating_model_top_k(model: rating_model.RatingModel, users: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    user_factors, item_ids, item_vectors = rating_model.ranking_factors(model)
    return factor_top_k(user_factors.join(users.select("userId").distinct(), "userId"), seen, item_ids, item_vectors, k)


def with_titles(recommendations: DataFrame, movies: DataFrame) -> DataFrame:
    return recommendations.join(movies, "movieId", "left").select("userId", "rank", "movieId", "title", "score")


def recorded_fit(champion_info: dict | None, model: str, fit: dict) -> dict | None:
    """The champion's fit parameters for ``model`` (the names of ``fit``), or None when not all are recorded."""
    recorded = ((champion_info or {}).get("models", {}).get(model) or {}).get("params", {})
    params = {key: recorded[key] for key in fit if key in recorded}
    return params if len(params) == len(fit) else None


def champion_metrics(champion_info: dict | None, fits: dict[str, tuple[dict, dict]], train: DataFrame,
                     test: DataFrame, test_users: DataFrame, seed: int, k: int, catalogue: int) -> dict[str, dict]:
    """The champion's metrics on this date's split, by model: its recorded parameters fitted on this training
    part. ``fits``: model -> (the challenger's fit parameters, its metrics); equal parameters give the same
    fit, so the challenger's metrics are the champion's and nothing is fitted."""
    scores: dict[str, dict] = {}
    for model, (fit, metrics) in fits.items():
        params = recorded_fit(champion_info, model, fit)
        if params is None:
            continue
        if params == fit:
            scores[model] = dict(metrics)
        elif model == RATING_MODEL:
            fitted = rating_model.fit(train, seed=seed, **params)
            scores[model] = evaluation.rating_metrics(rating_model.predict(fitted, test))
        else:
            fitted = top_n_model.fit(train, params, seed)
            scores[model] = evaluation.ranking_metrics(top_n_model.recommend(fitted, k, users=test_users), test, k,
                                                       catalogue)
            fitted.data.release()
    return scores


def tuning_rows(model: str, trials: list[dict]) -> list[tuple]:
    """Long rows (model, trial, params as JSON, metric, value) for ``gold/model_tuning``."""
    metric_names = {"rmse", "mae", "evaluated_users", "catalog_coverage"}
    rows = []
    for number, trial in enumerate(trials):
        params = {key: value for key, value in trial.items() if key not in metric_names and "_at_" not in key}
        for key, value in trial.items():
            if key in metric_names or "_at_" in key:
                rows.append((model, number, json.dumps(params, sort_keys=True), key, float(value)))
    return rows


def run(spark: SparkSession, lake_root: str, ds: str, job: JobSpec, champion_info: dict | None = None) -> dict:
    """Evaluate, refit and write the models of ``ds`` as ``job`` says (its settings and tuning decision).

    ``champion_info`` (``gate.champion``): the served models, also evaluated on this date's split for the
    publish gate (``champion_metrics`` in the result)."""
    settings = job.settings
    tune = job.tuning.action == spec.TUNE
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[name] = round(now - clock, 1)
        clock = now

    ratings, movies = extract(spark, lake_root, ds)
    ratings = ratings.cache()
    seed, k = settings["seed"], settings["top_k"]
    train, test = evaluation.protocol_split(ratings, settings["split"], settings["test_fraction"], seed)
    train, test = train.cache(), test.cache()
    catalogue = train.select("movieId").distinct().count()
    train_seen = evaluation.seen_items(train).cache()
    test_users = test.select("userId").distinct().cache()
    counts = {"train_rows": train.count(), "test_rows": test.count()}
    lap("split")

    popularity_metrics = evaluation.ranking_metrics(popularity_top_k(train, test_users, train_seen, k), test, k, catalogue)
    lap("popularity_eval")
    knn_params = {"neighbours": settings["knn_neighbours"], "liked_threshold": settings["knn_liked_threshold"]}
    knn_metrics = evaluation.ranking_metrics(item_knn.recommend(train, test_users, train_seen, k, **knn_params), test, k,
                                             catalogue)
    lap("item_knn_eval")

    tuning: list[tuple] = []
    # The fit's parameters: reused from an earlier tuning run, chosen by tuning now, or as configured.
    chosen_rating = job.fit_params(RATING_MODEL)
    if tune:
        chosen_rating, trials = rating_model.tune(train, seed, settings["validation_fraction"],
                                                  settings["tune_max_users"], settings["als_max_iter"],
                                                  split=settings["split"])
        tuning += tuning_rows(RATING_MODEL, trials)
        lap("rating_tune")
    fit_rating = {key: chosen_rating[key] for key in spec.model_settings(RATING_MODEL)}
    rating = rating_model.fit(train, seed=seed, **fit_rating)
    lap("rating_fit")
    rating_metrics = evaluation.rating_metrics(rating_model.predict(rating, test))
    rating_metrics.update(evaluation.ranking_metrics(rating_model_top_k(rating, test_users, train_seen, k), test, k, catalogue))
    lap("rating_eval")

    chosen_top_n = job.fit_params(TOP_N_MODEL)
    if tune:
        chosen_top_n, trials = top_n_model.tune(train, chosen_top_n, seed, settings["validation_fraction"],
                                                settings["tune_max_users"], k, split=settings["split"])
        tuning += tuning_rows(TOP_N_MODEL, trials)
        lap("top_n_tune")
    fit_top_n = {key: chosen_top_n[key] for key in spec.model_settings(TOP_N_MODEL)}
    top_n = top_n_model.fit(train, fit_top_n, seed)
    lap("top_n_fit")
    top_n_metrics = evaluation.ranking_metrics(top_n_model.recommend(top_n, k, users=test_users), test, k, catalogue)
    lap("top_n_eval")
    fits = {RATING_MODEL: (fit_rating, rating_metrics), TOP_N_MODEL: (fit_top_n, top_n_metrics)}
    champion_scores = champion_metrics(champion_info, fits, train, test, test_users, seed, k, catalogue)
    lap("champion_eval")

    # The product: per the refit setting, models refit on every rating up to ds; lists skip rated movies.
    refit = settings["refit"]
    if refit in ("top-n", "all"):
        top_n.data.release()
        top_n = top_n_model.fit(ratings, fit_top_n, seed)
    if refit == "all":
        rating = rating_model.fit(ratings, seed=seed, **fit_rating)
    lap("refit")
    users = ratings.select("userId").distinct()
    recommendations = with_titles(top_n_model.recommend(top_n, settings["recommendations_per_user"], users=users), movies)
    counts["recommendations"] = session.write_table(spark, recommendations, lake_root, layout.GOLD, "recommendations", ds)
    lap("recommend")
    model_dir = layout.zone_dir(lake_root, layout.MODELS, ds)
    # Paths relative to the lake root: true wherever Spark ran (a staging folder, a cluster's URL).
    artifacts = {
        RATING_MODEL: rating_model.save(rating, layout.join(model_dir, RATING_MODEL)),
        TOP_N_MODEL: top_n_model.save(top_n, layout.join(model_dir, TOP_N_MODEL)),
    }
    top_n.data.release()

    models = {
        RATING_MODEL: {"params": {**chosen_rating, "seed": seed}, "metrics": rating_metrics, "engine": rating.engine,
                       "artifacts": {name: layout.relative(lake_root, path) for name, path in artifacts[RATING_MODEL].items()}},
        TOP_N_MODEL: {"params": {**chosen_top_n, "seed": seed}, "metrics": top_n_metrics,
                      "artifacts": {name: layout.relative(lake_root, path) for name, path in artifacts[TOP_N_MODEL].items()}},
        item_knn.MODEL: {"params": knn_params, "metrics": knn_metrics},
        BASELINE: {"params": {"score": "number of ratings in training"}, "metrics": popularity_metrics},
    }
    metric_rows = [(name, metric, float(value)) for name, model in models.items() for metric, value in model["metrics"].items()]
    counts["model_metrics"] = session.write_table(
        spark, spark.createDataFrame(metric_rows, "model string, metric string, value double"),
        lake_root, layout.GOLD, "model_metrics", ds)
    counts["model_tuning"] = session.write_table(
        spark, spark.createDataFrame(tuning, "model string, trial int, params string, metric string, value double"),
        lake_root, layout.GOLD, "model_tuning", ds)
    outputs = {table: layout.table_dir("", layout.GOLD, table, ds)
               for table in ("recommendations", "model_metrics", "model_tuning")}
    outputs["models"] = layout.zone_dir("", layout.MODELS, ds)
    protocol = {
        "split": evaluation.SPLITS[settings["split"]],
        "relevance": "every held-out rating of a user is relevant (binary)",
        "exclude_train_items": True,
        "tuning_split": (f"{settings['split']} validation split of the training part (fraction "
                         f"{settings['validation_fraction']}, seed {seed + 1}), at most {settings['tune_max_users']} "
                         "users" if tune else None),
        "refit_on_all_ratings": {"none": [], "top-n": [TOP_N_MODEL], "all": [TOP_N_MODEL, RATING_MODEL]}[refit],
        "train_rows": counts["train_rows"],
        "test_rows": counts["test_rows"],
    }
    # The one record of the run's spec (settings and tuning decision) beside what it fitted and measured.
    session.write_json(spark, layout.join(model_dir, layout.MODEL_PARAMS),
                       {"spec": job.record(tuned=tune), "models": models, "protocol": protocol})
    for frame in (ratings, train, test, train_seen, test_users):
        frame.unpersist()
    lap("write")
    return {"models": models, "protocol": protocol, "outputs": outputs,
            "counts": {name: counts[name] for name in ("recommendations", "model_metrics", "model_tuning")},
            "train_timings_s": timings, "champion_metrics": champion_scores}


def main(argv: list[str] | None = None) -> None:
    args = spec.job_parser(__doc__.splitlines()[0]).parse_args(argv)
    spark = session.get_session("movielens-train")
    print(run(spark, args.lake_root, args.ds, args.spec))
    spark.stop()


if __name__ == "__main__":
    main()
