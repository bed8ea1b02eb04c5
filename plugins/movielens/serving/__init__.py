"""Serving: each run's recommendations and similar movies in PostgreSQL, and lookups from the lake or the DB.

``publish(ds)`` copies ``gold/recommendations``, ``gold/similar_movies`` and ``gold/fallback_movies`` of one date
into the tables of the database behind the Airflow connection ``MOVIELENS_SERVING_CONN_ID``:

- ``movielens_recommendations``   (user_id, rank) -> movie, title, score, ds
- ``movielens_similar_movies``    (movie_id, rank) -> similar movie, titles, similarity, ds
- ``movielens_fallback_movies``   (segment, rank) -> movie, title, genres, ratings, ds: the cold-start list
- ``movielens_serving_runs``      ds -> row counts, source, published_at

Rows are upserted keyed by (user_id, rank) and (movie_id, rank) with the run date, and a row only ever
moves forward in time: publishing an older date (a backfill) never replaces a newer date's row, and
publishing the same date twice changes nothing. Ranks a user or movie no longer has on the newer date
are deleted, so each key holds exactly the latest list. One transaction per publish.

``lookup_recommendations`` / ``lookup_similar`` answer from the served outputs (the publish gate's records
say which date is served; a user the served lists do not hold gets the popularity fallback, marked so),
from the lake (Parquet filters, no Spark) or from the database; ``python -m movielens.serving.cli
recommend|similar`` prints them.

Here: what is served (:class:`Product`: each gold table and its database table, the schema told once),
the errors and the connection; :mod:`.publish` writes, :mod:`.lookup` answers, :mod:`.cli` prints.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    """One gold table and its serving table: lake columns -> database columns, the first two are the key."""

    gold_table: str
    db_table: str
    columns: tuple[tuple[str, str, str], ...]  # (lake column, db column, db type)

    @property
    def db_columns(self) -> list[str]:
        return [db for _, db, _ in self.columns]

    @property
    def key(self) -> list[str]:
        return self.db_columns[:2]


RECOMMENDATIONS = Product(
    "recommendations",
    "movielens_recommendations",
    (("userId", "user_id", "integer"), ("rank", "rank", "integer"), ("movieId", "movie_id", "integer NOT NULL"),
     ("title", "title", "text"), ("score", "score", "real")),
)
SIMILAR_MOVIES = Product(
    "similar_movies",
    "movielens_similar_movies",
    (("movieId", "movie_id", "integer"), ("rank", "rank", "integer"), ("title", "title", "text"),
     ("similar_movieId", "similar_movie_id", "integer NOT NULL"), ("similar_title", "similar_title", "text"),
     ("similarity", "similarity", "real")),
)
#: The popularity list a user the served model does not know is answered from (the cold-start fallback).
FALLBACK_MOVIES = Product(
    "fallback_movies",
    "movielens_fallback_movies",
    (("segment", "segment", "text"), ("rank", "rank", "integer"), ("movieId", "movie_id", "integer NOT NULL"),
     ("title", "title", "text"), ("genres", "genres", "text"), ("n_ratings", "n_ratings", "integer")),
)
PRODUCTS = (RECOMMENDATIONS, SIMILAR_MOVIES, FALLBACK_MOVIES)
RUNS_TABLE = "movielens_serving_runs"


class ServingError(RuntimeError):
    """Nothing to publish or answer from (a missing partition, an unknown user or movie)."""


class ServingDatabaseError(RuntimeError):
    """The serving database went away during a publish; nothing of it is served, and a retry may succeed."""


def connect(conn_id: str):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=conn_id).get_conn()


