"""The FastAPI app of the API and its pages (see :mod:`movielens.api`).

Answers come from the serving database when ``MOVIELENS_SERVING_CONN_ID`` is set, else from the lake's served
partitions (the publish gate's records decide, as for every reader); titles, years and genres from the lake's
latest silver movies. A user the served lists do not hold gets the popularity fallback, flagged.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path as LocalPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from movielens.api import API, PAGES, run_links, schemas
from spark_jobs.common import layout

DAILY_DAG = "movielens_daily"
MAX_ID = 2**31 - 1  # ids are PostgreSQL integers
MAX_N = 100
CATALOGUE_TTL_S = 60.0
TOKEN_CACHE_S = 30.0
PAGES_DIR = LocalPath(__file__).with_name("pages")

UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="A MovieLens userId")]
MovieId = Annotated[int, Path(ge=1, le=MAX_ID, description="A MovieLens movieId")]
HowMany = Annotated[int, Query(ge=1, le=MAX_N, description=f"How many (1-{MAX_N})")]
Ds = Annotated[dt.date, Path(description="A run date, YYYY-MM-DD")]

_bearer = HTTPBearer(auto_error=False, description="The token of Airflow's POST /auth/token")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


class _VerifiedTokens:
    """Tokens Airflow verified and authorised, kept ``TOKEN_CACHE_S`` (never past their own expiry): Airflow's
    check reads its revoked-token table on every call, which would cost each request a metadata-DB query. A
    token revoked by a logout is refused here at most ``TOKEN_CACHE_S`` later."""

    def __init__(self, max_size: int = 4096):
        self.max_size = max_size
        self._users: dict[str, tuple[float, Any]] = {}

    def get(self, token: str):
        entry = self._users.get(token)
        if entry and time.time() < entry[0]:
            return entry[1]
        self._users.pop(token, None)
        return None

    def put(self, token: str, user, expires_at: float) -> None:
        if len(self._users) >= self.max_size:
            self._users.clear()
        self._users[token] = (min(time.time() + TOKEN_CACHE_S, expires_at), user)


_verified = _VerifiedTokens()


async def reader(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]):
    """Airflow's login, as the UI's: a bearer token (``POST /auth/token``) or the UI's session cookie; the user
    must be allowed to read ``movielens_daily``'s runs (a read-only user is)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    token = credentials.credentials if credentials else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        raise _unauthorized("not authenticated: send 'Authorization: Bearer <token>' with a token of Airflow's "
                            "POST /auth/token, or log in to the Airflow UI")
    if (user := _verified.get(token)) is not None:
        return user
    manager = get_auth_manager()
    try:
        user = await manager.get_user_from_token(token)
    except Exception:  # noqa: BLE001 - expired, revoked, malformed, signed by another: all mean "log in again"
        raise _unauthorized("the token is invalid or expired: get a new one from POST /auth/token") from None
    if not manager.is_authorized_dag(method="GET", user=user, access_entity=DagAccessEntity.RUN,
                                     details=DagDetails(id=DAILY_DAG)):
        raise HTTPException(403, f"user {user.get_name()!r} may not read the runs of {DAILY_DAG}")
    _verified.put(token, user, _expiry(token))
    return user


def _expiry(token: str) -> float:
    """The token's own ``exp`` claim (already verified by Airflow), or now when it has none."""
    import base64

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims.get("exp") or time.time())
    except (IndexError, ValueError, TypeError):
        return time.time()


class Store:
    """What the routes read: the settings, the lake, a small pool of serving-database connections and the
    movie catalogue (cached for ``CATALOGUE_TTL_S``)."""

    def __init__(self, settings=None):
        from movielens import config
        from movielens.lake import Lake

        self.settings = settings or config.load()
        self.lake = Lake.from_settings(self.settings)
        self.conn_id = self.settings.serving_conn_id
        self.source = "db" if self.conn_id else "lake"
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._catalogue: tuple[float, dict[int, dict[str, Any]]] = (0.0, {})
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled connection of the serving database (None when answering from the lake); a connection
        that failed is closed, not returned."""
        if not self.conn_id:
            yield None
            return
        from movielens.serving import ServingError, connect

        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = connect(self.conn_id)
            conn.autocommit = True
        try:
            yield conn
        except ServingError:
            self._pool.put(conn)
            raise
        except BaseException:
            conn.close()
            raise
        else:
            self._pool.put(conn)

    def served(self, find, item_id: int, n: int) -> dict[str, Any]:
        """``find`` (a lookup of :mod:`movielens.serving.lookup`) of one id on a pooled connection; nothing served
        for it is a 404 saying why."""
        from movielens.serving import ServingError

        try:
            with self.connection() as conn:
                return find(item_id, n, self.source, conn=conn)
        except ServingError as err:
            raise HTTPException(404, str(err)) from None

    def catalogue(self) -> dict[int, dict[str, Any]]:
        """movieId -> movie (id, title, year, genres) of the lake's latest silver movies. Past its TTL one request
        reloads it while the others answer from the copy they have (only the first load waits)."""
        expires, movies = self._catalogue
        if time.monotonic() < expires or not self._lock.acquire(blocking=not movies):
            return movies
        try:
            dates = self.lake.table_dates(layout.SILVER, "movies", "9999-12-31")
            fresh: dict[int, dict[str, Any]] = {}
            if dates:
                table = self.lake.read_table(layout.SILVER, "movies", dates[-1])
                for r in table.select(["movieId", "title", "year", "genre_list"]).to_pylist():
                    fresh[r["movieId"]] = {"movie_id": r["movieId"], "title": r["title"], "year": r["year"],
                                           "genres": list(r["genre_list"] or [])}
            self._catalogue = (time.monotonic() + CATALOGUE_TTL_S, fresh)
            return fresh
        finally:
            self._lock.release()

    def movie(self, movie_id: int, title: str | None = None) -> dict[str, Any]:
        known = self.catalogue().get(movie_id)
        if known is None:
            return {"movie_id": movie_id, "title": title, "year": None, "genres": []}
        return known if known["title"] else {**known, "title": title}


async def known_query(request: Request) -> None:
    """A query parameter the route does not take (a typo such as ``?limt=5``) is an error, not ignored."""
    route = request.scope.get("route")
    known = {p.alias for p in route.dependant.query_params} if route else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise HTTPException(422, f"unknown query parameter(s) {unknown}: this route takes {sorted(known) or 'none'}")


async def _store(request: Request) -> Store:
    state = request.app.state
    if getattr(state, "store", None) is None:
        state.store = Store()
    return state.store


StoreDep = Annotated[Store, Depends(_store)]


def _because(store: Store, user_id: int, picks: list[int]) -> dict[int, schemas.Because]:
    """For each pick, the user's rated movie it is most similar to, from the served similar-movies lists."""
    from movielens.serving import ServingError, lookup

    rated = {r["movie_id"] for r in lookup._rated_in_lake(user_id, None)}
    out: dict[int, schemas.Because] = {}
    for pick in picks:
        try:
            with store.connection() as conn:
                rows = lookup.lookup_similar(pick, MAX_N, store.source, conn=conn)["rows"]
        except ServingError:
            continue
        best = next((r for r in rows if r["similar_movie_id"] in rated), None)
        if best:
            out[pick] = schemas.Because(movie_id=best["similar_movie_id"], title=best["similar_title"],
                                        similarity=best["similarity"])
    return out


def _run(store: Store, summary: dict[str, Any]) -> schemas.Run:
    ds = summary["ds"]
    publication = summary.get("publication") or {}
    outputs = summary.get("outputs") or {}
    metrics = {model: {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
               for model, values in (summary.get("metrics") or {}).items()}
    drift = {k: v for k, v in (summary.get("drift") or {}).items() if k in ("metrics", "alerts")}
    return schemas.Run(
        ds=ds, run_id=summary.get("run_id"), files_validated=summary.get("files_validated", 0),
        files_rejected=summary.get("files_rejected", 0), published=publication.get("published"),
        served_ds=publication.get("served_ds"), gate_reasons=publication.get("reasons", []),
        tuning=(summary.get("tuning") or {}).get("action"), metrics=metrics, backtest=summary.get("backtest") or {},
        drift=drift,
        links={**run_links(store.settings.airflow_base_url, ds), "airflow_run": (summary.get("links") or {}).get("airflow_run")},
        lake={k: outputs.get(k) for k in ("report", "data_docs", "run_summary")},
    )


def _lake_file(store: Store, ds: dt.date, *parts: str) -> tuple[bytes, str]:
    if any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise HTTPException(404, f"not a page of the run's reports: {'/'.join(parts)!r}")
    path = store.lake.zone(layout.REPORTS, ds.isoformat()).joinpath(*parts)
    if not path.is_file():
        raise HTTPException(404, f"{store.lake.uri(path)} does not exist")
    return path.read_bytes(), mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"


async def _answer(store: Store, answer, reads_lake: bool = False):
    """Run ``answer``: inline when it is one indexed query of the serving database (a thread hop would cost
    more than the query), in the thread pool when it reads the lake."""
    if store.source == "db" and not reads_lake:
        return answer()
    from fastapi.concurrency import run_in_threadpool

    return await run_in_threadpool(answer)


def _router() -> APIRouter:
    from movielens.serving import lookup

    router = APIRouter(prefix=API, dependencies=[Depends(reader), Depends(known_query)], responses={
        401: {"model": schemas.Problem, "description": "No token, or an invalid or expired one"},
        403: {"model": schemas.Problem, "description": "The user may not read movielens_daily's runs"},
        404: {"model": schemas.Problem, "description": "Nothing served for this id or date"},
        422: {"description": "A parameter out of range, not a number, or not one the route takes"},
    })

    @router.get("/users/{user_id}/recommendations", response_model=schemas.Recommendations,
                summary="A user's served recommendations (the popularity fallback for a user the lists do not hold)")
    async def recommendations(store: StoreDep, user_id: UserId, n: HowMany = 10,
                              explain: Annotated[bool, Query(description="Add the rated movie each pick is most "
                                                                         "similar to")] = False):
        def answer() -> dict[str, Any]:
            found = store.served(lookup.lookup_recommendations, user_id, n)
            because = _because(store, user_id, [r["movie_id"] for r in found["rows"]]) if explain else {}
            return {"user_id": user_id, "model_ds": found["model_ds"], "source": found["source"],
                    "fallback": found["fallback"],
                    "items": [{**store.movie(r["movie_id"], r["title"]), "rank": r["rank"], "score": r["score"],
                               "because": because.get(r["movie_id"])} for r in found["rows"]]}

        return await _answer(store, answer, reads_lake=explain)

    @router.get("/movies/{movie_id}/similar", response_model=schemas.SimilarMovies,
                summary="The movies most similar to a movie, from the served lists")
    async def similar(store: StoreDep, movie_id: MovieId, n: HowMany = 10):
        def answer() -> dict[str, Any]:
            found = store.served(lookup.lookup_similar, movie_id, n)
            return {"movie": store.movie(movie_id, found["rows"][0]["title"]), "model_ds": found["model_ds"],
                    "source": found["source"],
                    "items": [{**store.movie(r["similar_movie_id"], r["similar_title"]), "rank": r["rank"],
                               "similarity": r["similarity"]} for r in found["rows"]]}

        return await _answer(store, answer)

    @router.get("/movies", response_model=schemas.MovieSearch, summary="Movies whose title contains q")
    def movies(store: StoreDep, q: Annotated[str, Query(min_length=1, max_length=200, description="Part of a title")],
               limit: HowMany = 20):
        needle = q.casefold().strip()
        if not needle:
            raise HTTPException(422, "q must contain more than spaces")
        found = [m for m in store.catalogue().values() if m["title"] and needle in m["title"].casefold()]
        found.sort(key=lambda m: (not m["title"].casefold().startswith(needle), m["title"]))
        return {"query": q, "items": found[:limit]}

    @router.get("/runs", response_model=schemas.Runs, summary="The run dates, latest first, with metrics and gate decisions")
    def runs(store: StoreDep, limit: Annotated[int, Query(ge=1, le=366, description="How many dates")] = 30):
        summaries = store.lake.run_summaries_before("9999-12-31", limit)
        return schemas.Runs(items=[_run(store, s) for s in reversed(summaries)])

    @router.get("/runs/{ds}", response_model=schemas.Run, summary="One date's run")
    def run(store: StoreDep, ds: Ds):
        content, _ = _lake_file(store, ds, layout.RUN_SUMMARY)
        return _run(store, json.loads(content))

    @router.get("/runs/{ds}/report", summary="The run's HTML report, from the lake", response_class=Response,
                responses={200: {"content": {"text/html": {}}, "description": "The report"}})
    def report(store: StoreDep, ds: Ds):
        content, _ = _lake_file(store, ds, layout.RUN_REPORT)
        return HTMLResponse(content)

    @router.get("/runs/{ds}/data-docs/{page:path}", summary="The run's Great Expectations Data Docs, from the lake",
                response_class=Response, responses={200: {"content": {"text/html": {}, "*/*": {}},
                                                          "description": "A page or asset of the Data Docs"}})
    def data_docs(store: StoreDep, ds: Ds, page: str):
        content, media_type = _lake_file(store, ds, layout.DATA_DOCS, *page.split("/"))
        return Response(content, media_type=media_type)

    return router


def create_app() -> FastAPI:
    app = FastAPI(
        title="MovieLens recommendations", version="1",
        description="The served recommendations, similar movies and runs of movielens-platform. Authenticate with "
                    "the bearer token of Airflow's `POST /auth/token`.",
        openapi_url=f"{API}/openapi.json", docs_url=f"{API}/docs", redoc_url=None,
    )
    app.state.store = None
    app.include_router(_router())
    app.mount(PAGES, StaticFiles(directory=PAGES_DIR, html=True), name="pages")

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, err: ValueError):
        return JSONResponse({"detail": str(err)}, status_code=400)

    return app
