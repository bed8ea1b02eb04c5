"""Publish one date's recommendations and similar movies to the serving database (see :mod:`movielens.serving`)."""

from __future__ import annotations

import io
import logging
from typing import Any

from movielens import config, lineage
from movielens.lake import Lake
from movielens.serving import PRODUCTS, RUNS_TABLE, Product, ServingDatabaseError, ServingError, connect
from spark_jobs.common import layout

log = logging.getLogger(__name__)

COPY_BATCH_ROWS = 200_000


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
    """:func:`publish` to ``MOVIELENS_SERVING_CONN_ID``, unless the publish gate held the date back (the
    served lists stay as they are, saying so); the task is skipped, saying so, when no database is set."""
    settings = config.load()
    record = Lake.from_settings(settings).publication(ds)
    if not layout.is_published(record):
        reasons = "; ".join(record.get("reasons", []))
        log.warning("ds=%s held back by the publish gate, the lists of ds=%s stay served: %s", ds,
                    record.get("served_ds"), reasons)
        return {"ds": ds, "published": False, "held_back": True, "served_ds": record.get("served_ds"),
                "reason": f"held back by the publish gate: {reasons}"}
    if not settings.serving_conn_id:
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
    try:
        counts = _publish_in_one_transaction(conn_id, lake, folders, ds)
    except Exception as err:
        # psycopg's and psycopg2's connection errors (AdminShutdown and the like are OperationalErrors).
        if not {"OperationalError", "InterfaceError"} & {c.__name__ for c in type(err).__mro__}:
            raise
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ServingDatabaseError(
            f"publishing ds={ds} to {conn_id} failed, the database went away ({type(err).__name__}: {first_line}); "
            f"nothing of ds={ds} is served (one transaction: the lists served before stay); a retry publishes it "
            f"again") from err
    log.info("published %s to %s: %s", ds, conn_id, counts)
    lineage.record(inputs=[lake.uri(folder) for folder in folders.values()],
                   outputs=[f"{database_url(conn_id)}/public/{p.db_table}" for p in PRODUCTS])
    return {"ds": ds, "published": True, "conn_id": conn_id, "tables": {p.gold_table: p.db_table for p in PRODUCTS},
            "rows": counts}


def database_url(conn_id: str) -> str:
    """``postgres://host:port/database`` of a connection: where the serving tables are, with no credentials."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return f"postgres://{conn.host}:{conn.port or 5432}/{conn.schema or 'postgres'}"


def _publish_in_one_transaction(conn_id: str, lake: Lake, folders: dict, ds: str) -> dict[str, int]:
    conn = connect(conn_id)
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
    return counts
