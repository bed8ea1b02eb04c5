"""SparkSession and small file I/O through Hadoop's FileSystem (so file://, s3a://, abfss:// all work)."""

from __future__ import annotations

import json
import os

from pyspark.sql import SparkSession


def get_session(app_name: str) -> SparkSession:
    """The job's session. Master and resources come from spark-submit; defaults suit local[*]."""
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        # Small data by default; AQE coalesces partitions when the data is larger.
        .config("spark.sql.shuffle.partitions", os.environ.get("MOVIELENS_SHUFFLE_PARTITIONS", "8"))
        .config("spark.sql.adaptive.enabled", "true")
        # The top-N model collects per-partition item Gram matrices (150 MB each at 6,000 movies).
        .config("spark.driver.maxResultSize", os.environ.get("MOVIELENS_SPARK_MAX_RESULT_SIZE", "4g"))
        # Arrow for toPandas/createDataFrame: factor matrices and per-user rows cross to numpy quickly.
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        # Keep ds as the text YYYY-MM-DD it is in the path, never a guessed date type.
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    )
    return builder.getOrCreate()


def write_table(spark: SparkSession, df, lake_root: str, zone: str, table: str, ds: str) -> int:
    """Write one ds partition of a table (replacing it) and return its row count, counted as the rows are
    written (an ``Observation`` of the write itself: no second job reading the partition back)."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from spark_jobs.common import layout

    target = layout.table_dir(lake_root, zone, table, ds)
    written = Observation()
    df.observe(written, F.count(F.lit(1)).alias("rows")).write.mode("overwrite").parquet(target)
    return int(written.get["rows"])


def write_tables(spark: SparkSession, tables: dict, lake_root: str, zone: str, ds: str) -> dict[str, int]:
    return {table: write_table(spark, df, lake_root, zone, table, ds) for table, df in tables.items()}


def _fs_and_path(spark: SparkSession, url: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(url)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, path


def exists(spark: SparkSession, url: str) -> bool:
    fs, path = _fs_and_path(spark, url)
    return bool(fs.exists(path))


def delete(spark: SparkSession, url: str) -> None:
    """Remove a file or folder if present (used to clear a partition that has no data any more)."""
    fs, path = _fs_and_path(spark, url)
    if fs.exists(path):
        fs.delete(path, True)


def list_names(spark: SparkSession, url: str) -> list[str]:
    fs, path = _fs_and_path(spark, url)
    if not fs.exists(path):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(path))


def read_text(spark: SparkSession, url: str) -> str:
    fs, path = _fs_and_path(spark, url)
    stream = fs.open(path)
    try:
        return spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def read_json(spark: SparkSession, url: str):
    return json.loads(read_text(spark, url))


def table_dates(spark: SparkSession, lake_root: str, zone: str, table: str) -> list[str]:
    """The dates of a table's whole ``ds=`` partitions (with ``layout.COMPLETE_MARKER``), sorted. A partition
    without it (its job was stopped mid-write) is left out, as if that date's job had not run, and said so."""
    from spark_jobs.common import layout

    root = layout.table_root(lake_root, zone, table)
    dates = [n[3:] for n in list_names(spark, root) if n.startswith("ds=")]
    whole = [d for d in dates if exists(spark, layout.join(root, layout.partition(d), layout.COMPLETE_MARKER))]
    for d in sorted(set(dates) - set(whole)):
        print(f"WARNING: {layout.join(root, layout.partition(d))} has no {layout.COMPLETE_MARKER} (its job was stopped "
              f"mid-write): left out until ds={d} runs again")
    return whole


def write_text(spark: SparkSession, url: str, text: str) -> None:
    fs, path = _fs_and_path(spark, url)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def write_json(spark: SparkSession, url: str, obj) -> None:
    write_text(spark, url, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
