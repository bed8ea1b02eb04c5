"""Gold analysis tables and similar movies, on small in-memory inputs."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.testing import assertDataFrameEqual

from spark_jobs import gold, similar

pytestmark = pytest.mark.spark

STATS_SCHEMA = "movieId int, title string, year int, genre_list array<string>, n_ratings long, mean_rating double, bayesian_avg double"


def test_popular_movies_per_segment_and_ranking(spark):
    stats = spark.createDataFrame(
        [
            (1, "A (1995)", 1995, ["Comedy"], 100, 4.5, 4.2),
            (2, "B (1999)", 1999, ["Comedy", "Drama"], 60, 4.8, 4.0),
            (3, "C (2001)", 2001, ["Drama"], 200, 4.0, 4.3),
            (4, "D (2003)", 2003, ["Drama"], 5, 5.0, 3.6),  # too few ratings: never ranked
            (5, "Babylon 5", None, ["Sci-Fi"], 80, 3.0, 3.1),  # no year: in no decade
        ],
        STATS_SCHEMA,
    )
    table = gold.popular_movies(stats, min_ratings=50, top_n=2)
    got: dict[tuple, list[int]] = {}
    for r in sorted(table.collect(), key=lambda r: r["rank"]):
        got.setdefault((r["scope"], r["segment"], r["ranked_by"]), []).append(r["movieId"])
    assert got[("overall", "all", "mean_rating")] == [2, 1]
    assert got[("overall", "all", "bayesian_avg")] == [3, 1]
    assert got[("genre", "Drama", "mean_rating")] == [2, 3]
    assert got[("decade", "1990s", "bayesian_avg")] == [1, 2]
    assert got[("decade", "2000s", "mean_rating")] == [3]
    assert ("genre", "Sci-Fi", "mean_rating") in got and not any(seg == "None" for _, seg, _ in got)
    assert 4 not in {r["movieId"] for r in table.collect()}


def test_ratings_by_year_and_distribution(spark):
    # 2000-01-01T00:00:00Z = 946684800
    ratings = spark.createDataFrame(
        [(1, 1, 4.0, 946684799), (1, 2, 5.0, 946684800), (2, 1, 3.0, 946684801), (2, 2, 4.0, 946684802)],
        "userId int, movieId int, rating double, timestamp long",
    )
    by_year = gold.ratings_by_year(ratings)
    assertDataFrameEqual(by_year, spark.createDataFrame([(1999, 1, 4.0), (2000, 3, 4.0)], "year int, n_ratings long, mean_rating double"))
    dist = {r["rating"]: (r["n_ratings"], r["share"]) for r in gold.rating_distribution(ratings).collect()}
    assert dist == {3.0: (1, 0.25), 4.0: (2, 0.5), 5.0: (1, 0.25)}


def test_similar_movies_are_the_nearest_by_cosine(spark):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, 5)).astype(np.float32)
    vectors[39] = 0.0  # a movie without signal: similarity 0 to all, never NaN
    ids = np.arange(100, 140)
    factors = spark.createDataFrame([(int(i), v.tolist()) for i, v in zip(ids, vectors)], "id int, features array<float>")
    got = similar.similar_movies(factors, n=5).collect()
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    by_movie = {}
    for r in got:
        by_movie.setdefault(r["movieId"], []).append((r["rank"], r["similar_movieId"], r["similarity"]))
    assert sorted(by_movie) == ids.tolist()
    for row, movie in enumerate(ids):
        ranked = sorted(by_movie[int(movie)])
        assert [rank for rank, _, _ in ranked] == [1, 2, 3, 4, 5]
        assert int(movie) not in [m for _, m, _ in ranked], "a movie is not similar to itself"
        expected = ids[np.argsort(-cosine[row], kind="stable")[:5]]
        if row != 39:
            assert [m for _, m, _ in ranked] == expected.tolist()
            assert np.allclose([s for _, _, s in ranked], np.sort(cosine[row])[::-1][:5], atol=1e-5)
        else:
            assert all(s == 0.0 for _, _, s in ranked)
