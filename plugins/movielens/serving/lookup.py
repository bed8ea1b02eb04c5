"""Answers from the latest outputs: one user's recommendations, one movie's similar movies, from the lake's
gold tables (Parquet filters, no Spark) or the serving database (see :mod:`movielens.serving`)."""

from __future__ import annotations

from typing import Any

from movielens import config
from movielens.lake import Lake
from movielens.serving import FALLBACK_MOVIES, RECOMMENDATIONS, SIMILAR_MOVIES, Product, ServingError, connect
from spark_jobs.common import layout

LATEST = "9999-12-31"  # "no date limit" for the lake's partition listing


def _served_date(lake: Lake, product: Product, ds: str | None) -> str:
    """The served date of ``product`` (with ds <= ``ds`` if given): the publish gate's records decide."""
    served = lake.served_date(product.gold_table, ds or LATEST)
    if served is None:
        limit = f" with ds <= {ds}" if ds else ""
        raise ServingError(f"no served {layout.GOLD}/{product.gold_table} partition{limit} in {lake.url}: "
                           "run movielens_daily first")
    return served


def _from_lake(product: Product, owner_id: int | str, n: int, ds: str | None) -> tuple[str, str, list[dict]]:
    lake = Lake.from_settings(config.load())
    model_ds = _served_date(lake, product, ds)
    owner = product.columns[0][0]
    table = lake.read_table(layout.GOLD, product.gold_table, model_ds, filters=[(owner, "=", owner_id), ("rank", "<=", n)])
    renames = {lake_col: db_col for lake_col, db_col, _ in product.columns}
    rows = sorted(({renames[k]: v for k, v in r.items() if k in renames} for r in table.to_pylist()), key=lambda r: r["rank"])
    return model_ds, lake.uri(lake.table(layout.GOLD, product.gold_table, model_ds)), rows


def _from_db(product: Product, owner_id: int | str, n: int, ds: str | None, conn_id: str | None, conn=None
             ) -> tuple[str, str, list[dict]]:
    """Rows of ``product`` from the serving database: on ``conn`` if given (left open, as a pool's), else on a
    connection of ``conn_id`` opened and closed here."""
    conn_id = conn_id or config.load().serving_conn_id
    if not conn_id:
        raise ServingError("no serving database: set MOVIELENS_SERVING_CONN_ID (or answer from the lake)")
    own = conn is None
    conn = connect(conn_id) if own else conn
    try:
        with conn.cursor() as cursor:
            date_filter = "AND ds <= %(ds)s" if ds else ""
            cursor.execute(
                f"SELECT {', '.join(product.db_columns)}, ds FROM {product.db_table} "
                f"WHERE {product.key[0]} = %(id)s AND rank <= %(n)s {date_filter} ORDER BY rank",
                {"id": owner_id, "n": n, "ds": ds},
            )
            names = [c.name for c in cursor.description]
            rows = [dict(zip(names, values)) for values in cursor.fetchall()]
    except Exception as err:
        if type(err).__name__ == "UndefinedTable":
            raise ServingError(f"{product.db_table} does not exist in {conn_id}: nothing was published yet") from None
        raise
    finally:
        if own:
            conn.close()
    model_ds = max((str(r.pop("ds")) for r in rows), default="")
    return model_ds, f"postgres connection {conn_id}, table {product.db_table}", rows


def _lookup(product: Product, owner_id: int | str, n: int, source: str, ds: str | None, conn_id: str | None,
            conn=None) -> tuple[str, str, list[dict]]:
    if source == "lake":
        return _from_lake(product, owner_id, n, ds)
    if source == "db":
        return _from_db(product, owner_id, n, ds, conn_id, conn)
    raise ValueError(f"source must be 'lake' or 'db', got {source!r}")


def fallback_list(candidates: list[dict], rated: list[dict], n: int) -> list[dict]:
    """The cold-start list: the most-rated ``candidates`` (rows of ``fallback_movies``: rank, movie_id, title,
    genres, n_ratings) the user has not rated, each weighted by the share of the user's ``rated`` movies
    (movie_id, genres) in its genres when the user rated any; ties keep the popularity order."""
    seen = {r["movie_id"] for r in rated}
    share: dict[str, float] = {}
    for r in rated:
        for genre in _genres(r.get("genres")):
            share[genre] = share.get(genre, 0.0) + 1.0 / len(rated)

    def score(c: dict) -> float:
        weight = sum(share.get(g, 0.0) for g in _genres(c["genres"])) if rated else 1.0
        return c["n_ratings"] * weight

    ranked = sorted((c for c in candidates if c["movie_id"] not in seen), key=lambda c: (-score(c), c["rank"]))
    return [{"rank": i, "movie_id": c["movie_id"], "title": c["title"], "score": float(score(c))}
            for i, c in enumerate(ranked[:n], 1)]


def _genres(value) -> list[str]:
    if value is None:
        return []
    return [g for g in (value.split("|") if isinstance(value, str) else value) if g and g != layout.NO_GENRES]


def _rated_in_lake(user_id: int, ds: str | None) -> list[dict]:
    """The user's rated movies with their genres, from the latest silver ratings (with ds <= ``ds``)."""
    lake = Lake.from_settings(config.load())
    dates = lake.table_dates(layout.SILVER, "ratings", ds or LATEST)
    if not dates:
        return []
    table = lake.read_table(layout.SILVER, "ratings", dates[-1], filters=[("userId", "=", user_id)])
    return [{"movie_id": r["movieId"], "genres": r.get("genre_list")} for r in table.to_pylist()]


def lookup_recommendations(user_id: int, n: int = 10, source: str = "lake", ds: str | None = None,
                           conn_id: str | None = None, conn=None) -> dict[str, Any]:
    """The top ``n`` recommendations of one user, from the served outputs (with ds <= ``ds`` if given).

    A user the served lists do not hold (new, or unknown to the model) gets the popularity fallback
    (:func:`fallback_list`; from the database, which holds no ratings, the plain popularity list), and the
    answer's ``fallback`` says so and why; ``fallback`` is None for the model's own list."""
    model_ds, where, rows = _lookup(RECOMMENDATIONS, user_id, n, source, ds, conn_id, conn)
    if rows:
        return {"id": user_id, "model_ds": model_ds, "source": where, "rows": rows, "fallback": None}
    fallback_ds, fallback_where, candidates = _lookup(FALLBACK_MOVIES, "all", 10**6, source, ds, conn_id, conn)
    if not candidates:
        raise ServingError(f"user {user_id} has no recommendations in {where} and no fallback list in {fallback_where}")
    rated = _rated_in_lake(user_id, ds) if source == "lake" else []
    basis = (f"the most-rated movies, weighted by the genres of the {len(rated)} movie(s) the user rated"
             if rated else "the most-rated movies")
    return {"id": user_id, "model_ds": fallback_ds, "source": fallback_where, "rows": fallback_list(candidates, rated, n),
            "fallback": {"reason": f"user {user_id} is not in the served recommendations ({where})", "basis": basis}}


def lookup_similar(movie_id: int, n: int = 10, source: str = "lake", ds: str | None = None,
                   conn_id: str | None = None, conn=None) -> dict[str, Any]:
    """The ``n`` movies most similar to one movie, from the served outputs (with ds <= ``ds`` if given)."""
    model_ds, where, rows = _lookup(SIMILAR_MOVIES, movie_id, n, source, ds, conn_id, conn)
    if not rows:
        raise ServingError(f"movie {movie_id} has no {SIMILAR_MOVIES.gold_table} in {where}" + (f" (ds <= {ds})" if ds else ""))
    return {"id": movie_id, "model_ds": model_ds, "source": where, "rows": rows}


def recommendations_text(result: dict[str, Any]) -> str:
    fallback = result.get("fallback")
    what = f"fallback: {fallback['basis']}, because {fallback['reason']}; " if fallback else ""
    lines = [f"Top {len(result['rows'])} recommendations for user {result['id']} ({what}models of "
             f"ds={result['model_ds']}, from {result['source']}):"]
    lines += [f"{r['rank']:>3}. {r['title']} (movie {r['movie_id']}, score {r['score']:.3f})" for r in result["rows"]]
    return "\n".join(lines)


def similar_text(result: dict[str, Any]) -> str:
    title = result["rows"][0]["title"]
    lines = [f"Movies like {title} (movie {result['id']}) (models of ds={result['model_ds']}, from {result['source']}):"]
    lines += [f"{r['rank']:>3}. {r['similar_title']} (movie {r['similar_movie_id']}, cosine {r['similarity']:.3f})"
              for r in result["rows"]]
    return "\n".join(lines)


def write_answer(ds: str, result: dict[str, Any]) -> str:
    """Save a similar-movies answer under ``reports/ds=D/similar_movies/movie_<id>.json`` (a rerun overwrites
    it); returns its URL."""
    lake = Lake.from_settings(config.load())
    target = lake.zone(layout.REPORTS, ds) / SIMILAR_MOVIES.gold_table / f"movie_{result['id']}.json"
    lake.write_json(target, result)
    return lake.uri(target)
