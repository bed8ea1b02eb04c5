"""Benchmark: publish one run's outputs to PostgreSQL at ML-25M size, republish (a rerun), and look up.

Gold tables shaped as the Spark job writes them (ML-25M: 162,541 users x 10 recommendations, 59,047 rated
movies x 50 similar movies) go into a temporary file:// lake; a PostgreSQL of its own (the tests' server
class: Debian's postgresql, initdb on a free port) receives them.

    .venv/bin/python bench/serving_publish.py [--users 162541] [--movies 59047]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]


def write_gold(root: Path, ds: str, users: int, movies: int, k: int = 10, n: int = 50) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    titles = np.array([f"Movie {i} ({1950 + i % 70})" for i in range(1, movies + 1)], dtype=object)
    user_ids = np.repeat(np.arange(1, users + 1, dtype=np.int32), k)
    rec_movies = rng.integers(1, movies + 1, size=users * k, dtype=np.int32)
    recs = pa.table({
        "userId": user_ids, "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), users), "movieId": rec_movies,
        "title": titles[rec_movies - 1], "score": rng.random(users * k, dtype=np.float32),
    })
    movie_ids = np.repeat(np.arange(1, movies + 1, dtype=np.int32), n)
    similar_ids = rng.integers(1, movies + 1, size=movies * n, dtype=np.int32)
    similar = pa.table({
        "movieId": movie_ids, "title": titles[movie_ids - 1], "rank": np.tile(np.arange(1, n + 1, dtype=np.int32), movies),
        "similar_movieId": similar_ids, "similar_title": titles[similar_ids - 1],
        "similarity": rng.random(movies * n, dtype=np.float32),
    })
    counts = rng.integers(1, 5000, size=movies)
    top = np.argsort(-counts, kind="stable")[:500]
    genres = np.array(["Drama", "Comedy|Romance", "Action|Thriller", "Animation|Children"], dtype=object)
    fallback = pa.table({
        "segment": ["all"] * len(top), "rank": np.arange(1, len(top) + 1, dtype=np.int32), "movieId": (top + 1).astype(np.int32),
        "title": titles[top], "genres": genres[top % 4], "n_ratings": counts[top].astype(np.int64),
    })
    catalogue = pa.table({
        "movieId": np.arange(1, movies + 1, dtype=np.int32), "title": titles,
        "year": np.array([1950 + i % 70 for i in range(1, movies + 1)], dtype=np.int32),
        "genre_list": [g.split("|") for g in genres[np.arange(movies) % 4]],
    })
    for zone, name, table in (("gold", "recommendations", recs), ("gold", "similar_movies", similar),
                              ("gold", "fallback_movies", fallback), ("silver", "movies", catalogue)):
        folder = root / zone / name / f"ds={ds}"
        folder.mkdir(parents=True)
        pq.write_table(table, folder / "part-00000.parquet", row_group_size=500_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=162_541)
    parser.add_argument("--movies", type=int, default=59_047)
    args = parser.parse_args()

    from tests.servers import Postgres

    with tempfile.TemporaryDirectory() as tmp, Postgres() as server:
        lake = Path(tmp) / "lake"
        write_gold(lake, "2026-11-20", args.users, args.movies)
        write_gold(lake, "2026-11-21", args.users, args.movies)
        os.environ.update({
            "MOVIELENS_LAKE_URL": lake.as_uri(),
            "AIRFLOW_CONN_MOVIELENS_SERVING": server.connection_json(),
            "MOVIELENS_SERVING_CONN_ID": "movielens_serving",
        })
        from movielens.serving import lookup, publish

        for label, ds in (("first publish", "2026-11-20"), ("rerun of the same date", "2026-11-20"),
                          ("next date (every row changes)", "2026-11-21")):
            started = time.perf_counter()
            result = publish.publish(ds)
            print(f"{label:<32} {time.perf_counter() - started:6.1f} s  rows {result['rows']}")
        for source in ("db", "lake"):
            times = []
            for user in range(1, 2001, 100):
                started = time.perf_counter()
                lookup.lookup_recommendations(user, 10, source)
                times.append(time.perf_counter() - started)
            print(f"lookup recommend --from {source:<4} median {statistics.median(times) * 1000:7.1f} ms "
                  f"(20 users, max {max(times) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
