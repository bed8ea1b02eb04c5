"""The Airflow plugin of movielens-platform: its API and pages in Airflow's own API server.

``fastapi_apps`` mounts :func:`movielens.api.app.create_app` at ``/movielens``; ``external_views`` put the
pages in the UI's navigation ("Browse") and on each run of ``movielens_daily``. See docs/api.md.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from movielens.api import PAGES, PREFIX
from movielens.api.app import create_app

_PAGES = f"{PREFIX.lstrip('/')}{PAGES}"


class MovieLensPlugin(AirflowPlugin):
    name = "movielens"
    fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "MovieLens recommendations API"}]
    external_views = [
        {"name": "Recommendations", "href": f"{_PAGES}/recommendations.html", "url_route": "movielens-recommendations",
         "destination": "nav", "category": "browse"},
        {"name": "Similar movies", "href": f"{_PAGES}/similar.html", "url_route": "movielens-similar",
         "destination": "nav", "category": "browse"},
        {"name": "Runs", "href": f"{_PAGES}/runs.html", "url_route": "movielens-runs", "destination": "nav",
         "category": "browse"},
        {"name": "MovieLens run", "href": f"{_PAGES}/runs.html#run_id={{RUN_ID}}", "url_route": "movielens-run",
         "destination": "dag_run"},
    ]
