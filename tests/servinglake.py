"""A small served lake written by hand (the Spark job's columns), on any lake, and the API's answers on it:
one home for the API tests of the file://, s3:// and abfs:// lakes and of the serving database."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from spark_jobs.common import layout

OLD, NEW = "2026-11-01", "2026-11-02"
MOVIES = {  # movieId -> (title, year, genres)
    1: ("Toy Story (1995)", 1995, ["Animation", "Comedy"]),
    2: ("Jumanji (1995)", 1995, ["Adventure"]),
    3: ("Heat (1995)", 1995, ["Crime", "Thriller"]),
    4: ("Casino (1995)", 1995, ["Crime", "Drama"]),
    5: ("Fargo (1996)", 1996, ["Comedy", "Crime"]),
}
POPULARITY = {2: 50, 1: 40, 4: 30, 3: 20, 5: 10}  # the fallback's order: movie -> ratings
# The served lists of each date; NEW is the one served (OLD's are older).
RECOMMENDATIONS = {OLD: {7: [1, 2, 3]}, NEW: {7: [3, 4, 5]}}
SIMILAR = {OLD: {1: [2, 3, 4]}, NEW: {1: [5, 4, 3], 4: [3, 1], 5: [1, 2]}}
RATED = {7: [1, 2]}  # silver ratings of NEW: user 7 rated Toy Story and Jumanji

Put = Callable[[str, bytes], None]  # (path under the lake root, content)


def _parquet(rows: list[dict]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


def _table(put: Put, zone: str, table: str, ds: str, rows: list[dict]) -> None:
    put(f"{zone}/{table}/ds={ds}/part-00000.parquet", _parquet(rows))
    put(f"{zone}/{table}/ds={ds}/{layout.COMPLETE_MARKER}", b"")  # whole, as Spark marks a partition it wrote


def write(put: Put) -> None:
    """Two dates of gold tables, NEW's silver movies and ratings, and both dates' run summaries, reports and
    Data Docs."""
    for ds in (OLD, NEW):
        _table(put, layout.GOLD, "recommendations", ds, [
            {"userId": user, "rank": rank, "movieId": movie, "title": MOVIES[movie][0], "score": 5.0 - rank / 10}
            for user, movies in RECOMMENDATIONS[ds].items() for rank, movie in enumerate(movies, 1)])
        _table(put, layout.GOLD, "similar_movies", ds, [
            {"movieId": movie, "title": MOVIES[movie][0], "rank": rank, "similar_movieId": other,
             "similar_title": MOVIES[other][0], "similarity": 1.0 - rank / 10}
            for movie, others in SIMILAR[ds].items() for rank, other in enumerate(others, 1)])
        _table(put, layout.GOLD, "fallback_movies", ds, [
            {"segment": "all", "rank": rank, "movieId": movie, "title": MOVIES[movie][0],
             "genres": "|".join(MOVIES[movie][2]), "n_ratings": n} for rank, (movie, n) in enumerate(POPULARITY.items(), 1)])
        put(f"{layout.REPORTS}/ds={ds}/{layout.RUN_SUMMARY}", json.dumps(summary(ds)).encode())
        put(f"{layout.REPORTS}/ds={ds}/{layout.RUN_REPORT}", f"<html><body><h1>Run {ds}</h1></body></html>".encode())
        put(f"{layout.REPORTS}/ds={ds}/{layout.DATA_DOCS}/index.html", f"<html><body>Data Docs {ds}</body></html>".encode())
        put(f"{layout.REPORTS}/ds={ds}/{layout.DATA_DOCS}/static/styles/data_docs.css", b"body { margin: 0 }")
    _table(put, layout.SILVER, "movies", NEW, [
        {"movieId": m, "title": title, "year": year, "genre_list": genres} for m, (title, year, genres) in MOVIES.items()])
    _table(put, layout.SILVER, "ratings", NEW, [
        {"userId": user, "movieId": m, "rating": 4.0, "genre_list": MOVIES[m][2]} for user, ms in RATED.items() for m in ms])


def summary(ds: str) -> dict:
    first = ds == OLD
    return {
        "ds": ds, "run_id": f"manual__{ds}T00:00:00+00:00", "files_validated": 4, "files_rejected": int(first),
        "metrics": {"ease_ials": {"ndcg_at_10": 0.30 if first else 0.32}, "als_explicit": {"rmse": 0.90, "mae": 0.7}},
        "tuning": {"action": "tune" if first else "reuse"},
        "publication": {"published": True, "served_ds": ds, "reasons": ["the first run publishes"] if first else
                        ["ease_ials ndcg_at_10 0.3200 vs champion 0.3000 (+6.7%): within tolerance"]},
        "backtest": {"status": "scored", "k": 10, "lists": {"served": {"ndcg_at_10": 0.2}, "popularity": {"ndcg_at_10": 0.1}}}
        if not first else {"status": f"no lists were served before {ds}: nothing to score yet"},
        "drift": {"metrics": {"rating_psi": 0.01}, "alerts": [], "rows": 99},
        "outputs": {"report": f"file:///lake/reports/ds={ds}/report.html"},
        "links": {"airflow_run": f"http://localhost:8080/dags/movielens_daily/runs/manual__{ds}"},
    }


def check_answers(client, source: str) -> None:
    """The API's answers on a lake written by :func:`write` (``source``: "lake" or "db")."""
    recs = client.get("/api/v1/users/7/recommendations", params={"n": 2}).json()
    assert recs["model_ds"] == NEW and recs["fallback"] is None, recs
    assert (source == "db") == recs["source"].startswith("postgres"), recs["source"]
    assert [(r["rank"], r["movie_id"], r["title"], r["year"], r["genres"]) for r in recs["items"]] == [
        (1, 3, "Heat (1995)", 1995, ["Crime", "Thriller"]), (2, 4, "Casino (1995)", 1995, ["Crime", "Drama"])]
    assert [r["because"] for r in recs["items"]] == [None, None]
    # Why: Casino's served neighbours hold Toy Story (rated by user 7); Heat's hold none.
    explained = client.get("/api/v1/users/7/recommendations", params={"n": 3, "explain": "true"}).json()
    assert [r["because"] and r["because"]["movie_id"] for r in explained["items"]] == [None, 1, 1]
    because = explained["items"][1]["because"]
    assert (because["title"], round(because["similarity"], 6)) == ("Toy Story (1995)", 0.8)  # a real in PostgreSQL

    unknown = client.get("/api/v1/users/99/recommendations", params={"n": 3}).json()
    assert unknown["fallback"] and "user 99 is not in the served recommendations" in unknown["fallback"]["reason"]
    assert [r["movie_id"] for r in unknown["items"]] == [2, 1, 4]

    like = client.get("/api/v1/movies/1/similar", params={"n": 3}).json()
    assert like["movie"] == {"movie_id": 1, "title": "Toy Story (1995)", "year": 1995, "genres": ["Animation", "Comedy"]}
    assert [(r["movie_id"], round(r["similarity"], 6)) for r in like["items"]] == [(5, 0.9), (4, 0.8), (3, 0.7)]
    missing = client.get("/api/v1/movies/42/similar")
    assert missing.status_code == 404 and "movie 42 has no similar_movies" in missing.json()["detail"]

    found = client.get("/api/v1/movies", params={"q": "  JUM"}).json()
    assert [m["movie_id"] for m in found["items"]] == [2]
    assert [m["title"] for m in client.get("/api/v1/movies", params={"q": "(1995)", "limit": 2}).json()["items"]] == [
        "Casino (1995)", "Heat (1995)"]

    runs = client.get("/api/v1/runs").json()["items"]
    assert [(r["ds"], r["published"], r["tuning"]) for r in runs] == [(NEW, True, "reuse"), (OLD, True, "tune")]
    assert runs[0]["metrics"]["ease_ials"]["ndcg_at_10"] == 0.32 and runs[0]["backtest"]["status"] == "scored"
    assert runs[0]["links"]["report"].endswith(f"/movielens/api/v1/runs/{NEW}/report")
    report = client.get(runs[0]["links"]["report"].split("/movielens", 1)[1])
    assert report.status_code == 200 and f"<h1>Run {NEW}</h1>" in report.text
    assert report.headers["content-type"].startswith("text/html")
    docs = client.get(runs[1]["links"]["data_docs"].split("/movielens", 1)[1])
    assert docs.status_code == 200 and f"Data Docs {OLD}" in docs.text
    css = client.get(f"/api/v1/runs/{OLD}/data-docs/static/styles/data_docs.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get(f"/api/v1/runs/{OLD}").json()["files_rejected"] == 1
