"""The recommendations over HTTP, inside Airflow's own API server (an ``AirflowPlugin.fastapi_apps`` app).

Mounted at ``/movielens`` (``plugins/movielens_plugin.py``):

- ``/movielens/api/v1/...``: the JSON API (:mod:`.app`; OpenAPI at ``/movielens/api/v1/openapi.json``):
  a user's recommendations, a movie's similar movies, movie search, the runs with their metrics and gate
  decisions, each run's report and Data Docs, from whatever lake is configured;
- ``/movielens/pages/...``: the "Recommendations", "Similar movies" and "Runs" pages the Airflow UI shows in
  its navigation (``external_views``), plain HTML calling the API.

Every route needs Airflow's login: the bearer token of ``POST /auth/token`` or the UI's session cookie.
"""

from __future__ import annotations

from urllib.parse import quote

PREFIX = "/movielens"
API = "/api/v1"
PAGES = "/pages"


def run_links(base_url: str, ds: str) -> dict[str, str]:
    """The HTTP pages of one run's outputs (served by the API app), for summaries, emails and reports."""
    root = f"{base_url.rstrip('/')}{PREFIX}"
    return {
        "runs_page": f"{root}{PAGES}/runs.html#ds={ds}",
        "report": f"{root}{API}/runs/{ds}/report",
        "data_docs": f"{root}{API}/runs/{ds}/data-docs/index.html",
        "recommendations_page": f"{root}{PAGES}/recommendations.html",
    }


def user_page(base_url: str, user_id: int) -> str:
    return f"{base_url.rstrip('/')}{PREFIX}{PAGES}/recommendations.html#user={quote(str(user_id))}"
