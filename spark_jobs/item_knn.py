"""Item-kNN, the model of the Azure ML MovieLens system: a movie's neighbours are the ``neighbours`` movies
closest to it by the cosine of their liked-by-user vectors (a rating of at least ``liked_threshold``; the
same similarity as the similar movies, :func:`spark_jobs.similar.similar_movies_knn`), and a user's score of
a movie is the sum of its similarities to the movies the user liked, over the neighbour lists that hold it
(Deshpande & Karypis 2004). Evaluated under the protocol beside the other models; not served.

The neighbour lists come from Spark (blocked products of the sparse liked matrix); the sparse movies x movies
matrix of them is broadcast, and each task scores a block of users as one sparse product ``likes @ S``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import similar
from spark_jobs.common import ranking, scoring

MODEL = "item_knn"


def neighbour_matrix(train: DataFrame, neighbours: int, liked_threshold: float):
    """(sorted movie ids, CSR ids x ids: row j holds the similarities of j's ``neighbours`` nearest movies)."""
    import numpy as np
    from scipy import sparse

    liked = similar.liked_vectors(train, liked_threshold)
    ids = liked[0]
    lists = similar.knn_lists(train.sparkSession, liked, neighbours, min_ratings=1).select(
        "movieId", "similar_movieId", "similarity").toPandas()
    rows = np.searchsorted(ids, lists["movieId"].to_numpy(np.int64))
    cols = np.searchsorted(ids, lists["similar_movieId"].to_numpy(np.int64))
    matrix = sparse.csr_matrix((lists["similarity"].to_numpy(np.float32), (rows, cols)), shape=(len(ids), len(ids)))
    return ids, matrix


def recommend(train: DataFrame, users: DataFrame, seen: DataFrame, k: int, neighbours: int,
              liked_threshold: float) -> DataFrame:
    """Top ``k`` unseen movies per user of ``users`` (userId), scored from the movies each liked in ``train``;
    a movie no liked movie lists as a neighbour is not recommended (a user who liked nothing gets no list)."""
    import numpy as np
    from scipy import sparse

    ids, matrix = neighbour_matrix(train, neighbours, liked_threshold)
    liked = train.where(F.col("rating") >= liked_threshold).groupBy("userId").agg(F.collect_list("movieId").alias("liked"))
    rows = users.select("userId").distinct().join(liked, "userId", "left").join(seen, "userId", "left")

    def rank(value, batch):
        all_ids, s = value
        step = max(1, similar.MAX_CELLS // max(1, len(all_ids)))
        for start in range(0, len(batch), step):
            part = batch.iloc[start:start + step]
            likes = [np.searchsorted(all_ids, np.asarray(m if m is not None else [], dtype=np.int64)) for m in part["liked"]]
            indptr = np.cumsum([0, *map(len, likes)])
            user_likes = sparse.csr_matrix((np.ones(indptr[-1], np.float32), np.concatenate([*likes, np.empty(0, np.int64)]),
                                            indptr), shape=(len(part), len(all_ids)))
            scores = (user_likes @ s).toarray().astype(np.float32, copy=False)
            scores[scores <= 0] = -np.inf
            for row, rated in enumerate(part["seen"]):
                if rated is not None and len(rated):
                    scores[row, np.searchsorted(all_ids, np.asarray(rated, dtype=np.int64))] = -np.inf
            top, top_scores = ranking.top_k_dense(scores, min(k, len(all_ids)))
            yield part["userId"].to_numpy(), np.where(top >= 0, all_ids[np.maximum(top, 0)], -1), top_scores, {}

    return scoring.top_k_lists(rows, (ids, matrix), rank)
