"""The API app (movielens.api.app) in process on a file:// lake and on the serving database (a real
PostgreSQL): its answers, its bad-input handling and its OpenAPI document. Its login is Airflow's and is
tested on the real API server (tests/integration/test_airflow_stack.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from movielens.api import app as api_app
from movielens.serving import publish
from tests import servinglake


def file_put(root):
    def put(rel: str, data: bytes) -> None:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return put


def client_of(app) -> TestClient:
    app.dependency_overrides[api_app.reader] = lambda: "tester"  # login: see the module docstring
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def served_lake(tmp_path, lake_url, monkeypatch):
    monkeypatch.delenv("MOVIELENS_SERVING_CONN_ID", raising=False)
    servinglake.write(file_put(tmp_path / "lake"))
    return tmp_path / "lake"


def test_answers_from_the_lake(served_lake):
    servinglake.check_answers(client_of(api_app.create_app()), "lake")


def test_answers_from_the_serving_database(served_lake, postgres_server, monkeypatch):
    database = postgres_server.create_database()
    monkeypatch.setenv("AIRFLOW_CONN_MOVIELENS_SERVING", postgres_server.connection_json(database))
    monkeypatch.setenv("MOVIELENS_SERVING_CONN_ID", "movielens_serving")
    for ds in (servinglake.OLD, servinglake.NEW):
        publish.publish(ds)
    app = api_app.create_app()
    servinglake.check_answers(client_of(app), "db")
    # The pool keeps its connections across requests.
    assert app.state.store._pool.qsize() >= 1


@pytest.mark.parametrize("path, status, says", [
    ("/api/v1/users/0/recommendations", 422, "greater than or equal to 1"),
    ("/api/v1/users/-5/recommendations", 422, "greater than or equal to 1"),
    ("/api/v1/users/99999999999999999999/recommendations", 422, "less than or equal to 2147483647"),
    ("/api/v1/users/abc/recommendations", 422, "valid integer"),
    ("/api/v1/users/7/recommendations?n=0", 422, "greater than or equal to 1"),
    ("/api/v1/users/7/recommendations?n=101", 422, "less than or equal to 100"),
    ("/api/v1/users/7/recommendations?n=ten", 422, "valid integer"),
    ("/api/v1/movies/0/similar", 422, "greater than or equal to 1"),
    ("/api/v1/movies?q=", 422, "at least 1 character"),
    ("/api/v1/movies?q=%20%20", 422, "more than spaces"),
    ("/api/v1/movies", 422, "Field required"),
    ("/api/v1/runs?limit=0", 422, "greater than or equal to 1"),
    ("/api/v1/runs/yesterday/report", 422, "valid date"),
    ("/api/v1/runs/2026-02-30/report", 422, "day value is outside expected range"),
    ("/api/v1/runs/2026-10-01/report", 404, "does not exist"),
    ("/api/v1/runs/2026-11-01/data-docs/../run_summary.json", 404, "Not Found"),
    ("/api/v1/runs/2026-11-01/data-docs/static/..%2F..%2Frun_summary.json", 404, "not a page of the run"),
    ("/api/v1/runs?limt=5", 422, "unknown query parameter(s) ['limt']"),
])
def test_bad_input_gets_a_4xx_with_a_message(served_lake, path, status, says):
    response = client_of(api_app.create_app()).get(path)
    assert response.status_code == status, response.text
    assert says in response.text


def test_an_empty_lake_answers_404_saying_what_to_run(lake_url, monkeypatch):
    monkeypatch.delenv("MOVIELENS_SERVING_CONN_ID", raising=False)
    client = client_of(api_app.create_app())
    response = client.get("/api/v1/users/1/recommendations")
    assert response.status_code == 404 and "run movielens_daily first" in response.json()["detail"]
    assert client.get("/api/v1/runs").json() == {"items": []}
    assert client.get("/api/v1/movies", params={"q": "toy"}).json()["items"] == []


def test_the_openapi_document_lists_every_route_typed():
    doc = TestClient(api_app.create_app()).get("/api/v1/openapi.json").json()
    assert {"/api/v1/users/{user_id}/recommendations", "/api/v1/movies/{movie_id}/similar", "/api/v1/movies",
            "/api/v1/runs", "/api/v1/runs/{ds}/report", "/api/v1/runs/{ds}/data-docs/{page}"} <= set(doc["paths"])
    ok = doc["paths"]["/api/v1/users/{user_id}/recommendations"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Recommendations"}
    assert {"401", "403", "404", "422"} <= set(doc["paths"]["/api/v1/runs"]["get"]["responses"])


def test_without_a_login_every_route_answers_401():
    client = TestClient(api_app.create_app())
    for path in ("/api/v1/users/1/recommendations", "/api/v1/movies/1/similar", "/api/v1/movies?q=a", "/api/v1/runs"):
        response = client.get(path)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer", path
        assert "POST /auth/token" in response.json()["detail"]
