"""Drift and volume of the ratings that landed on a date, against the dates before it.

Per date D (bronze ``ds=D`` against the ``window`` latest earlier bronze partitions of ratings, the
trailing window): the ratings landed, their ratio to the trailing median, the users and movies new on D
(not in silver of the latest date before D), and the population stability index (PSI) of the rating
values against the trailing window: sum over the half-star values of (p - q) ln(p / q), shares floored
at 1e-4. PSI under 0.1 is usually read as no shift, above 0.25 as a large one.

Alerts (a data incident email; valid files are never rejected for them): no ratings landed on D; the
count ``volume_ratio`` times the trailing median or more, or that many times less (with at least
``MIN_HISTORY`` trailing dates, so the first daily drops after a large first load do not alarm); PSI
above ``psi_alert``. Output: ``gold/drift/ds=D`` (metric, value) and the same as a dict with the alerts.
"""

from __future__ import annotations

import math
import statistics

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.common import layout, session

TABLE = "drift"
SCHEMA = "metric string, value double"
MIN_HISTORY = 3  # trailing dates needed before the volume is judged against their median
RATING_VALUES = tuple(v / 2 for v in range(1, 11))  # 0.5 .. 5.0
FLOOR = 1e-4


def psi(current: dict[float, int], reference: dict[float, int]) -> float | None:
    """Population stability index of two histograms over the rating values (None if either is empty)."""
    n_cur, n_ref = sum(current.values()), sum(reference.values())
    if not n_cur or not n_ref:
        return None
    total = 0.0
    for value in sorted(set(RATING_VALUES) | set(current) | set(reference)):
        p = max(current.get(value, 0) / n_cur, FLOOR)
        q = max(reference.get(value, 0) / n_ref, FLOOR)
        total += (p - q) * math.log(p / q)
    return total


def volume_alerts(rows: int, trailing: list[int], ratio: float) -> list[str]:
    """What is unusual about ``rows`` ratings landed, given the trailing dates' counts."""
    if rows == 0:
        return ["no ratings landed"]
    if len(trailing) < MIN_HISTORY:
        return []
    median = statistics.median(trailing)
    if median and rows >= ratio * median:
        return [f"{rows:,} ratings landed, {rows / median:.1f} times the trailing median of {median:,.0f}"]
    if rows * ratio <= median:
        return [f"{rows:,} ratings landed, 1/{median / rows:.1f} of the trailing median of {median:,.0f}"]
    return []


def _new(landed: DataFrame, earlier_url: str | None, spark: SparkSession, column: str) -> int:
    ids = landed.select(column).distinct()
    if earlier_url:
        ids = ids.join(spark.read.parquet(earlier_url).select(column), column, "left_anti")
    return ids.count()


def run(spark: SparkSession, lake_root: str, ds: str, window: int, volume_ratio: float, psi_alert: float) -> dict:
    ratings_root = layout.table_root(lake_root, layout.BRONZE, "ratings")
    ratings_dates = [d for d in session.table_dates(spark, lake_root, layout.BRONZE, "ratings") if d <= ds]
    trailing_dates = sorted(d for d in ratings_dates if d < ds)[-window:]
    earlier_silver = max((d for d in session.table_dates(spark, lake_root, layout.SILVER, "ratings") if d < ds), default=None)

    def silver(table: str) -> str | None:
        return layout.table_dir(lake_root, layout.SILVER, table, earlier_silver) if earlier_silver else None

    # One pass over D's and the trailing dates' bronze ratings: counts by date and rating value.
    read = trailing_dates + ([ds] if ds in ratings_dates else [])
    by_date: dict[str, dict[float, int]] = {d: {} for d in read}
    if read:
        frame = spark.read.option("basePath", ratings_root).parquet(*[layout.join(ratings_root, layout.partition(d)) for d in read])
        for row in frame.groupBy("ds", "rating").agg(F.count("*").alias("n")).collect():
            by_date[row["ds"]][float(row["rating"])] = int(row["n"])
    landed = by_date.get(ds, {})
    trailing = [sum(by_date[d].values()) for d in trailing_dates]
    reference: dict[float, int] = {}
    for d in trailing_dates:
        for value, n in by_date[d].items():
            reference[value] = reference.get(value, 0) + n
    rows = sum(landed.values())
    median = statistics.median(trailing) if trailing else None
    movies_dates = session.table_dates(spark, lake_root, layout.BRONZE, "movies")

    def bronze(table: str) -> DataFrame:
        return spark.read.parquet(layout.table_dir(lake_root, layout.BRONZE, table, ds))

    metrics: dict[str, float | None] = {
        "ratings_landed": rows,
        "trailing_dates": len(trailing),
        "trailing_median": median,
        "volume_ratio": rows / median if median else None,
        "new_users": _new(bronze("ratings"), silver("ratings"), spark, "userId") if rows else 0,
        "new_movies": _new(bronze("movies"), silver("movies"), spark, "movieId") if ds in movies_dates else 0,
        "rating_psi": psi(landed, reference) if rows and reference else None,
    }
    alerts = volume_alerts(rows, trailing, volume_ratio)
    if metrics["rating_psi"] is not None and metrics["rating_psi"] > psi_alert:
        alerts.append(f"the rating distribution shifted: PSI {metrics['rating_psi']:.3f} against the trailing "
                      f"{len(trailing)} date(s) (alert above {psi_alert:g})")
    rows_out = [(name, float(value)) for name, value in metrics.items() if value is not None]
    written = session.write_table(spark, spark.createDataFrame(rows_out, SCHEMA), lake_root, layout.GOLD, TABLE, ds)
    return {"ds": ds, "trailing_window": trailing_dates, "metrics": metrics, "alerts": alerts, "rows": written}
