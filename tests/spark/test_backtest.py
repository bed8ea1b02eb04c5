"""The next-day backtest against a hand computation on a small lake."""

from __future__ import annotations

import json
import math

import pytest
from pyspark.testing import assertDataFrameEqual

from spark_jobs import backtest
from spark_jobs.common import layout

pytestmark = pytest.mark.spark

RATINGS = "userId int, movieId int, rating double, timestamp long"
LISTS = "userId int, rank int, movieId int, title string, score float"
S, D = "2026-11-01", "2026-11-02"


def write(spark, root, zone, table, ds, rows, schema):
    spark.createDataFrame(rows, schema).write.mode("overwrite").parquet(layout.table_dir(root, zone, table, ds))


@pytest.fixture
def lake(spark, tmp_path):
    """Served date S: movie 10 rated 3 times, 11 twice, 12 once; lists for users 1 and 2. On D: user 1 rates
    12 (new) and 10 again, user 2 rates 13, user 4 (unknown on S) rates 11 and 10."""
    root = (tmp_path / "lake").as_uri()
    history = [(1, 10, 4.0, 1), (2, 10, 3.0, 1), (2, 11, 4.0, 1), (3, 10, 5.0, 1), (3, 11, 2.0, 1), (3, 12, 4.0, 1)]
    write(spark, root, layout.SILVER, "ratings", S, history, RATINGS)
    write(spark, root, layout.GOLD, "recommendations", S,
          [(1, 1, 12, "c", 0.9), (1, 2, 11, "b", 0.8), (2, 1, 12, "c", 0.7), (2, 2, 13, "d", 0.6), (2, 3, 10, "a", 0.1)],
          LISTS)
    write(spark, root, layout.BRONZE, "ratings", D, [(1, 12, 5.0, 2), (1, 10, 2.0, 2), (2, 13, 4.0, 2), (4, 11, 4.0, 2),
                                                     (4, 10, 3.0, 2)], RATINGS)
    return root


def test_served_lists_and_popularity_against_the_next_days_ratings(spark, lake):
    result = backtest.run(spark, lake, D, k=2)
    assert (result["status"], result["served_ds"], result["new_pairs"]) == ("scored", S, 4)  # 1 re-rating dropped
    gain2 = 1 / math.log2(3)
    # Served: user 1 [12, 11] hits 12 at 1; user 2 [12, 13] hits 13 at 2; user 4 gets popularity [10, 11]: 2 hits.
    served = result["lists"][backtest.SERVED]
    assert served["precision_at_2"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert served["recall_at_2"] == pytest.approx(1.0)
    assert served["ndcg_at_2"] == pytest.approx((1 + gain2 + 1) / 3)
    assert served["hit_rate_at_2"] == pytest.approx(1.0)
    assert (served["evaluated_users"], served["users_with_new_ratings"], served["fallback_users"]) == (3, 3, 1)
    assert result["fallback_list"] == f"popularity of {S} (no gold/fallback_movies for it)"
    # Popularity of S without what each had seen: user 1 [11, 12], user 2 [12], user 4 [10, 11].
    popular = result["lists"][backtest.POPULARITY]
    assert popular["precision_at_2"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert popular["recall_at_2"] == pytest.approx((1 + 0 + 1) / 3)
    assert popular["ndcg_at_2"] == pytest.approx((gain2 + 0 + 1) / 3)
    assert popular["hit_rate_at_2"] == pytest.approx(2 / 3)
    # Over the users the served lists hold (1 and 2): the model's lists against popularity's.
    known, popular_known = result["lists"][backtest.SERVED_KNOWN], result["lists"][backtest.POPULARITY_KNOWN]
    assert (known["precision_at_2"], known["ndcg_at_2"]) == pytest.approx((0.5, (1 + gain2) / 2))
    assert (popular_known["precision_at_2"], popular_known["ndcg_at_2"]) == pytest.approx((0.25, gain2 / 2))
    assert known["evaluated_users"] == popular_known["evaluated_users"] == 2
    table = spark.read.parquet(layout.table_dir(lake, layout.GOLD, backtest.TABLE, D))
    assert result["rows"] == table.count()
    assertDataFrameEqual(table.where("metric = 'ndcg_at_2'").select("served_ds", "list"),
                         spark.createDataFrame([(S, "served"), (S, "popularity"), (S, "served_known"),
                                                (S, "popularity_known")], "served_ds string, list string"))


def test_a_user_the_served_lists_do_not_hold_gets_the_served_dates_cold_start_list(spark, lake):
    """With S's gold/fallback_movies, the unknown user 4 gets that list ([11, 12], not popularity's [10, 11])."""
    write(spark, lake, layout.GOLD, "fallback_movies", S,
          [("all", 1, 11, "b", "Drama", 2), ("all", 2, 12, "c", "Drama", 1), ("all", 3, 10, "a", "Drama", 0)],
          "segment string, rank int, movieId int, title string, genres string, n_ratings int")
    result = backtest.run(spark, lake, D, k=2)
    assert result["fallback_list"] == f"gold/fallback_movies/ds={S}"
    gain2 = 1 / math.log2(3)
    # User 1 [12, 11] hits 12 at 1; user 2 [12, 13] hits 13 at 2; user 4 [11, 12] hits 11 at 1 of {10, 11}.
    served = result["lists"][backtest.SERVED]
    assert served["precision_at_2"] == pytest.approx(0.5)
    assert served["recall_at_2"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert served["ndcg_at_2"] == pytest.approx((1 + gain2 + 1 / (1 + gain2)) / 3)
    assert served["fallback_users"] == 1
    # The baseline and the known users' lists do not change.
    assert result["lists"][backtest.POPULARITY]["ndcg_at_2"] == pytest.approx((gain2 + 0 + 1) / 3)
    assert result["lists"][backtest.SERVED_KNOWN]["ndcg_at_2"] == pytest.approx((1 + gain2) / 2)


def test_a_held_back_date_is_not_the_served_one(spark, lake, tmp_path):
    later = "2026-11-01"
    record = tmp_path / "lake" / layout.REPORTS / layout.partition(later) / layout.PUBLICATION
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"published": False, "reasons": ["worse"]}))
    result = backtest.run(spark, lake, D, k=2)
    assert (result["served_ds"], result["rows"]) == (None, 0)
    assert result["status"] == f"no lists were served before {D}: nothing to score yet"


def test_nothing_to_score_says_why(spark, lake):
    assert backtest.run(spark, lake, S, k=2)["status"] == f"no lists were served before {S}: nothing to score yet"
    assert backtest.run(spark, lake, "2026-11-03", k=2)["status"] == "no ratings landed on 2026-11-03"


def test_served_date_follows_the_publication_records():
    held = {"2026-11-03"}
    dates = ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert layout.served_date(dates, lambda d: d not in held) == "2026-11-02"
    assert layout.served_date(dates, lambda d: True, before="2026-11-02") == "2026-11-01"
    assert layout.served_date(dates, lambda d: False) is None
    assert layout.is_published(None) and not layout.is_published({"published": False})


def test_drift_counts_the_days_ratings_against_the_trailing_dates(spark, tmp_path):
    from spark_jobs import drift

    root = (tmp_path / "lake").as_uri()
    days = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    # Three trailing dates of 10 ratings (half 4.0, half 3.0), then 60 ratings of 5.0 by two new users.
    for i, ds in enumerate(days[:3]):
        rows = [(u, 100 * i + u, 4.0 if u % 2 else 3.0, 1) for u in range(1, 11)]
        write(spark, root, layout.BRONZE, "ratings", ds, rows, RATINGS)
    write(spark, root, layout.SILVER, "ratings", days[2], [(u, 1, 4.0, 1) for u in range(1, 11)], RATINGS)
    write(spark, root, layout.BRONZE, "ratings", days[3], [(u, m, 5.0, 2) for u in (1, 11, 12) for m in range(20)],
          RATINGS)
    result = drift.run(spark, root, days[3], window=7, volume_ratio=5, psi_alert=0.25)
    m = result["metrics"]
    assert (m["ratings_landed"], m["trailing_dates"], m["trailing_median"], m["new_users"]) == (60, 3, 10, 2)
    assert m["rating_psi"] == pytest.approx(drift.psi({5.0: 60}, {4.0: 15, 3.0: 15}))
    assert result["alerts"][0] == "60 ratings landed, 6.0 times the trailing median of 10"
    assert result["alerts"][1].startswith("the rating distribution shifted: PSI ")
    assert result["trailing_window"] == days[:3] and result["rows"] == 7  # every metric with a value
