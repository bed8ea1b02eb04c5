"""Answers from the latest outputs: one user's recommendations, one movie's similar movies, from the lake's
gold tables (Parquet filters, no Spark) or the serving database (see :mod:`movielens.serving`)."""

from __future__ import annotations

from typing import Any

from movielens import config
from movielens.lake import Lake
from movielens.serving import RECOMMENDATIONS, SIMILAR_MOVIES, Product, ServingError, connect
from spark_jobs.common import layout

LATEST = "9999-12-31"  # "no date limit" for the lake's partition listing


def _latest_date(lake: Lake, product: Product, ds: str | None) -> str:
    dates = lake.table_dates(layout.GOLD, product.gold_table, ds or LATEST)
    if not dates:
        limit = f" with ds <= {ds}" if ds else ""
        raise ServingError(f"no {layout.GOLD}/{product.gold_table} partition{limit} in {lake.url}: run movielens_daily first")
    return dates[-1]


def _from_lake(product: Product, owner_id: int, n: int, ds: str | None) -> tuple[str, str, list[dict]]:
    lake = Lake.from_settings(config.load())
    model_ds = _latest_date(lake, product, ds)
    owner = product.columns[0][0]
    table = lake.read_table(layout.GOLD, product.gold_table, model_ds, filters=[(owner, "=", owner_id), ("rank", "<=", n)])
    renames = {lake_col: db_col for lake_col, db_col, _ in product.columns}
    rows = sorted(({renames[k]: v for k, v in r.items() if k in renames} for r in table.to_pylist()), key=lambda r: r["rank"])
    return model_ds, lake.uri(lake.table(layout.GOLD, product.gold_table, model_ds)), rows


def _from_db(product: Product, owner_id: int, n: int, ds: str | None, conn_id: str | None) -> tuple[str, str, list[dict]]:
    conn_id = conn_id or config.load().serving_conn_id
    if not conn_id:
        raise ServingError("no serving database: set MOVIELENS_SERVING_CONN_ID (or answer from the lake)")
    conn = connect(conn_id)
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
        conn.close()
    model_ds = max((str(r.pop("ds")) for r in rows), default="")
    return model_ds, f"postgres connection {conn_id}, table {product.db_table}", rows


def _lookup(product: Product, owner_id: int, n: int, source: str, ds: str | None, conn_id: str | None) -> dict[str, Any]:
    if source == "lake":
        model_ds, where, rows = _from_lake(product, owner_id, n, ds)
    elif source == "db":
        model_ds, where, rows = _from_db(product, owner_id, n, ds, conn_id)
    else:
        raise ValueError(f"source must be 'lake' or 'db', got {source!r}")
    if not rows:
        what = "user" if product is RECOMMENDATIONS else "movie"
        raise ServingError(f"{what} {owner_id} has no {product.gold_table} in {where}" + (f" (ds <= {ds})" if ds else ""))
    return {"id": owner_id, "model_ds": model_ds, "source": where, "rows": rows}


def lookup_recommendations(user_id: int, n: int = 10, source: str = "lake", ds: str | None = None,
                           conn_id: str | None = None) -> dict[str, Any]:
    """The top ``n`` recommendations of one user, from the latest outputs (with ds <= ``ds`` if given)."""
    return _lookup(RECOMMENDATIONS, user_id, n, source, ds, conn_id)


def lookup_similar(movie_id: int, n: int = 10, source: str = "lake", ds: str | None = None,
                   conn_id: str | None = None) -> dict[str, Any]:
    """The ``n`` movies most similar to one movie, from the latest outputs (with ds <= ``ds`` if given)."""
    return _lookup(SIMILAR_MOVIES, movie_id, n, source, ds, conn_id)


def recommendations_text(result: dict[str, Any]) -> str:
    lines = [f"Top {len(result['rows'])} recommendations for user {result['id']} (models of ds={result['model_ds']}, "
             f"from {result['source']}):"]
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
