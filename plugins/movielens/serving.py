"""Serving: each run's recommendations and similar movies in PostgreSQL, and lookups from the lake or the DB.

``publish(ds)`` copies ``gold/recommendations`` and ``gold/similar_movies`` of one date into three tables
of the database behind the Airflow connection ``MOVIELENS_SERVING_CONN_ID``:

- ``movielens_recommendations``   (user_id, rank) -> movie, title, score, ds
- ``movielens_similar_movies``    (movie_id, rank) -> similar movie, titles, similarity, ds
- ``movielens_serving_runs``      ds -> row counts, source, published_at

Rows are upserted keyed by (user_id, rank) and (movie_id, rank) with the run date, and a row only ever
moves forward in time: publishing an older date (a backfill) never replaces a newer date's row, and
publishing the same date twice changes nothing. Ranks a user or movie no longer has on the newer date
are deleted, so each key holds exactly the latest list. One transaction per publish.

``lookup_recommendations`` / ``lookup_similar`` answer from the latest outputs, from the lake (Parquet
filters, no Spark) or from the database; ``python -m movielens.cli recommend|similar`` prints them.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

from movielens import config
from movielens.lake import Lake
from spark_jobs.common import layout

log = logging.getLogger(__name__)

LATEST = "9999-12-31"  # "no date limit" for the lake's partition listing
COPY_BATCH_ROWS = 200_000


@dataclass(frozen=True)
class Product:
    """One gold table and its serving table: lake columns -> database columns, the first two are the key."""

    gold_table: str
    db_table: str
    columns: tuple[tuple[str, str, str], ...]  # (lake column, db column, db type)

    @property
    def db_columns(self) -> list[str]:
        return [db for _, db, _ in self.columns]

    @property
    def key(self) -> list[str]:
        return self.db_columns[:2]


RECOMMENDATIONS = Product(
    "recommendations",
    "movielens_recommendations",
    (("userId", "user_id", "integer"), ("rank", "rank", "integer"), ("movieId", "movie_id", "integer NOT NULL"),
     ("title", "title", "text"), ("score", "score", "real")),
)
SIMILAR_MOVIES = Product(
    "similar_movies",
    "movielens_similar_movies",
    (("movieId", "movie_id", "integer"), ("rank", "rank", "integer"), ("title", "title", "text"),
     ("similar_movieId", "similar_movie_id", "integer NOT NULL"), ("similar_title", "similar_title", "text"),
     ("similarity", "similarity", "real")),
)
PRODUCTS = (RECOMMENDATIONS, SIMILAR_MOVIES)
RUNS_TABLE = "movielens_serving_runs"


class ServingError(RuntimeError):
    """Nothing to publish or answer from (a missing partition, an unknown user or movie)."""


def create_tables_sql() -> str:
    statements = []
    for product in PRODUCTS:
        columns = ", ".join(f"{db} {sql_type}" for _, db, sql_type in product.columns)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {product.db_table} ({columns}, ds date NOT NULL, "
            f"published_at timestamptz NOT NULL, PRIMARY KEY ({', '.join(product.key)}))"
        )
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (ds date PRIMARY KEY, recommendations bigint NOT NULL, "
        "similar_movies bigint NOT NULL, source text NOT NULL, published_at timestamptz NOT NULL)"
    )
    return ";\n".join(statements)


def _connect(conn_id: str):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=conn_id).get_conn()


def _gold_folder(lake: Lake, product: Product, ds: str):
    folder = lake.table(layout.GOLD, product.gold_table, ds)
    if not folder.exists():
        raise ServingError(f"nothing to publish: {lake.uri(folder)} does not exist (did the Spark job run for {ds}?)")
    return folder


def _copy_into(cursor, table: str, product: Product, folder) -> None:
    """Stream a gold table into ``table`` with COPY, in record batches (bounded memory at any size)."""
    import pyarrow.csv as pacsv
    import pyarrow.dataset as pads

    dataset = pads.dataset(folder.path, filesystem=folder.fs, format="parquet")
    options = pacsv.WriteOptions(include_header=False)
    for batch in dataset.to_batches(columns=[lake for lake, _, _ in product.columns], batch_size=COPY_BATCH_ROWS):
        buffer = io.BytesIO()
        pacsv.write_csv(batch, buffer, options)  # Arrow's CSV writer: no pandas round trip
        # psycopg 3 (what the postgres provider's hook uses when installed): COPY through cursor.copy().
        with cursor.copy(f"COPY {table} ({', '.join(product.db_columns)}) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(buffer.getvalue())


def _upsert(cursor, product: Product, ds: str) -> int:
    """Staged rows -> the serving table; returns how many rows the staging table held."""
    staging = f"staging_{product.db_table}"
    columns = ", ".join(product.db_columns)
    key = ", ".join(product.key)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in product.db_columns[2:] + ["ds", "published_at"])
    owner = product.key[0]
    cursor.execute(
        f"INSERT INTO {product.db_table} AS t ({columns}, ds, published_at) "
        f"SELECT {columns}, %(ds)s, now() FROM {staging} s "
        # An owner (user or movie) already published for a newer date keeps that date's whole list.
        f"WHERE NOT EXISTS (SELECT 1 FROM {product.db_table} n WHERE n.{owner} = s.{owner} AND n.ds > %(ds)s) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates} "
        # An identical row is left alone, so a rerun is a no-op.
        f"WHERE t.ds < EXCLUDED.ds OR ({', '.join(f't.{c}' for c in product.db_columns[2:])}) IS DISTINCT FROM "
        f"({', '.join(f'EXCLUDED.{c}' for c in product.db_columns[2:])})",
        {"ds": ds},
    )
    # Ranks an owner had on this or an older date but not in this list (a shorter list than before).
    cursor.execute(
        f"DELETE FROM {product.db_table} t WHERE t.ds <= %(ds)s "
        f"AND EXISTS (SELECT 1 FROM {staging} s WHERE s.{owner} = t.{owner}) "
        f"AND NOT EXISTS (SELECT 1 FROM {staging} s WHERE s.{owner} = t.{owner} AND s.rank = t.rank)",
        {"ds": ds},
    )
    cursor.execute(f"SELECT count(*) FROM {staging}")
    return cursor.fetchone()[0]


def publish_or_skip(ds: str) -> dict[str, Any]:
    """:func:`publish` to ``MOVIELENS_SERVING_CONN_ID``; the task is skipped, saying so, when it is not set."""
    if not config.load().serving_conn_id:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException("MOVIELENS_SERVING_CONN_ID is not set: the outputs stay in the lake only")
    return publish(ds)


def publish(ds: str, conn_id: str | None = None) -> dict[str, Any]:
    """Publish one date's recommendations and similar movies; idempotent, safe for backfills."""
    layout.check_ds(ds)
    settings = config.load()
    conn_id = conn_id or settings.serving_conn_id
    if not conn_id:
        raise ServingError("no serving database: set MOVIELENS_SERVING_CONN_ID to a postgres connection id")
    lake = Lake.from_settings(settings)
    folders = {product: _gold_folder(lake, product, ds) for product in PRODUCTS}
    conn = _connect(conn_id)
    try:
        with conn, conn.cursor() as cursor:  # one transaction: readers see the old lists or the new ones
            cursor.execute(create_tables_sql())
            counts = {}
            for product, folder in folders.items():
                staging = f"staging_{product.db_table}"
                cursor.execute(f"CREATE TEMP TABLE {staging} (LIKE {product.db_table} INCLUDING DEFAULTS) ON COMMIT DROP")
                cursor.execute(f"ALTER TABLE {staging} ALTER COLUMN ds DROP NOT NULL, ALTER COLUMN published_at DROP NOT NULL")
                _copy_into(cursor, staging, product, folder)
                cursor.execute(f"ANALYZE {staging}")  # row estimates for the upsert's joins
                counts[product.gold_table] = _upsert(cursor, product, ds)
            cursor.execute(
                f"INSERT INTO {RUNS_TABLE} (ds, recommendations, similar_movies, source, published_at) "
                "VALUES (%(ds)s, %(recommendations)s, %(similar_movies)s, %(source)s, now()) "
                "ON CONFLICT (ds) DO UPDATE SET recommendations = EXCLUDED.recommendations, "
                "similar_movies = EXCLUDED.similar_movies, source = EXCLUDED.source, published_at = EXCLUDED.published_at",
                {"ds": ds, "source": lake.url, **counts},
            )
    finally:
        conn.close()
    log.info("published %s to %s: %s", ds, conn_id, counts)
    return {"ds": ds, "conn_id": conn_id, "tables": {p.gold_table: p.db_table for p in PRODUCTS}, "rows": counts}


# --- lookups ----------------------------------------------------------------------------------------
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
    conn = _connect(conn_id)
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
