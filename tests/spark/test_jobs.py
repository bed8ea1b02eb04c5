"""Spark transforms on small in-memory inputs, and the jobs' load steps on a temporary lake."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from spark_jobs import bronze, evaluation, silver, similar, train
from spark_jobs.common import layout
from spark_jobs.common.spec import JobSpec

pytestmark = pytest.mark.spark


def test_latest_rating_wins(spark):
    rows = [(1, 10, 3.0, 100, "2026-01-01"), (1, 10, 5.0, 50, "2026-01-02"), (2, 10, 4.0, 100, "2026-01-01")]
    df = spark.createDataFrame(rows, "userId int, movieId int, rating double, timestamp long, ds string")
    expected = spark.createDataFrame([(1, 10, 5.0, 50), (2, 10, 4.0, 100)], "userId int, movieId int, rating double, timestamp long")
    assertDataFrameEqual(silver.latest_ratings(df), expected)


def test_movie_features_parse_year_and_genres(spark):
    movies = spark.createDataFrame(
        [(1, "Toy Story (1995)", "Adventure|Animation"), (2, "Babylon 5", "(no genres listed)"), (3, "Film-Noir Thing (1950) ", "Film-Noir")],
        "movieId int, title string, genres string",
    )
    got = {r["movieId"]: r for r in silver.movie_features(movies).collect()}
    assert got[1]["year"] == 1995 and got[1]["genre_list"] == ["Adventure", "Animation"]
    assert got[1]["genre_Animation"] == 1 and got[1]["genre_Drama"] == 0
    assert got[2]["year"] is None and got[2]["genre_list"] == []
    assert got[3]["year"] == 1950 and got[3]["genre_Film_Noir"] == 1


def test_the_older_releases_genre_names_are_normalised(spark):
    """ml-100k/ml-1m/ml-10m names in a CSV another tool wrote: Children's is Children, unknown is no genre."""
    movies = spark.createDataFrame(
        [(1, "Toy Story (1995)", "Animation|Children's|Comedy"), (2, "Lost (1996)", "unknown"),
         (3, "Both (1997)", "Children's|Children|unknown|Drama")],
        "movieId int, title string, genres string",
    )
    got = {r["movieId"]: r for r in silver.movie_features(movies).collect()}
    assert got[1]["genre_list"] == ["Animation", "Children", "Comedy"] and got[1]["genre_Children"] == 1
    assert got[2]["genre_list"] == [] and got[3]["genre_list"] == ["Children", "Drama"]


def test_a_partition_its_job_did_not_finish_writing_is_never_read_as_history(spark, tmp_path, capsys):
    """A Spark job stopped mid-write leaves a partition without _SUCCESS (part files in _temporary, or some
    moved already): later dates read the history without it, saying so, as the Airflow side lists it."""
    from movielens.lake import Lake

    root = tmp_path.as_uri()
    schema = "userId int, movieId int, rating double, timestamp long"
    for ds, rows in (("2026-01-01", [(1, 10, 4.0, 1)]), ("2026-01-02", [(2, 10, 3.0, 2)]), ("2026-01-03", [(3, 10, 5.0, 3)])):
        spark.createDataFrame(rows, schema).write.mode("overwrite").parquet(layout.table_dir(root, layout.BRONZE, "ratings", ds))
    stopped = tmp_path / layout.BRONZE / "ratings" / "ds=2026-01-02"
    (stopped / layout.COMPLETE_MARKER).unlink()  # its files are there, but the job never said they are all
    assert list(stopped.glob("part-*.parquet"))

    history = silver.extract_history(spark, root, "ratings", "2026-01-03")
    assert sorted((r["ds"], r["userId"]) for r in history.collect()) == [("2026-01-01", 1), ("2026-01-03", 3)]
    assert f"{root}/bronze/ratings/ds=2026-01-02 has no _SUCCESS (its job was stopped mid-write): left out until " \
        "ds=2026-01-02 runs again" in capsys.readouterr().out
    assert Lake(root).table_dates(layout.BRONZE, "ratings", "2026-01-03") == ["2026-01-01", "2026-01-03"]


def test_bayesian_average_shrinks_small_counts(spark):
    ratings = spark.createDataFrame(
        [(u, 1, 5.0) for u in range(1, 3)] + [(u, 2, 3.0) for u in range(1, 21)], "userId int, movieId int, rating double"
    )
    movies = silver.movie_features(
        spark.createDataFrame([(1, "A (2000)", "Drama"), (2, "B (2001)", "Drama")], "movieId int, title string, genres string")
    )
    stats = {r["movieId"]: r for r in silver.movie_stats(ratings, movies).collect()}
    assert stats[1]["mean_rating"] == 5.0 and 3.0 < stats[1]["bayesian_avg"] < 5.0
    assert stats[1]["bayesian_avg"] < stats[1]["mean_rating"]
    assert stats[2]["n_ratings"] == 20


def test_unknown_movies_are_split_off(spark):
    df = spark.createDataFrame([(1, 10), (1, 99)], "userId int, movieId int")
    movies = spark.createDataFrame([(10,)], "movieId int")
    known, unknown = bronze.split_unknown_movies(df, movies)
    assertDataFrameEqual(known.select("userId", "movieId"), spark.createDataFrame([(1, 10)], "userId int, movieId int"))
    assertDataFrameEqual(unknown.select("userId", "movieId"), spark.createDataFrame([(1, 99)], "userId int, movieId int"))


def _write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_daily_stages_on_a_tiny_lake(spark, tmp_path):
    """bronze -> silver -> train on a tiny lake: quoted titles, history <= ds, unknown movies excluded."""
    root = tmp_path / "lake"
    d1, d2 = root / "validated" / "ds=2026-01-01", root / "validated" / "ds=2026-01-02"
    genres = ["Comedy", "Drama", "Action"]
    _write(d1, "movies.csv", "movieId,title,genres\n" + "".join(f'{m},"Movie {m}, The ({1990 + m})",{genres[m % 3]}\n' for m in range(1, 31)))
    ratings = [(u, m, 0.5 + ((u * m) % 10) / 2) for u in range(1, 21) for m in range(1, 31) if (u + m) % 3]
    _write(d1, "ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(f"{u},{m},{r},{900000000 + u}\n" for u, m, r in ratings[:200]))
    _write(d2, "ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(f"{u},{m},{r},{900000000 + u}\n" for u, m, r in ratings[200:]) + "1,999,4.0,900000001\n")
    lake = root.as_uri()

    assert bronze.run(spark, lake, "2026-01-01")["ratings"] == 200
    counts = bronze.run(spark, lake, "2026-01-02")
    assert counts["ratings"] == len(ratings) - 200 and counts["ratings_excluded_unknown_movie"] == 1
    assert counts["movies"] == 0, "no movies file landed on 2026-01-02"

    silver_counts = silver.run(spark, lake, "2026-01-02", liked_threshold=4.0)
    assert silver_counts["ratings"] == len(ratings), "history <= ds is used"
    titles = spark.read.parquet(layout.table_dir(lake, layout.SILVER, "ratings", "2026-01-02")).select("title").distinct()
    assert "Movie 1, The (1991)" in [r.title for r in titles.collect()]
    assert silver.run(spark, lake, "2026-01-01", 4.0)["ratings"] == 200, "a backfill of an earlier date sees only its history"

    params = JobSpec.build({"als_rank": 4, "als_max_iter": 5, "top_k": 5, "recommendations_per_user": 5,
                            "tune": False, "ials_rank": 4})
    result = train.run(spark, lake, "2026-01-02", params)
    metrics = result["models"]["als_explicit"]["metrics"]
    assert 0 < metrics["rmse"] < 5 and 0 <= metrics["ndcg_at_5"] <= 1
    assert set(result["models"]) == {"als_explicit", "ease_ials", "item_knn", "popularity"}
    for model in result["models"].values():
        assert {"precision_at_5", "recall_at_5", "ndcg_at_5", "map_at_5", "hit_rate_at_5", "catalog_coverage"} <= set(model["metrics"])
    recs = spark.read.parquet(layout.table_dir(lake, layout.GOLD, "recommendations", "2026-01-02"))
    seen = {(r.userId, r.movieId) for r in spark.read.parquet(layout.table_dir(lake, layout.SILVER, "ratings", "2026-01-02")).collect()}
    rows = recs.collect()
    assert rows and all((r.userId, r.movieId) not in seen for r in rows), "never recommends a rated movie"
    assert all(r.title for r in rows)
    again = train.run(spark, lake, "2026-01-02", params)
    assert again["models"]["als_explicit"]["metrics"] == metrics, "fixed seeds: a rerun gives the same numbers"

    # The rating model (fitted on the driver: tiny data) is saved as ALSModel's factor folders, which the
    # als-factors similar movies read.
    rating = again["models"]["als_explicit"]
    assert rating["engine"] == "driver"
    assert set(rating["artifacts"]) == {"user_factors", "item_factors", "user_bias", "item_bias"}
    item_factors = spark.read.parquet(f"{lake}/{rating['artifacts']['item_factors']}")
    assert item_factors.schema.simpleString() == "struct<id:int,features:array<float>>"
    assert item_factors.count() == 30 and len(item_factors.first()["features"]) == 4
    settings = {**params.settings, "similar_source": "als-factors", "similar_min_ratings": 1}
    assert similar.run(spark, lake, "2026-01-02", train.SIMILARITY_MODEL, settings)["similar_movies"] > 0
    lists = spark.read.parquet(layout.table_dir(lake, layout.GOLD, "similar_movies", "2026-01-02"))
    assert lists.select("movieId").distinct().count() == 30


def test_split_is_stratified_by_movie_and_independent_of_partitioning(spark):
    rows = [(u, m, 4.0) for m, n in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 40)) for u in range(1, n + 1)]
    ratings = spark.createDataFrame(rows, "userId int, movieId int, rating double")
    train_df, test_df = evaluation.split(ratings, test_fraction=0.25, seed=42)
    held_out = {r["movieId"]: r["count"] for r in test_df.groupBy("movieId").count().collect()}
    # round(n * 0.75) of each movie's n ratings stay in training (half to even: n=2 -> 2 * 0.75 = 1.5 -> 2)
    assert held_out == {3: 1, 4: 2, 5: 10}
    assert train_df.count() + test_df.count() == len(rows)
    assert not train_df.join(test_df, ["userId", "movieId"]).count(), "no pair in both"
    again_train, again_test = evaluation.split(ratings.repartition(7), test_fraction=0.25, seed=42)
    assertDataFrameEqual(again_test, test_df)
    other_seed = {(r["userId"], r["movieId"]) for r in evaluation.split(ratings, 0.25, seed=7)[1].collect()}
    assert other_seed != {(r["userId"], r["movieId"]) for r in test_df.collect()}


def test_the_time_split_holds_out_each_users_latest_ratings(spark):
    rows = [
        (1, 10, 4.0, 100), (1, 11, 3.0, 400), (1, 12, 5.0, 200), (1, 13, 2.0, 300),  # 4 ratings: 1 held out
        (2, 10, 4.0, 100),  # one rating: always kept for training
        (3, 10, 4.0, 50), (3, 11, 4.0, 60), (3, 12, 4.0, 60),  # 1 held out (12: the larger id of a tie is later)
    ]
    ratings = spark.createDataFrame(rows, "userId int, movieId int, rating double, timestamp long")
    train_df, test_df = evaluation.protocol_split(ratings, "time", 0.25, seed=42)
    assertDataFrameEqual(test_df.select("userId", "movieId"),
                         spark.createDataFrame([(1, 11), (3, 12)], "userId int, movieId int"))
    _, half = evaluation.split_by_time(ratings, 0.5)  # user 3: 3 x 0.5 = 1.5 -> 2 (half to even)
    assert sorted((r["userId"], r["movieId"]) for r in half.collect()) == [(1, 11), (1, 13), (3, 11), (3, 12)]
    assert train_df.count() + test_df.count() == len(rows)
    with pytest.raises(ValueError, match="split must be one of"):
        evaluation.protocol_split(ratings, "future", 0.25, seed=42)
