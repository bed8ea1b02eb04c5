"""The synthetic MovieLens-shaped generator: exact layout, validity, realism, learnable structure, determinism."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from movielens.ingest import synthetic

from spark_jobs.common.layout import GENRES, NO_GENRES

END = dt.date(2026, 11, 20)
END_TS = int(dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp())
START_TS = int(dt.datetime(1996, 1, 1, tzinfo=dt.timezone.utc).timestamp())
FILES = ("ratings.csv", "movies.csv", "tags.csv", "links.csv")
USERS, MOVIES, RATINGS = 500, 4_000, 50_000


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """A catalog much larger than what most users rate: 2.5 % dense, like ML-25M."""
    out = tmp_path_factory.mktemp("sparse")
    return out, synthetic.generate(out, users=USERS, movies=MOVIES, ratings=RATINGS, seed=3, end=END)


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """Enough ratings per movie (~75) for a small ALS to find the latent factors."""
    out = tmp_path_factory.mktemp("dense")
    return out, synthetic.generate(out, users=300, movies=400, ratings=30_000, seed=11, end=END)


def read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype={"imdbId": str, "tmdbId": str}, keep_default_na=False)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_layout_headers_and_counts(sparse):
    out, counts = sparse
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES), "no temporary files left behind"
    headers = {name: (out / name).read_bytes().split(b"\n", 1)[0] for name in FILES}
    assert headers == {
        "ratings.csv": b"userId,movieId,rating,timestamp",
        "movies.csv": b"movieId,title,genres",
        "tags.csv": b"userId,movieId,tag,timestamp",
        "links.csv": b"movieId,imdbId,tmdbId",
    }
    for name in FILES:
        raw = (out / name).read_bytes()
        assert b"\r" not in raw and raw.endswith(b"\n"), f"{name}: LF line ends like MovieLens"
        raw.decode("utf-8")
    assert counts == {
        "ratings": RATINGS, "movies": MOVIES, "tags": len(read(out, "tags.csv")), "links": MOVIES,
        "users": USERS, "seed": 3,
    }  # fmt: skip
    assert len(read(out, "ratings.csv")) == RATINGS and counts["tags"] > 0


def test_ratings_are_valid(sparse):
    out, _ = sparse
    ratings, movies, tags = read(out, "ratings.csv"), read(out, "movies.csv"), read(out, "tags.csv")
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert movies["movieId"].is_unique and movies["movieId"].is_monotonic_increasing
    assert ratings["movieId"].isin(movies["movieId"]).all() and tags["movieId"].isin(movies["movieId"]).all()
    for frame in (ratings, movies, tags):
        assert all(pd.api.types.is_integer_dtype(frame[c]) and (frame[c] > 0).all() for c in frame if c.endswith("Id"))
    assert sorted(ratings["userId"].unique()) == list(range(1, USERS + 1))
    assert ratings.groupby("userId").size().min() >= 20, "MovieLens users have at least 20 ratings"
    # Sorted by user then movie, like ml-latest-small's ratings.csv.
    assert ratings[["userId", "movieId"]].apply(tuple, axis=1).is_monotonic_increasing
    assert set(ratings["rating"].unique()) <= {x / 2 for x in range(1, 11)}
    assert re.fullmatch(r"[0-5]\.[05]", (out / "ratings.csv").read_text().splitlines()[1].split(",")[2])
    assert not tags.duplicated(["userId", "movieId", "tag"]).any()
    # Tags go on movies the tagger rated.
    assert tags.merge(ratings, on=["userId", "movieId"]).shape[0] >= len(tags)


def test_rating_distribution_is_realistic(sparse):
    out, _ = sparse
    rating = read(out, "ratings.csv")["rating"]
    assert 3.35 < rating.mean() < 3.7, "MovieLens' mean rating is about 3.5"
    assert 0.85 < rating.std() < 1.2
    shares = rating.value_counts(normalize=True)
    assert shares.idxmax() in (3.0, 4.0) and shares.get(0.5, 0) < 0.03
    assert shares[[0.5, 1.5, 2.5, 3.5, 4.5]].sum() > 0.15, "half stars are used"
    assert shares[[1.0, 2.0, 3.0, 4.0, 5.0]].sum() > 0.5, "whole stars dominate, as in MovieLens"


def test_popularity_and_activity_follow_power_laws(sparse):
    out, _ = sparse
    ratings = read(out, "ratings.csv")
    per_movie = ratings["movieId"].value_counts()
    top_decile = per_movie.head(MOVIES // 10).sum() / len(ratings)
    assert top_decile > 0.4, f"top 10 % of movies hold only {top_decile:.0%} of ratings"
    assert per_movie.median() < 0.5 * per_movie.mean(), "a long tail of rarely rated movies"
    assert 0.2 * USERS < per_movie.iloc[0] < 0.8 * USERS, "the top movie is rated by about half the users"
    per_user = ratings.groupby("userId").size()
    assert per_user.max() > 5 * per_user.median() and per_user.mean() > 1.3 * per_user.median()


def _split(ratings: pd.DataFrame, seed: int = 0):
    user = pd.factorize(ratings["userId"])[0]
    item = pd.factorize(ratings["movieId"])[0]
    value = ratings["rating"].to_numpy()
    test = np.random.default_rng(seed).random(len(value)) < 0.2
    return user, item, value, ~test, test


def _fit_biases(user, item, value, train, lam=5.0, rounds=10):
    mu = value[train].mean()
    n_u, n_i = user.max() + 1, item.max() + 1
    bu, bi = np.zeros(n_u), np.zeros(n_i)
    for _ in range(rounds):
        bi = np.bincount(item[train], value[train] - mu - bu[user[train]], n_i) / (
            np.bincount(item[train], minlength=n_i) + lam
        )
        bu = np.bincount(user[train], value[train] - mu - bi[item[train]], n_u) / (
            np.bincount(user[train], minlength=n_u) + lam
        )
    return mu, bu, bi


def _fit_low_rank(user, item, residual, rank=10, lam=8.0, rounds=6):
    """Plain alternating least squares on the residuals of the bias model."""
    rng = np.random.default_rng(0)
    n_u, n_i = user.max() + 1, item.max() + 1
    p, q = rng.normal(0, 0.1, (n_u, rank)), rng.normal(0, 0.1, (n_i, rank))
    by_user = [np.flatnonzero(user == u) for u in range(n_u)]
    by_item = [np.flatnonzero(item == i) for i in range(n_i)]
    ridge = lam * np.eye(rank)
    for _ in range(rounds):
        for u, rows in enumerate(by_user):
            a = q[item[rows]]
            p[u] = np.linalg.solve(a.T @ a + ridge, a.T @ residual[rows])
        for i, rows in enumerate(by_item):
            a = p[user[rows]]
            q[i] = np.linalg.solve(a.T @ a + ridge, a.T @ residual[rows])
    return p, q


def test_structure_is_learnable(dense):
    """On held-out ratings: user/item biases beat the global mean, and a rank-10 ALS beats the biases."""
    out, _ = dense
    user, item, value, train, test = _split(read(out, "ratings.csv"))
    mu, bu, bi = _fit_biases(user, item, value, train)

    def rmse(pred):
        return float(np.sqrt(np.mean((pred - value[test]) ** 2)))

    rmse_mean = rmse(np.full(test.sum(), mu))
    rmse_bias = rmse(mu + bu[user[test]] + bi[item[test]])
    residual = value - mu - bu[user] - bi[item]
    p, q = _fit_low_rank(user[train], item[train], residual[train])
    p = np.vstack([p, np.zeros((user.max() + 1 - len(p), p.shape[1]))])
    q = np.vstack([q, np.zeros((item.max() + 1 - len(q), q.shape[1]))])
    rmse_als = rmse(mu + bu[user[test]] + bi[item[test]] + np.einsum("ij,ij->i", p[user[test]], q[item[test]]))
    assert rmse_bias < 0.9 * rmse_mean, (rmse_bias, rmse_mean)
    assert rmse_als < 0.98 * rmse_bias, (rmse_als, rmse_bias)


def test_timestamps_within_start_and_end(tmp_path):
    start, end = dt.date(2001, 3, 4), dt.date(2010, 6, 30)
    synthetic.generate(tmp_path, users=120, movies=300, ratings=6_000, seed=5, start=start, end=end)
    lo = int(dt.datetime(2001, 3, 4, tzinfo=dt.timezone.utc).timestamp())
    hi = int(dt.datetime(2010, 6, 30, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp())
    ratings, tags = read(tmp_path, "ratings.csv"), read(tmp_path, "tags.csv")
    assert ratings["timestamp"].between(lo, hi).all() and tags["timestamp"].between(lo, hi).all()
    assert ratings["timestamp"].max() - ratings["timestamp"].min() > 5 * 365 * 86_400, "spread over the years"
    # No half stars before MovieLens had them (February 2003).
    early = ratings[ratings["timestamp"] < synthetic.HALF_STARS_SINCE.timestamp()]
    assert len(early) > 0 and (early["rating"] % 1 == 0).all()
    # Nobody rates a movie before its release year.
    years = read(tmp_path, "movies.csv").set_index("movieId")["title"].str[-5:-1].astype(int)
    rated_year = pd.to_datetime(ratings["timestamp"], unit="s").dt.year
    assert (rated_year >= ratings["movieId"].map(years)).all()
    assert years.max() <= 2010


def test_titles_genres_links_and_quoting_round_trip(sparse):
    out, _ = sparse
    text = (out / "movies.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    movies = rows[1:]
    assert len(movies) == MOVIES and all(len(r) == 3 for r in movies)
    assert all(re.fullmatch(r".+ \((19|20)\d\d\)", title) for _, title, _ in movies)
    assert any(", The (" in title for _, title, _ in movies), "leading articles moved to the end"
    with_comma = [t for _, t, _ in movies if "," in t]
    with_quote = [t for _, t, _ in movies if '"' in t]
    assert with_comma and with_quote and any(not t.isascii() for _, t, _ in movies)
    # Minimal quoting exactly like MovieLens: writing the parsed rows back gives the same bytes.
    again = io.StringIO()
    csv.writer(again, lineterminator="\n").writerows(rows)
    assert again.getvalue() == text
    assert f'"{with_comma[0]}"' in text and '""' in text
    for _, _, genres in movies:
        names = genres.split("|")
        assert genres == NO_GENRES or (set(names) <= set(GENRES) and names == sorted(names)), genres

    links = read(out, "links.csv")
    assert links["movieId"].tolist() == read(out, "movies.csv")["movieId"].tolist()
    assert links["imdbId"].str.fullmatch(r"\d{7}").all() and links["imdbId"].is_unique
    assert links["tmdbId"].str.fullmatch(r"\d*").all()

    tag_text = (out / "tags.csv").read_text(encoding="utf-8")
    tag_rows = list(csv.reader(io.StringIO(tag_text)))
    assert all(len(r) == 4 for r in tag_rows)
    again = io.StringIO()
    csv.writer(again, lineterminator="\n").writerows(tag_rows)
    assert again.getvalue() == tag_text


def test_deterministic_for_a_seed(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        synthetic.generate_size(tmp_path / name, "tiny", seed=seed, end=END)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["ratings.csv"] != digest(tmp_path / "c")["ratings.csv"]


def test_chunk_rows_do_not_change_the_output(tmp_path):
    """Three user blocks, written in one go or a few rows at a time: the same bytes."""
    kw = dict(users=600, movies=300, ratings=15_000, seed=9, end=END)
    one = synthetic.generate(tmp_path / "one", **kw)
    many = synthetic.generate(tmp_path / "many", chunk_rows=50, **kw)
    assert one == many
    assert digest(tmp_path / "one") == digest(tmp_path / "many")


def test_presets_and_tiny(tmp_path):
    assert set(synthetic.SIZES) == {"tiny", "small", "1m", "25m"}
    assert synthetic.SIZES["25m"] == (162_000, 62_000, 25_000_000)
    users, movies, ratings = synthetic.SIZES["tiny"]
    counts = synthetic.generate_size(tmp_path, "tiny", end=END)
    assert (counts["users"], counts["movies"], counts["ratings"]) == (users, movies, ratings)
    assert counts["tags"] > 0 and counts["seed"] == 42
    frame = read(tmp_path, "ratings.csv")
    assert frame["timestamp"].between(START_TS, END_TS).all()


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(users=10, movies=5, ratings=1_000), "exceed users x movies"),
        (dict(users=100, movies=50, ratings=10), "at least users"),
        (dict(users=0, movies=50, ratings=10), "users must be a positive integer"),
        (dict(users=10, movies=50, ratings=500, start=dt.date(2020, 1, 1), end=dt.date(2019, 1, 1)), "before start"),
        (dict(users=10, movies=50, ratings=500, chunk_rows=0), "chunk_rows"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        synthetic.generate(tmp_path, **kw)


def test_unknown_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        synthetic.generate_size(tmp_path, "huge")


def test_few_ratings_per_user_and_a_small_catalog(tmp_path):
    """Below 20 ratings a user, or with a handful of movies, the floor and the cap adapt."""
    synthetic.generate(tmp_path / "thin", users=50, movies=100, ratings=300, seed=1)
    per_user = read(tmp_path / "thin", "ratings.csv").groupby("userId").size()
    assert per_user.sum() == 300 and per_user.min() >= 6
    synthetic.generate(tmp_path / "full", users=5, movies=8, ratings=40, seed=1)
    full = read(tmp_path / "full", "ratings.csv")
    assert len(full) == 40 and not full.duplicated(["userId", "movieId"]).any()


def test_command_line(tmp_path):
    out = tmp_path / "cli"
    command = [sys.executable, "-m", "movielens.ingest.synthetic", "--size", "tiny", "--out", str(out), "--seed", "4"]
    done = subprocess.run([*command, "--end", "2024-05-01"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3,000 ratings" in done.stdout and "seed 4" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    bad = subprocess.run(
        [sys.executable, "-m", "movielens.ingest.synthetic", "--size", "huge", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_the_synthetic_ingest_mode_lands_the_generated_files_of_the_seed(tmp_path, monkeypatch):
    """``ingest=synthetic`` (trigger form, ``MOVIELENS_INGEST``): the generated files of MOVIELENS_SEED land."""
    from movielens import config
    from movielens.ingest import landing

    monkeypatch.setenv("MOVIELENS_LAKE_URL", (tmp_path / "lake").as_uri())
    monkeypatch.setenv("MOVIELENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MOVIELENS_SYNTHETIC_SIZE", "tiny")
    monkeypatch.setenv("MOVIELENS_SEED", "5")
    landed = landing.land(config.load(), END.isoformat(), "synthetic")
    assert landed["source"] == "synthetic dataset 'tiny' (seed 5)"
    assert sorted(landed["files"]) == sorted(FILES)
    expected = tmp_path / "reference"
    synthetic.generate_size(expected, "tiny", seed=5, end=END)
    for name in FILES:
        assert (tmp_path / "lake" / "landing" / f"ds={END}" / name).read_bytes() == (expected / name).read_bytes()
