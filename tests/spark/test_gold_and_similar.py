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


def test_the_cold_start_list_ranks_by_the_ratings_of_the_trailing_window(spark):
    day = 86_400
    stats = spark.createDataFrame(
        [(m, f"M{m}", 2000, ["Drama"], n, 4.0, 4.0) for m, n in ((1, 5), (2, 2), (3, 1), (4, 3))], STATS_SCHEMA)
    # The latest rating is on day 500. Movie 1: 5 ratings on day 0, older than a year; 2: two recent;
    # 3: one recent; 4: one recent, two old.
    when = {1: [0] * 5, 2: [500, 500], 3: [500], 4: [500, 0, 0]}
    ratings = spark.createDataFrame([(u, m, 4.0, t * day) for m, days in when.items() for u, t in enumerate(days)],
                                    "userId int, movieId int, rating double, timestamp long")

    def listed(window_days: int) -> list[tuple[int, int]]:
        rows = gold.fallback_movies(ratings, stats, window_days).orderBy("rank").collect()
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        return [(r["movieId"], r["n_ratings"]) for r in rows]

    # The last 365 days: 2 (2 ratings), then 3 and 4 (1 each: 4 has more ratings in all), then 1 (none recent).
    assert listed(365) == [(2, 2), (4, 1), (3, 1), (1, 0)]
    assert listed(0) == [(1, 5), (4, 3), (2, 2), (3, 1)], "0: every rating counts"
    assert gold.fallback_movies(ratings, stats, 365, n=2).count() == 2


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


def test_item_knn_lists_the_nearest_by_cosine_of_likes_among_movies_with_enough_ratings(spark):
    """Brute force on a small random matrix: every listed neighbour has its exact cosine, the lists hold the
    best n of the movies with at least min_ratings ratings and a like in common, and never the movie itself."""
    rng = np.random.default_rng(11)
    n_users, n_movies, n, floor = 30, 25, 4, 6
    rated = rng.random((n_users, n_movies)) < 0.3
    stars = rng.integers(1, 11, size=(n_users, n_movies)) / 2.0
    rows = [(u + 1, m + 100, float(stars[u, m])) for u in range(n_users) for m in range(n_movies) if rated[u, m]]
    ratings = spark.createDataFrame(rows, "userId int, movieId int, rating double")
    got = similar.similar_movies_knn(ratings, n=n, liked_threshold=3.0, min_ratings=floor).collect()

    liked = (rated & (stars >= 3.0)).astype(float)
    norms = np.linalg.norm(liked, axis=0)
    cosine = (liked.T @ liked) / np.outer(np.where(norms > 0, norms, 1), np.where(norms > 0, norms, 1))
    eligible = rated.sum(axis=0) >= floor
    assert 0 < eligible.sum() < n_movies, "the floor leaves some movies out"
    by_movie = {}
    for r in got:
        by_movie.setdefault(r["movieId"], []).append((r["rank"], r["similar_movieId"], r["similarity"]))
    assert set(by_movie) <= {m for _, m, _ in rows}, "only rated movies have lists"
    for m in range(n_movies):
        candidates = [j for j in range(n_movies) if j != m and eligible[j] and cosine[m, j] > 0]
        best = sorted((cosine[m, j] for j in candidates), reverse=True)[:n]
        listed = sorted(by_movie.get(m + 100, []))
        assert [rank for rank, _, _ in listed] == list(range(1, len(best) + 1)), m
        assert np.allclose([s for _, _, s in listed], best, atol=1e-5), m
        for _, other, score in listed:
            j = other - 100
            assert j != m and eligible[j] and abs(cosine[m, j] - score) < 1e-5, (m, other)


def test_similar_movies_from_als_factors_leave_out_rarely_rated_movies(spark):
    vectors = np.array([[1.0, 0.0], [0.99, 0.1], [0.9, 0.4], [0.0, 1.0]], np.float32)
    factors = spark.createDataFrame([(i + 1, v.tolist()) for i, v in enumerate(vectors)], "id int, features array<float>")
    got = similar.similar_movies(factors, n=2, support={1: 50, 2: 3, 3: 50, 4: 50}, min_ratings=10).collect()
    lists = {}
    for r in sorted(got, key=lambda r: (r["movieId"], r["rank"])):
        lists.setdefault(r["movieId"], []).append(r["similar_movieId"])
    assert lists[1] == [3, 4] and lists[2] == [1, 3], "movie 2 (3 ratings) is nobody's neighbour, but has its own list"
