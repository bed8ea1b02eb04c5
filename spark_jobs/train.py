"""Train, tune and evaluate the recommendation models of a date; write recommendations and models.

Models (see ``rating_model`` and ``top_n_model``):

- ``als_explicit``: the rating model, biases + explicit Spark ALS on the residuals, tuned for RMSE;
- ``ease_ials``: the top-N model, EASE blended with implicit ALS, tuned for NDCG@k;
- ``popularity``: the baseline, each user's most-rated unseen movies.

Protocol (``evaluation``): a split stratified by movie (test fraction 0.25, seed 42 by default); tuning
only ever sees a validation split of the training part. Every model gets every ranking metric; the rating
model also RMSE and MAE. Then the models are refit on every rating up to ``ds`` (``--refit``: ``top-n``, the
default, refits the top-N model, whose lists are the product; ``all`` also the rating model; ``none`` keeps
the evaluated ones) and give the product: ``gold/recommendations`` (the top-N model's list per user, with
titles) and the model artifacts in ``models/ds=D/`` (the rating model's item factors give similar movies).
Also ``gold/model_metrics`` and ``gold/model_tuning`` (every trial of the tuning grids).

Tuning (``--tune``) is skipped when the job is given ``--reuse-params``: the parameters a tuning run of an
earlier date chose (the Airflow side decides, ``movielens.tuning``). Both models are then fitted with exactly
those values and evaluated as usual; ``gold/model_tuning`` is empty for the date and ``params.json`` says
``protocol.tuning = "reused from ds=D"`` (``"tuned"`` when this run tuned, ``"off"`` with ``--no-tune``).

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
from pyspark.sql import functions as F

from spark_jobs import evaluation, rating_model, top_n_model
from spark_jobs.common import layout, ranking, session
from spark_jobs.common.args import REUSED_FROM, TUNED, TUNING_OFF, TUNING_VERSION, job_settings

RATING_MODEL = "als_explicit"
TOP_N_MODEL = "ease_ials"
BASELINE = "popularity"
#: The model whose item factors give similar movies (similar.py): it has factors for every rated movie.
SIMILARITY_MODEL = RATING_MODEL


def extract(spark: SparkSession, lake_root: str, ds: str) -> tuple[DataFrame, DataFrame]:
    ratings = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "ratings", ds))
    movies = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "movies", ds))
    return ratings.select("userId", "movieId", "rating"), movies.select("movieId", "title")


def factor_top_k(users: DataFrame, seen: DataFrame, item_ids, item_vectors, k: int) -> DataFrame:
    """Top-k unseen movies per user of a (userId, features) frame: blocked matrix products."""
    import numpy as np

    order = np.argsort(item_ids)
    shared = users.sparkSession.sparkContext.broadcast(
        (np.asarray(item_ids, dtype=np.int64)[order], np.asarray(item_vectors, dtype=np.float32)[order])
    )

    def score(batches):
        ids, vectors = shared.value
        for pdf in batches:
            if pdf.empty:
                continue
            user_vectors = np.vstack(pdf["features"].to_numpy()).astype(np.float32)
            top_ids, top_scores = ranking.top_k_block(user_vectors, ids, vectors, list(pdf["seen"]), k)
            yield ranking.recommendation_frame(pdf["userId"].to_numpy(), top_ids, top_scores)

    return users.join(seen, "userId", "left").mapInPandas(score, ranking.RECOMMENDATION_SCHEMA)


def popularity_top_k(train: DataFrame, users: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """The baseline: each user's k most-rated unseen movies (ties: the smaller movieId first)."""
    import numpy as np

    counts = train.groupBy("movieId").count().toPandas().sort_values(["count", "movieId"], ascending=[False, True])
    ranked_ids = counts["movieId"].to_numpy(dtype=np.int64)
    ranked_scores = counts["count"].to_numpy(dtype=np.float32)
    shared = users.sparkSession.sparkContext.broadcast((ranked_ids, ranked_scores))

    def score(batches):
        ids, scores = shared.value
        for pdf in batches:
            if pdf.empty:
                continue
            top_ids, top_scores = ranking.top_k_same_order(ids, scores, list(pdf["seen"]), k)
            yield ranking.recommendation_frame(pdf["userId"].to_numpy(), top_ids, top_scores)

    return users.select("userId").distinct().join(seen, "userId", "left").mapInPandas(score, ranking.RECOMMENDATION_SCHEMA)


def rating_model_top_k(model: rating_model.RatingModel, users: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    user_factors, item_ids, item_vectors = rating_model.ranking_factors(model)
    return factor_top_k(user_factors.join(users.select("userId").distinct(), "userId"), seen, item_ids, item_vectors, k)


def with_titles(recommendations: DataFrame, movies: DataFrame) -> DataFrame:
    return recommendations.join(movies, "movieId", "left").select("userId", "rank", "movieId", "title", "score")


def rating_params(params) -> dict:
    return {"rank": params.rank, "reg_param": params.reg_param, "max_iter": params.max_iter,
            "reg_user": params.reg_user, "reg_item": params.reg_item}


def top_n_params(params) -> dict:
    return {"ease_reg": params.ease_reg, "ials_weight": params.ials_weight, "ials_rank": params.ials_rank,
            "ials_reg": params.ials_reg, "ials_alpha": params.ials_alpha, "ials_iterations": params.ials_iterations,
            "max_items": params.max_items}


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


def check_params(params) -> None:
    """Refuse argument combinations the job cannot honour, before any work is done."""
    if params.reuse_params and not params.tune:
        raise ValueError("--reuse-params replaces tuning; with --no-tune the configured values are used: give one or the other")


def tuning_status(params) -> str:
    """``protocol.tuning`` of the run: tuned, reused from ds=D, or off."""
    if not params.tune:
        return TUNING_OFF
    return REUSED_FROM.format(ds=params.reuse_params["ds"]) if params.reuse_params else TUNED


def run(spark: SparkSession, lake_root: str, ds: str, params) -> dict:
    check_params(params)  # so reuse_params come only with tuning on
    # Tune only when tuning is on and no earlier run's choice is handed over.
    reuse = params.reuse_params
    tune = params.tune and not reuse
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[name] = round(now - clock, 1)
        clock = now

    ratings, movies = extract(spark, lake_root, ds)
    ratings = ratings.cache()
    train, test = evaluation.split(ratings, params.test_fraction, params.seed)
    train, test = train.cache(), test.cache()
    k = params.top_k
    catalogue = train.select("movieId").distinct().count()
    train_seen = evaluation.seen_items(train).cache()
    test_users = test.select("userId").distinct().cache()
    counts = {"train_rows": train.count(), "test_rows": test.count()}
    lap("split")

    popularity_metrics = evaluation.ranking_metrics(popularity_top_k(train, test_users, train_seen, k), test, k, catalogue)
    lap("popularity_eval")

    tuning: list[tuple] = []
    chosen_rating = rating_params(params)
    if reuse:
        chosen_rating = dict(reuse[RATING_MODEL])
    elif tune:
        chosen_rating, trials = rating_model.tune(train, params.seed, params.validation_fraction,
                                                  params.tune_max_users, params.max_iter)
        tuning += tuning_rows(RATING_MODEL, trials)
        lap("rating_tune")
    fit_rating = {key: chosen_rating[key] for key in rating_params(params)}
    rating = rating_model.fit(train, seed=params.seed, **fit_rating)
    lap("rating_fit")
    rating_metrics = evaluation.rating_metrics(rating_model.predict(rating, test))
    rating_metrics.update(evaluation.ranking_metrics(rating_model_top_k(rating, test_users, train_seen, k), test, k, catalogue))
    lap("rating_eval")

    chosen_top_n = top_n_params(params)
    if reuse:
        chosen_top_n = dict(reuse[TOP_N_MODEL])
    elif tune:
        chosen_top_n, trials = top_n_model.tune(train, chosen_top_n, params.seed, params.validation_fraction,
                                                params.tune_max_users, k)
        tuning += tuning_rows(TOP_N_MODEL, trials)
        lap("top_n_tune")
    fit_top_n = {key: chosen_top_n[key] for key in top_n_params(params)}
    top_n = top_n_model.fit(train, fit_top_n, params.seed)
    lap("top_n_fit")
    top_n_metrics = evaluation.ranking_metrics(top_n_model.recommend(top_n, k, users=test_users), test, k, catalogue)
    lap("top_n_eval")

    # The product: per --refit, models refit on every rating up to ds; lists skip movies the user has rated.
    if params.refit in ("top-n", "all"):
        top_n.data.release()
        top_n = top_n_model.fit(ratings, fit_top_n, params.seed)
    if params.refit == "all":
        rating = rating_model.fit(ratings, seed=params.seed, **fit_rating)
    lap("refit")
    users = ratings.select("userId").distinct()
    recommendations = with_titles(top_n_model.recommend(top_n, params.recommendations, users=users), movies)
    counts["recommendations"] = session.write_table(spark, recommendations, lake_root, layout.GOLD, "recommendations", ds)
    lap("recommend")
    model_dir = layout.zone_dir(lake_root, layout.MODELS, ds)
    artifacts = {
        RATING_MODEL: rating_model.save(rating, layout.join(model_dir, RATING_MODEL)),
        TOP_N_MODEL: top_n_model.save(top_n, layout.join(model_dir, TOP_N_MODEL)),
    }
    top_n.data.release()

    models = {
        RATING_MODEL: {"params": {**chosen_rating, "seed": params.seed}, "metrics": rating_metrics,
                       "artifacts": artifacts[RATING_MODEL]},
        TOP_N_MODEL: {"params": {**chosen_top_n, "seed": params.seed}, "metrics": top_n_metrics,
                      "artifacts": artifacts[TOP_N_MODEL]},
        BASELINE: {"params": {"score": "number of ratings in training"}, "metrics": popularity_metrics},
    }
    metric_rows = [(name, metric, float(value)) for name, model in models.items() for metric, value in model["metrics"].items()]
    outputs = {"recommendations": layout.table_dir(lake_root, layout.GOLD, "recommendations", ds),
               "model_metrics": layout.table_dir(lake_root, layout.GOLD, "model_metrics", ds),
               "model_tuning": layout.table_dir(lake_root, layout.GOLD, "model_tuning", ds),
               "models": model_dir}
    counts["model_metrics"] = session.write_table(
        spark, spark.createDataFrame(metric_rows, "model string, metric string, value double"),
        lake_root, layout.GOLD, "model_metrics", ds)
    counts["model_tuning"] = session.write_table(
        spark, spark.createDataFrame(tuning, "model string, trial int, params string, metric string, value double"),
        lake_root, layout.GOLD, "model_tuning", ds)
    protocol = {
        "split": "random, stratified by movie (xxhash64 of seed, userId, movieId)",
        "test_fraction": params.test_fraction,
        "seed": params.seed,
        "k": k,
        "relevance": "every held-out rating of a user is relevant (binary)",
        "exclude_train_items": True,
        "tuning": tuning_status(params),
        "tuning_version": TUNING_VERSION if tune else None,
        # The date whose tuning chose the parameters (this one, an earlier one, or none: configured values).
        "params_tuned_on": ds if tune else reuse["ds"] if reuse else None,
        "tuning_split": (f"validation split of the training part (fraction {params.validation_fraction}, seed "
                         f"{params.seed + 1}), at most {params.tune_max_users} users" if tune else None),
        "refit_on_all_ratings": {"none": [], "top-n": [TOP_N_MODEL], "all": [TOP_N_MODEL, RATING_MODEL]}[params.refit],
        "train_rows": counts["train_rows"],
        "test_rows": counts["test_rows"],
    }
    # The settings the job was given (a run's trigger-form overrides included) beside what tuning chose.
    session.write_json(spark, layout.join(model_dir, layout.MODEL_PARAMS),
                       {"models": models, "protocol": protocol, "settings": job_settings(params)})
    for frame in (ratings, train, test, train_seen, test_users):
        frame.unpersist()
    lap("write")
    return {"models": models, "protocol": protocol, "outputs": outputs,
            "counts": {name: counts[name] for name in ("recommendations", "model_metrics", "model_tuning")},
            "train_timings_s": timings}


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.common.args import add_model_args, base_parser

    parser = add_model_args(base_parser(__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    try:
        check_params(args)
    except ValueError as err:
        parser.error(str(err))
    spark = session.get_session("movielens-train")
    print(run(spark, args.lake_root, args.ds, args))
    spark.stop()


if __name__ == "__main__":
    main()
