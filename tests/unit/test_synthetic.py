"""The synthetic MovieLens-shaped generator: layout, validity, realism, learnable structure, determinism."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pytest

from movielens import synthetic
from spark_jobs.common.layout import GENRES, NO_GENRES

END = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    counts = synthetic.generate(out, users=300, movies=1500, ratings=30_000, seed=3, end=END, chunk_users=70)
    return out, counts


def read(out, name):
    return pd.read_csv(out / name, dtype={"imdbId": str})


def test_layout_and_headers(small):
    out, counts = small
    headers = {name: (out / name).read_text().splitlines()[0] for name in ("ratings.csv", "movies.csv", "tags.csv", "links.csv")}
    assert headers == {
        "ratings.csv": "userId,movieId,rating,timestamp",
        "movies.csv": "movieId,title,genres",
        "tags.csv": "userId,movieId,tag,timestamp",
        "links.csv": "movieId,imdbId,tmdbId",
    }
    assert abs(counts["ratings"] - 30_000) <= 30, counts


def test_ratings_are_valid(small):
    out, _ = small
    ratings, movies = read(out, "ratings.csv"), read(out, "movies.csv")
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert ratings["movieId"].isin(movies["movieId"]).all()
    assert set(ratings["rating"].unique()) <= {x / 2 for x in range(1, 11)}
    assert (ratings[["userId", "movieId"]] > 0).all().all()
    assert ratings.groupby("userId").size().min() >= 20
    end_ts = dt.datetime.combine(END, dt.time(23, 59, 59), tzinfo=dt.timezone.utc).timestamp()
    assert ratings["timestamp"].between(dt.datetime(1996, 1, 1, tzinfo=dt.timezone.utc).timestamp(), end_ts).all()
    tags = read(out, "tags.csv")
    assert len(tags) > 0 and tags["movieId"].isin(movies["movieId"]).all() and (tags["timestamp"] <= end_ts).all()


def test_realistic_distribution(small):
    out, _ = small
    ratings = read(out, "ratings.csv")
    assert 3.3 < ratings["rating"].mean() < 3.8
    per_movie = ratings["movieId"].value_counts()
    top_decile = per_movie.head(len(read(out, "movies.csv")) // 10).sum() / len(ratings)
    assert top_decile > 0.4, f"popularity is not skewed: top 10 % of movies hold {top_decile:.0%}"
    per_user = ratings.groupby("userId").size()
    assert per_user.max() > 5 * per_user.median(), "user activity has a long tail"


def test_titles_and_genres(small):
    out, _ = small
    with open(out / "movies.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert any("," in r["title"] for r in rows), "some titles need quoting"
    assert all(r["title"].rstrip().endswith(")") and r["title"][-5:-1].isdigit() for r in rows)
    for r in rows:
        assert r["genres"] == NO_GENRES or set(r["genres"].split("|")) <= set(GENRES)
    links = read(out, "links.csv")
    assert links["imdbId"].str.fullmatch(r"\d{7}").all()


def test_structure_is_learnable(small):
    """User + item biases fitted on 80 % predict the other 20 % clearly better than the global mean."""
    out, _ = small
    ratings = read(out, "ratings.csv").sample(frac=1.0, random_state=0)
    cut = int(len(ratings) * 0.8)
    train, test = ratings.iloc[:cut], ratings.iloc[cut:]
    mu = train["rating"].mean()
    item = (train.groupby("movieId")["rating"].sum() - mu * train.groupby("movieId").size()) / (train.groupby("movieId").size() + 10)
    resid = train["rating"] - mu - train["movieId"].map(item).fillna(0)
    user = resid.groupby(train["userId"]).sum() / (train.groupby("userId").size() + 10)
    pred = mu + test["movieId"].map(item).fillna(0) + test["userId"].map(user).fillna(0)
    rmse_bias = np.sqrt(((pred - test["rating"]) ** 2).mean())
    rmse_mean = np.sqrt(((mu - test["rating"]) ** 2).mean())
    assert rmse_bias < rmse_mean * 0.93, (rmse_bias, rmse_mean)


def test_deterministic_for_a_seed(tmp_path):
    def digest(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    synthetic.generate_size(tmp_path / "a", "tiny", seed=5, end=END)
    synthetic.generate_size(tmp_path / "b", "tiny", seed=5, end=END)
    synthetic.generate_size(tmp_path / "c", "tiny", seed=6, end=END)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown size"):
        synthetic.generate_size(tmp_path, "huge")
    with pytest.raises(ValueError):
        synthetic.generate(tmp_path, users=10, movies=5, ratings=1000)
