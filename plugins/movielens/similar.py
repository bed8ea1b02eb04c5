"""Look up the movies most similar to one movie, in the latest ``gold/similar_movies`` partition.

The daily Spark job writes the 50 nearest movies of every movie (cosine of the ALS item factors); this
reads one movie's rows with a Parquet filter, so no Spark is needed to answer.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from movielens import config
from movielens.lake import Lake
from spark_jobs.common import layout

log = logging.getLogger(__name__)

TABLE = "similar_movies"


class NoSimilarMovies(AirflowFailException):
    """No model output to answer from, or the movie is not in it. Retrying cannot help."""


def lookup(ds: str, movie_id: int, n: int = 20) -> dict[str, Any]:
    """The ``n`` movies most similar to ``movie_id`` from the latest similar-movies table with ds <= ``ds``."""
    lake = Lake.from_settings(config.load())
    dates = lake.table_dates(layout.GOLD, TABLE, ds)
    if not dates:
        raise NoSimilarMovies(f"no {layout.GOLD}/{TABLE} partition with ds <= {ds}: run movielens_daily first")
    model_ds = dates[-1]
    folder = lake.table(layout.GOLD, TABLE, model_ds)
    rows = lake.read_table(layout.GOLD, TABLE, model_ds, filters=[("movieId", "=", movie_id)]).to_pylist()
    if not rows:
        raise NoSimilarMovies(
            f"movie {movie_id} is not in the models of ds={model_ds} (a movie needs ratings to have factors); "
            f"see {lake.uri(folder)}"
        )
    rows.sort(key=lambda r: r["rank"])
    similar = [
        {"rank": r["rank"], "movieId": r["similar_movieId"], "title": r["similar_title"], "similarity": round(float(r["similarity"]), 4)}
        for r in rows[:n]
    ]
    return {"movieId": movie_id, "title": rows[0]["title"], "model_ds": model_ds, "source": lake.uri(folder), "similar": similar}


def write_lookup(ds: str, result: dict[str, Any]) -> str:
    """Save a lookup under ``reports/ds=D/similar_movies/movie_<id>.json`` (a rerun overwrites it)."""
    lake = Lake.from_settings(config.load())
    target = lake.zone(layout.REPORTS, ds) / TABLE / f"movie_{result['movieId']}.json"
    lake.write_json(target, result)
    return lake.uri(target)


def as_text(result: dict[str, Any]) -> str:
    lines = [f"Movies most similar to {result['title']} (movieId {result['movieId']}), models of ds={result['model_ds']}:"]
    lines += [f"{s['rank']:>3}. {s['title']} (movieId {s['movieId']}, cosine {s['similarity']:.3f})" for s in result["similar"]]
    return "\n".join(lines)
