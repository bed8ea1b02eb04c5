"""Property-based requests against the API's own OpenAPI document (schemathesis, in process, on a served
file:// lake): no input makes a 5xx, and every answer matches the document."""

from __future__ import annotations

from typing import Annotated

import pytest
import schemathesis
from fastapi import Depends
from hypothesis import settings

from movielens.api import app as api_app
from tests import servinglake
from tests.unit.test_api import file_put

TOKEN = "property-test-token"


def stand_in_login(credentials: Annotated[object, Depends(api_app._bearer)]) -> str:
    """Airflow's token check (tested on the real API server) stood in for by one known token: a request
    without it still gets 401."""
    if credentials is None or credentials.credentials != TOKEN:
        raise api_app._unauthorized("not authenticated")
    return "tester"


APP = api_app.create_app()
APP.dependency_overrides[api_app.reader] = stand_in_login
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def served_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("served") / "lake"
    servinglake.write(file_put(root))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MOVIELENS_LAKE_URL", root.as_uri())
        env.delenv("MOVIELENS_SERVING_CONN_ID", raising=False)
        APP.state.store = api_app.Store()
        yield root


@schema.parametrize()
@settings(max_examples=40, deadline=None)
def test_no_input_makes_a_server_error_and_answers_match_the_document(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})
