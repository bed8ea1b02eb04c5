"""One top-k scorer for every list the jobs write: each user's recommendations (the top-N model, the
rating model, the popularity baseline) and each movie's similar movies.

What every row is scored against (movie ids, factors, weights) is broadcast once. Each Spark task hands
its pandas batches to ``rank(shared, batch)``, which yields, per block of rows, the rows' keys and their
k best ids and scores as numpy arrays (``ranking.top_k_block``, ``top_k_dense`` or ``top_k_same_order``:
blocked, bounded memory, no per-row Python loop over the catalogue), plus columns constant over the
block. Padding (id -1: fewer than k candidates) is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from pyspark.sql import DataFrame

from spark_jobs.common import ranking

#: (key, listed id, score) columns of the two kinds of lists.
RECOMMENDATIONS = ("userId", "movieId", "score")
SIMILAR_MOVIES = ("movieId", "similar_movieId", "similarity")

#: What ``rank`` yields per block: (keys, top ids, top scores, constant columns).
Block = tuple[np.ndarray, np.ndarray, np.ndarray, Mapping[str, Any]]


def schema(columns: tuple[str, str, str] = RECOMMENDATIONS) -> str:
    """The Spark schema of lists with these (key, listed id, score) columns."""
    key, item, score = columns
    return f"{key} int, rank int, {item} int, {score} float"


def top_k_lists(rows: DataFrame, shared: Any, rank: Callable[[Any, Any], Iterator[Block]],
                columns: tuple[str, str, str] = RECOMMENDATIONS, extra_schema: str = "") -> DataFrame:
    """``(key, rank, id, score[, extra columns])`` rows: the lists ``rank`` computes for ``rows``' batches."""
    key, item, score = columns
    handle = rows.sparkSession.sparkContext.broadcast(shared)
    names = {"userId": key, "movieId": item, "score": score}

    def lists(batches):
        value = handle.value
        for batch in batches:
            if batch.empty:
                continue
            for keys, top_ids, top_scores, constants in rank(value, batch):
                frame = ranking.recommendation_frame(keys, top_ids, top_scores).rename(columns=names)
                for name, constant in constants.items():
                    frame[name] = constant
                yield frame

    return rows.mapInPandas(lists, schema(columns) + extra_schema)
