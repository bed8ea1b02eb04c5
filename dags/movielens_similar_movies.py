"""
### movielens_similar_movies

On demand (no schedule): the movies most similar to one movie, with titles, from the latest
`gold/similar_movies` partition with ds <= the run's date. `movielens_daily` writes that table: the 50
nearest movies of every rated movie (item-kNN by default; docs/models.md, "Similar movies").

#### Trigger form
- **movie_id** (required): the MovieLens `movieId` to look up (e.g. 1, Toy Story (1995)).
- **n** (default 20, at most 50): how many similar movies to list.
- **Logical date** (Airflow's own field at the top of the form, filled in with now): its UTC date is
  the run's `ds`; the answer comes from the newest models of a date <= ds, so an earlier date asks
  yesterday's models. A run without a logical date fails at once.

Command line: `airflow dags trigger movielens_similar_movies -l 2026-11-20 --conf '{"movie_id": 1, "n": 10}'`.

#### Output
The task **find_similar_movies** logs the list (rank, title, similarity) and writes it to
`reports/ds=D/similar_movies/movie_<id>.json` in the lake (`MOVIELENS_LAKE_URL`), with the date of the
models it used. A movie without ratings has no list, and a lake with no `gold/similar_movies` yet
has no answer: the run fails saying so (no retries can help), and the failure email goes to
`MOVIELENS_ALERT_EMAIL_TO`. No Spark runs: the lookup reads one movie's Parquet rows.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from movielens.dag_defaults import START_DATE, default_args, require_ds

DAG_ID = "movielens_similar_movies"


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    description="The movies most similar to one movie, from the latest daily run's lists (trigger with a movie id).",
    tags=["movielens", "recommendations", "on-demand"],
    doc_md=__doc__,
    default_args=default_args(),
    params={
        # No default: an empty field is refused. exclusiveMinimum, not minimum=1: the UI's number field clamps a
        # typed 0 up to a `minimum` (a run of movie 1); with exclusiveMinimum the server refuses 0, saying why.
        "movie_id": Param(type="integer", exclusiveMinimum=0, title="Movie id",
                          description="MovieLens movieId (required), e.g. 1 for Toy Story (1995)"),
        "n": Param(20, type="integer", minimum=1, maximum=50, title="How many", description="similar movies to list (at most 50)"),
    },
)
def movielens_similar_movies():
    @task
    def find_similar_movies(ds=None, params=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from movielens.serving import ServingError, lookup

        ds = require_ds(ds)
        try:
            result = lookup.lookup_similar(int(params["movie_id"]), int(params["n"]), "lake", ds)
        except ServingError as err:  # no outputs yet, or a movie without ratings: retrying cannot help
            raise AirflowFailException(str(err)) from None
        result["written_to"] = lookup.write_answer(ds, result)
        print(lookup.similar_text(result))
        return result

    find_similar_movies()


movielens_similar_movies()
