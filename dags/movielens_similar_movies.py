"""
### movielens_similar_movies

Triggered by hand (**Trigger** in the UI, then fill in the form): the 20 movies most similar to the
movie id you give, with titles, from the latest `gold/similar_movies` partition with ds <= the run's
date (cosine similarity of the ALS item factors, written by `movielens_daily`).

The answer is in the task log and in `reports/ds=D/similar_movies/movie_<id>.json`. A movie without
ratings has no factors: the run fails saying so.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from movielens.dag_defaults import START_DATE, default_args

DAG_ID = "movielens_similar_movies"


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    tags=["movielens", "recommendations", "on-demand"],
    doc_md=__doc__,
    default_args=default_args(),
    params={
        "movie_id": Param(1, type="integer", minimum=1, title="Movie id", description="MovieLens movieId, e.g. 1 for Toy Story (1995)"),
        "n": Param(20, type="integer", minimum=1, maximum=50, title="How many", description="similar movies to list (at most 50)"),
    },
)
def movielens_similar_movies():
    @task
    def find_similar_movies(ds=None, params=None) -> dict:
        from movielens import similar

        result = similar.lookup(ds, int(params["movie_id"]), int(params["n"]))
        result["written_to"] = similar.write_lookup(ds, result)
        print(similar.as_text(result))
        return result

    find_similar_movies()


movielens_similar_movies()
