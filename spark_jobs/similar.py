"""Similar movies: for every movie, the movies closest to it, from one of two sources (``similar_source``):

- ``item-knn`` (the default): the cosine of the movies' binary "liked" vectors over users (a rating of at
  least ``knn_liked_threshold``), item-kNN as in the Azure ML MovieLens system; on the silver ratings of D;
- ``als-factors``: the cosine of the rating model's ALS movie factors (``models/ds=D/als_explicit``).

Either way a movie is another's neighbour only with at least ``similar_min_ratings`` ratings, so a movie rated
a handful of times is nobody's nearest neighbour, and item-kNN lists only movies liked by a common user
(similarity > 0). On ml-latest-small item-kNN with a floor of 10 ratings gave the most believable lists
(held-out co-rating lift and genre agreement; bench/RESULTS.md, "Similar movies: which source").

Computed as blocked matrix products by the jobs' one top-k scorer (:mod:`spark_jobs.common.scoring`): the
candidates' unit-length vectors (dense factors, or a sparse CSR matrix of likes) are broadcast once, each
Spark task scores blocks of movies against all of them (``block @ candidates.T``, at most ``MAX_CELLS``
scores at a time) and keeps the top n with ``argpartition``; a movie is never its own neighbour.

Output ``gold/similar_movies/ds=D/``: movieId, title, rank, similar_movieId, similar_title, similarity.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.common import layout, ranking, scoring, session

#: Scores computed at once per task (float32): bounds a block of movies x candidates.
MAX_CELLS = 8_000_000


def unit_factors(item_ids, item_vectors):
    """(sorted ids, float32 rows scaled to length 1); an all-zero vector stays zero (similarity 0)."""
    import numpy as np

    ids = np.asarray(item_ids, dtype=np.int64)
    vectors = np.asarray(item_vectors, dtype=np.float32).reshape(len(ids), -1)
    order = np.argsort(ids)
    ids, vectors = ids[order], vectors[order]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return ids, vectors / np.where(norms > 0, norms, 1.0).astype(np.float32)


def _movie_rows(spark: SparkSession, ids) -> DataFrame:
    """One row per movie id (the movies to list), spread over the cores."""
    return spark.createDataFrame([(int(i),) for i in ids], "movieId int").repartition(
        max(1, spark.sparkContext.defaultParallelism))


def similar_movies(item_factors: DataFrame, n: int, support: dict[int, int] | None = None, min_ratings: int = 1) -> DataFrame:
    """Top ``n`` other movies per movie from an ALS ``itemFactors`` frame (id, features), among the movies
    with at least ``min_ratings`` in ``support`` (movie id -> number of ratings; None: every movie)."""
    import numpy as np

    rows = item_factors.select("id", "features").collect()
    ids, vectors = unit_factors([r["id"] for r in rows], [r["features"] for r in rows])
    keep = np.ones(len(ids), bool) if support is None else np.array([support.get(int(i), 0) >= min_ratings for i in ids])
    spark = item_factors.sparkSession

    def rank(value, batch):
        all_ids, all_vectors, candidate_ids, candidate_vectors = value
        block_ids = batch["movieId"].to_numpy(dtype=np.int64)
        own = np.searchsorted(all_ids, block_ids)
        # "Seen" is the movie itself: never its own neighbour.
        yield (block_ids, *ranking.top_k_block(all_vectors[own], candidate_ids, candidate_vectors,
                                               [[i] for i in block_ids.tolist()], n), {})

    return scoring.top_k_lists(_movie_rows(spark, ids), (ids, vectors, ids[keep], vectors[keep]), rank,
                               scoring.SIMILAR_MOVIES)


def liked_vectors(ratings: DataFrame, liked_threshold: float):
    """(sorted movie ids, CSR matrix of their unit-length binary liked-by-user rows, ratings per movie) of every
    rated movie (a movie nobody liked has an all-zero row)."""
    import numpy as np
    from scipy import sparse

    counts = ratings.groupBy("movieId").agg(F.count("*").alias("n")).toPandas()
    liked = ratings.where(F.col("rating") >= liked_threshold).select("movieId", "userId").toPandas()
    order = np.argsort(counts["movieId"].to_numpy(np.int64))
    ids = counts["movieId"].to_numpy(np.int64)[order]
    n_ratings = counts["n"].to_numpy(np.int64)[order]
    users, cols = np.unique(liked["userId"].to_numpy(np.int64), return_inverse=True)
    rows = np.searchsorted(ids, liked["movieId"].to_numpy(np.int64))
    likes = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(ids), len(users)))
    likes.sum_duplicates()
    likes.data[:] = 1.0
    norms = np.sqrt(np.diff(likes.indptr)).astype(np.float32)
    return ids, sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)).dot(likes).tocsr().astype(np.float32), n_ratings


def similar_movies_knn(ratings: DataFrame, n: int, liked_threshold: float, min_ratings: int) -> DataFrame:
    """Item-kNN: top ``n`` other movies per rated movie by the cosine of their liked vectors (> 0), among the
    movies with at least ``min_ratings`` ratings."""
    return knn_lists(ratings.sparkSession, liked_vectors(ratings, liked_threshold), n, min_ratings)


def knn_lists(spark: SparkSession, liked, n: int, min_ratings: int) -> DataFrame:
    """:func:`similar_movies_knn` from the movies' :func:`liked_vectors` (``liked``)."""
    import numpy as np

    ids, likes, n_ratings = liked
    keep = np.flatnonzero(n_ratings >= min_ratings)

    def rank(value, batch):
        all_ids, all_likes, candidates = value
        candidate_ids, candidate_likes_t = all_ids[candidates], all_likes[candidates].T.tocsc()
        block_ids = batch["movieId"].to_numpy(dtype=np.int64)
        own = np.searchsorted(all_ids, block_ids)
        step = max(1, MAX_CELLS // max(1, len(candidates)))
        for start in range(0, len(own), step):
            rows = own[start:start + step]
            scores = (all_likes[rows] @ candidate_likes_t).toarray().astype(np.float32, copy=False)
            scores[scores <= 0] = -np.inf  # not liked by any common user: not similar
            at = np.searchsorted(candidates, rows)
            mine = (at < len(candidates)) & (candidates[np.minimum(at, len(candidates) - 1)] == rows)
            scores[np.flatnonzero(mine), at[mine]] = -np.inf  # never its own neighbour
            top, top_scores = ranking.top_k_dense(scores, min(n, max(1, len(candidates))))
            yield block_ids[start:start + step], np.where(top >= 0, candidate_ids[np.maximum(top, 0)], -1), top_scores, {}

    return scoring.top_k_lists(_movie_rows(spark, ids), (ids, likes, keep), rank, scoring.SIMILAR_MOVIES)


def with_titles(similar: DataFrame, movies: DataFrame) -> DataFrame:
    titles = movies.select("movieId", "title")
    other = titles.select(F.col("movieId").alias("similar_movieId"), F.col("title").alias("similar_title"))
    return similar.join(titles, "movieId", "left").join(other, "similar_movieId", "left").select(
        "movieId", "title", "rank", "similar_movieId", "similar_title", "similarity"
    )


def run(spark: SparkSession, lake_root: str, ds: str, model_name: str, settings: dict) -> dict:
    """``gold/similar_movies/ds=D`` from ``settings``' similar_source; ``model_name``: the ALS model of als-factors."""
    ratings = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "ratings", ds)).select("userId", "movieId", "rating")
    movies = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "movies", ds))
    n, min_ratings = settings["similar_per_movie"], settings["similar_min_ratings"]
    if settings["similar_source"] == "item-knn":
        similar = similar_movies_knn(ratings, n, settings["knn_liked_threshold"], min_ratings)
    else:
        from spark_jobs import rating_model

        folder = layout.join(layout.zone_dir(lake_root, layout.MODELS, ds), model_name)
        item_factors = spark.read.parquet(rating_model.factor_paths(folder)["item_factors"])
        support = {r["movieId"]: r["n"] for r in ratings.groupBy("movieId").agg(F.count("*").alias("n")).collect()}
        similar = similar_movies(item_factors, n, support, min_ratings)
    table = with_titles(similar, movies)
    return {"similar_movies": session.write_table(spark, table, lake_root, layout.GOLD, "similar_movies", ds)}


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.common import spec

    parser = spec.job_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", default=spec.RATING_MODEL,
                        help="similar_source als-factors: the model folder under models/ds=D/ whose ALS item factors to use")
    args = parser.parse_args(argv)
    spark = session.get_session("movielens-similar")
    print(run(spark, args.lake_root, args.ds, args.model, args.spec.settings))
    spark.stop()


if __name__ == "__main__":
    main()
