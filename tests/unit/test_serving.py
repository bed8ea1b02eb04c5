"""Serving: gold tables -> a real PostgreSQL (upserts keyed by owner and rank, forward in time only), and the
lookups and CLI answering from the lake and from the database."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movielens.serving import ServingError, cli, lookup, publish
from spark_jobs.common import layout

TITLES = {1: "Toy Story (1995)", 2: "Jumanji (1995)", 3: "Heat (1995)", 4: "Casino (1995)", 5: "Fargo (1996)"}
GENRES = {1: "Animation|Comedy", 2: "Adventure", 3: "Crime|Thriller", 4: "Crime|Drama", 5: "Comedy|Crime"}
# The fallback's popularity order: movie -> ratings.
POPULARITY = {2: 50, 1: 40, 4: 30, 3: 20, 5: 10}


def write_gold(lake_root, ds: str, recommendations: dict[int, list[int]], similar: dict[int, list[int]]) -> None:
    """Gold tables as the Spark job writes them (same columns), for the given lists."""
    rec_rows = [
        {"userId": user, "rank": rank, "movieId": movie, "title": TITLES[movie], "score": 5.0 - rank / 10}
        for user, movies in recommendations.items() for rank, movie in enumerate(movies, 1)
    ]
    sim_rows = [
        {"movieId": movie, "title": TITLES[movie], "rank": rank, "similar_movieId": other,
         "similar_title": TITLES[other], "similarity": 1.0 - rank / 10}
        for movie, others in similar.items() for rank, other in enumerate(others, 1)
    ]
    fallback_rows = [
        {"segment": "all", "rank": rank, "movieId": movie, "title": TITLES[movie], "genres": GENRES[movie], "n_ratings": n}
        for rank, (movie, n) in enumerate(POPULARITY.items(), 1)
    ]
    for table, rows in (("recommendations", rec_rows), ("similar_movies", sim_rows), ("fallback_movies", fallback_rows)):
        folder = lake_root / layout.GOLD / table / f"ds={ds}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), folder / "part-00000.parquet")
        (folder / layout.COMPLETE_MARKER).touch()


@pytest.fixture
def serving_db(postgres_server, monkeypatch, lake_url):
    database = postgres_server.create_database()
    monkeypatch.setenv("AIRFLOW_CONN_MOVIELENS_SERVING", postgres_server.connection_json(database))
    monkeypatch.setenv("MOVIELENS_SERVING_CONN_ID", "movielens_serving")
    return lambda sql: postgres_server.execute(sql, database=database)


def lake_root(lake_url: str):
    from pathlib import Path
    from urllib.parse import urlparse

    return Path(urlparse(lake_url).path)


def served(query, table: str, owner: str, partner: str) -> dict[int, list[tuple]]:
    rows = query(f"SELECT {owner}, rank, {partner}, ds::text FROM {table} ORDER BY {owner}, rank")
    out: dict[int, list[tuple]] = {}
    for owner_id, rank, partner_id, ds in rows:
        out.setdefault(owner_id, []).append((rank, partner_id, ds))
    return out


def test_publish_upserts_forward_in_time_and_reruns_change_nothing(serving_db, lake_url):
    root = lake_root(lake_url)
    write_gold(root, "2026-11-01", {7: [1, 2, 3], 8: [4, 5, 1]}, {1: [2, 3], 2: [1, 3]})
    write_gold(root, "2026-11-02", {7: [5, 4], 9: [1, 2, 3]}, {1: [3, 2]})

    first = publish.publish("2026-11-01")
    assert first["rows"] == {"recommendations": 6, "similar_movies": 4, "fallback_movies": 5}
    before = serving_db("SELECT user_id, rank, movie_id, ds::text, published_at FROM movielens_recommendations ORDER BY 1, 2")
    publish.publish("2026-11-01")  # a rerun: not one row touched, not even its published_at
    assert serving_db("SELECT user_id, rank, movie_id, ds::text, published_at FROM movielens_recommendations ORDER BY 1, 2") == before

    publish.publish("2026-11-02")
    expected_recs = {
        7: [(1, 5, "2026-11-02"), (2, 4, "2026-11-02")],  # user 7's shorter new list: rank 3 is gone
        8: [(1, 4, "2026-11-01"), (2, 5, "2026-11-01"), (3, 1, "2026-11-01")],  # not in the new run: kept
        9: [(1, 1, "2026-11-02"), (2, 2, "2026-11-02"), (3, 3, "2026-11-02")],
    }
    assert served(serving_db, "movielens_recommendations", "user_id", "movie_id") == expected_recs
    assert served(serving_db, "movielens_similar_movies", "movie_id", "similar_movie_id") == {
        1: [(1, 3, "2026-11-02"), (2, 2, "2026-11-02")],
        2: [(1, 1, "2026-11-01"), (2, 3, "2026-11-01")],
    }

    # A backfill of the older date afterwards does not bring old lists back.
    publish.publish("2026-11-01")
    assert served(serving_db, "movielens_recommendations", "user_id", "movie_id") == expected_recs
    assert serving_db("SELECT ds::text, recommendations, similar_movies FROM movielens_serving_runs ORDER BY ds") == [
        ("2026-11-01", 6, 4), ("2026-11-02", 5, 2)
    ]


def test_postgresql_lost_mid_publish_serves_the_old_lists_and_a_retry_publishes_all(
        serving_db, lake_url, postgres_server, monkeypatch):
    """The server ends the publish's connection between two tables (a restart, a failover): the publish fails
    saying so, readers keep the previous date's lists whole, and the retry publishes the new date as a clean
    run would."""
    root = lake_root(lake_url)
    write_gold(root, "2026-11-01", {7: [1, 2, 3], 8: [4, 5, 1]}, {1: [2, 3], 2: [1, 3]})
    write_gold(root, "2026-11-02", {7: [5, 4], 9: [1, 2, 3]}, {1: [3, 2]})
    publish.publish("2026-11-01")
    tables = ("movielens_recommendations", "movielens_similar_movies", "movielens_fallback_movies", "movielens_serving_runs")
    before = {t: serving_db(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}

    copy_into, copies = publish._copy_into, []

    def copy_then_lose_the_connection(cursor, table, product, folder):
        copy_into(cursor, table, product, folder)
        copies.append(table)
        if len(copies) == 1:  # the server terminates the publishing backend, as a restart would
            [(killed,)] = postgres_server.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()",
                database=serving_db("SELECT current_database()")[0][0])
            assert killed == 1

    monkeypatch.setattr(publish, "_copy_into", copy_then_lose_the_connection)
    with pytest.raises(publish.ServingDatabaseError,
                       match=r"publishing ds=2026-11-02 to movielens_serving failed, the database went away .*"
                             r"nothing of ds=2026-11-02 is served .* a retry publishes it again"):
        publish.publish("2026-11-02")
    assert {t: serving_db(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables} == before

    monkeypatch.setattr(publish, "_copy_into", copy_into)
    assert publish.publish("2026-11-02")["rows"] == {"recommendations": 5, "similar_movies": 2, "fallback_movies": 5}
    assert served(serving_db, "movielens_recommendations", "user_id", "movie_id") == {
        7: [(1, 5, "2026-11-02"), (2, 4, "2026-11-02")],
        8: [(1, 4, "2026-11-01"), (2, 5, "2026-11-01"), (3, 1, "2026-11-01")],
        9: [(1, 1, "2026-11-02"), (2, 2, "2026-11-02"), (3, 3, "2026-11-02")],
    }


def test_postgresql_down_at_publish_time_fails_saying_so(lake_url, monkeypatch):
    from tests.servers import free_port

    write_gold(lake_root(lake_url), "2026-11-01", {7: [1, 2]}, {1: [2]})
    down = {"conn_type": "postgres", "host": "127.0.0.1", "port": free_port(), "login": "x", "password": "y", "schema": "z"}
    monkeypatch.setenv("AIRFLOW_CONN_MOVIELENS_SERVING", json.dumps(down))
    monkeypatch.setenv("MOVIELENS_SERVING_CONN_ID", "movielens_serving")
    with pytest.raises(publish.ServingDatabaseError, match=r"publishing ds=2026-11-01 to movielens_serving failed, "
                                                            r"the database went away \(OperationalError: .*127\.0\.0\.1"):
        publish.publish("2026-11-01")


def test_publish_without_gold_tables_fails_clearly_and_writes_nothing(serving_db, lake_url):
    with pytest.raises(ServingError, match=r"gold/recommendations/ds=2026-11-05 does not exist"):
        publish.publish("2026-11-05")
    assert serving_db("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'movielens_%'") == [(0,)]


def test_lookups_from_the_lake_and_the_database_agree(serving_db, lake_url):
    root = lake_root(lake_url)
    write_gold(root, "2026-11-01", {7: [1, 2, 3]}, {1: [2, 3, 4]})
    write_gold(root, "2026-11-02", {7: [3, 4, 5]}, {1: [5, 4, 3]})
    publish.publish("2026-11-01")
    publish.publish("2026-11-02")

    for source in ("lake", "db"):
        recs = lookup.lookup_recommendations(7, n=2, source=source)
        assert recs["model_ds"] == "2026-11-02", source
        assert [(r["rank"], r["movie_id"], r["title"]) for r in recs["rows"]] == [(1, 3, "Heat (1995)"), (2, 4, "Casino (1995)")]
        like = lookup.lookup_similar(1, n=3, source=source)
        assert [r["similar_title"] for r in like["rows"]] == ["Fargo (1996)", "Casino (1995)", "Heat (1995)"], source
    older = lookup.lookup_recommendations(7, n=3, source="lake", ds="2026-11-01")
    assert [r["movie_id"] for r in older["rows"]] == [1, 2, 3]
    assert recs["fallback"] is None
    with pytest.raises(ServingError, match="movie 42 has no similar_movies"):
        lookup.lookup_similar(42, source="lake")


def test_an_unknown_user_gets_the_popularity_fallback_marked_so(serving_db, lake_url):
    root = lake_root(lake_url)
    write_gold(root, "2026-11-01", {7: [1, 2, 3]}, {1: [2, 3, 4]})
    publish.publish("2026-11-01")
    for source in ("lake", "db"):
        answer = lookup.lookup_recommendations(99, n=3, source=source)
        assert [r["movie_id"] for r in answer["rows"]] == [2, 1, 4], source  # the most rated first
        assert answer["fallback"]["basis"] == "the most-rated movies"
        assert "user 99 is not in the served recommendations" in answer["fallback"]["reason"]
    # A user who rated crime movies (silver, after the served date) and no model list: crime movies first.
    silver = root / layout.SILVER / "ratings" / "ds=2026-11-02"
    silver.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"userId": 12, "movieId": 3, "rating": 4.0, "genre_list": ["Crime", "Thriller"]}]),
                   silver / "part-00000.parquet")
    (silver / layout.COMPLETE_MARKER).touch()
    answer = lookup.lookup_recommendations(12, n=3, source="lake")
    # Scores: Casino 30 x 1 (Crime), Fargo 10 x 1 (Crime); the others 0, in popularity order; Heat was rated.
    assert [(r["movie_id"], r["score"]) for r in answer["rows"]] == [(4, 30.0), (5, 10.0), (2, 0.0)]
    assert answer["fallback"]["basis"] == "the most-rated movies, weighted by the genres of the 1 movie(s) the user rated"
    assert "fallback: the most-rated movies, weighted" in lookup.recommendations_text(answer)


def test_a_date_the_gate_held_back_is_not_served(serving_db, lake_url):
    root = lake_root(lake_url)
    write_gold(root, "2026-11-01", {7: [1, 2, 3]}, {1: [2, 3, 4]})
    write_gold(root, "2026-11-02", {7: [3, 4, 5]}, {1: [5, 4, 3]})
    record = root / layout.REPORTS / "ds=2026-11-02" / layout.PUBLICATION
    record.parent.mkdir(parents=True)
    record.write_text('{"published": false, "served_ds": "2026-11-01", "reasons": ["ease_ials ndcg_at_10 worse"]}')
    assert publish.publish_or_skip("2026-11-01")["published"] is True
    held = publish.publish_or_skip("2026-11-02")
    assert (held["published"], held["served_ds"]) == (False, "2026-11-01") and "ndcg_at_10 worse" in held["reason"]
    for source in ("lake", "db"):
        recs = lookup.lookup_recommendations(7, n=3, source=source)
        assert (recs["model_ds"], [r["movie_id"] for r in recs["rows"]]) == ("2026-11-01", [1, 2, 3]), source
        assert lookup.lookup_similar(1, n=1, source=source)["model_ds"] == "2026-11-01"


def test_cli_answers_recommend_and_similar_with_titles(serving_db, lake_url, capsys):
    write_gold(lake_root(lake_url), "2026-11-01", {42: [2, 5]}, {1: [3, 5]})
    publish.publish("2026-11-01")

    assert cli.main(["recommend", "--user", "42", "--from", "db"]) == 0
    out = capsys.readouterr().out
    assert "recommendations for user 42" in out and "1. Jumanji (1995) (movie 2" in out and "2. Fargo (1996)" in out
    assert cli.main(["similar", "--movie", "1", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "Movies like Toy Story (1995)" in out and "1. Heat (1995)" in out and "Fargo" not in out
    assert cli.main(["recommend", "--user", "43"]) == 0
    assert "(fallback: the most-rated movies, because user 43 is not in the served recommendations" in capsys.readouterr().out
