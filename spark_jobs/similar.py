"""Similar movies: for every movie, the movies closest by cosine similarity of their ALS item factors.

Computed as blocked matrix products by the jobs' one top-k scorer (:mod:`spark_jobs.common.scoring`):
the unit-length factor matrix (movies x rank, float32) is broadcast once, each Spark task scores a block
of movies against all of them (``block @ all.T``) and keeps the top n with ``argpartition``, "seen" being
the movie itself. Memory per task is bounded by the block size, and a movie is never compared one pair at
a time in Python.

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


def unit_factors(item_ids, item_vectors):
    """(sorted ids, float32 rows scaled to length 1); an all-zero vector stays zero (similarity 0)."""
    import numpy as np

    ids = np.asarray(item_ids, dtype=np.int64)
    vectors = np.asarray(item_vectors, dtype=np.float32).reshape(len(ids), -1)
    order = np.argsort(ids)
    ids, vectors = ids[order], vectors[order]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return ids, vectors / np.where(norms > 0, norms, 1.0).astype(np.float32)


def similar_movies(item_factors: DataFrame, n: int) -> DataFrame:
    """Top ``n`` other movies per movie from an ALS ``itemFactors`` frame (id, features)."""
    import numpy as np

    rows = item_factors.select("id", "features").collect()
    ids, vectors = unit_factors([r["id"] for r in rows], [r["features"] for r in rows])
    spark = item_factors.sparkSession

    def rank(value, batch):
        all_ids, all_vectors = value
        block_ids = batch["movieId"].to_numpy(dtype=np.int64)
        own = np.searchsorted(all_ids, block_ids)
        # "Seen" is the movie itself: never its own neighbour.
        yield (block_ids, *ranking.top_k_block(all_vectors[own], all_ids, all_vectors, [[i] for i in block_ids.tolist()], n), {})

    movie_ids = spark.createDataFrame([(int(i),) for i in ids], "movieId int").repartition(
        max(1, spark.sparkContext.defaultParallelism))
    return scoring.top_k_lists(movie_ids, (ids, vectors), rank, scoring.SIMILAR_MOVIES)


def with_titles(similar: DataFrame, movies: DataFrame) -> DataFrame:
    titles = movies.select("movieId", "title")
    other = titles.select(F.col("movieId").alias("similar_movieId"), F.col("title").alias("similar_title"))
    return similar.join(titles, "movieId", "left").join(other, "similar_movieId", "left").select(
        "movieId", "title", "rank", "similar_movieId", "similar_title", "similarity"
    )


def run(spark: SparkSession, lake_root: str, ds: str, model_name: str, n: int) -> dict:
    from pyspark.ml.recommendation import ALSModel

    model = ALSModel.load(layout.join(layout.zone_dir(lake_root, layout.MODELS, ds), model_name))
    movies = spark.read.parquet(layout.table_dir(lake_root, layout.SILVER, "movies", ds))
    table = with_titles(similar_movies(model.itemFactors, n), movies)
    return {"similar_movies": session.write_table(spark, table, lake_root, layout.GOLD, "similar_movies", ds)}


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.common import spec

    parser = spec.job_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", default=spec.RATING_MODEL,
                        help="the model folder under models/ds=D/ whose ALS item factors to use")
    args = parser.parse_args(argv)
    spark = session.get_session("movielens-similar")
    print(run(spark, args.lake_root, args.ds, args.model, args.spec.settings["similar_per_movie"]))
    spark.stop()


if __name__ == "__main__":
    main()
