"""A synthetic MovieLens-shaped dataset, for offline demos, tests and scale benchmarks.

Written in MovieLens' CSV layout (ratings.csv, movies.csv, tags.csv, links.csv, same headers and
quoting) so every stage treats it like the real thing. What makes it realistic enough to be useful:

- power-law (Zipf) item popularity and user activity, every user with at least 20 ratings;
- ratings from a latent low-rank model (global mean + user and item biases + rank-8 factors + noise),
  rounded to half stars in 0.5..5.0 with a mean near 3.5, so ALS has structure to learn;
- unique (userId, movieId) pairs, every rated or tagged movie present in movies.csv;
- titles ``Title (YYYY)`` (some with a comma, hence quoted), real MovieLens genre names;
- timestamps between ``start`` and the end of ``end`` (the run date), never later.

Users are generated and written in chunks, so ML-25M scale (25 M ratings) runs in bounded memory.
``python -m movielens.synthetic --size tiny|small|1m|25m --out DIR [--seed N] [--end YYYY-MM-DD]``
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
from pathlib import Path

import numpy as np

from spark_jobs.common.layout import GENRES, NO_GENRES

# (users, movies, ratings): tiny for tests; small ~ ml-latest-small; 25m ~ ML-25M.
SIZES = {
    "tiny": (60, 200, 3_000),
    "small": (610, 9_700, 100_000),
    "1m": (6_000, 3_700, 1_000_000),
    "25m": (162_000, 62_000, 25_000_000),
}
RANK = 8
MIN_PER_USER = 20
TAG_SHARE = 0.035  # ml-latest-small: 3,683 tags for 100,836 ratings

_WORDS_A = ("Silent", "Crimson", "Lost", "Last", "Hidden", "Broken", "Golden", "Midnight", "Electric", "Wild",
            "Secret", "Frozen", "Burning", "Little", "Dark", "Bright", "Endless", "Savage", "Lonely", "Final")
_WORDS_B = ("River", "Empire", "Garden", "Stranger", "Kingdom", "Summer", "Machine", "Harbor", "Island", "Promise",
            "Mirror", "Journey", "Storm", "Letter", "Dream", "Station", "Circus", "Code", "Planet", "Horizon")
_TAGS = ("funny", "atmospheric", "twist ending", "classic", "dark comedy", "visually appealing", "thought-provoking",
         "based on a book", "sci-fi", "romance", "slow", "great soundtrack", "quirky", "violent", "nostalgic")


def _end_timestamp(end: dt.date) -> int:
    """The last second of ``end`` (UTC)."""
    return int(dt.datetime.combine(end, dt.time(23, 59, 59), tzinfo=dt.timezone.utc).timestamp())


def _movie_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    # Real ids are increasing with gaps (ml-latest-small goes up to 193609 for 9,742 movies).
    return np.cumsum(rng.integers(1, 4, size=n)).astype(np.int64)


def _titles(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    years = np.clip(np.round(2023 - rng.gamma(2.0, 9.0, size=n)), 1920, 2023).astype(int)
    a = rng.integers(0, len(_WORDS_A), size=n)
    b = rng.integers(0, len(_WORDS_B), size=n)
    titles = []
    for i in range(n):
        name = f"{_WORDS_A[a[i]]} {_WORDS_B[b[i]]} {i + 1}"
        if i % 17 == 0:  # MovieLens moves articles to the end: "Stranger, The (1999)"
            name = f"{name}, The"
        titles.append(f"{name} ({years[i]})")
    return titles, years


def _genres(rng: np.random.Generator, n: int) -> list[str]:
    out = []
    weights = np.linspace(2.0, 0.5, len(GENRES))
    weights /= weights.sum()
    for _ in range(n):
        if rng.random() < 0.01:
            out.append(NO_GENRES)
            continue
        k = int(rng.integers(1, 4))
        picks = sorted(rng.choice(len(GENRES), size=k, replace=False, p=weights))
        out.append("|".join(GENRES[p] for p in picks))
    return out


def _activity(rng: np.random.Generator, users: int, movies: int, ratings: int) -> np.ndarray:
    """Ratings per user: at least 20, power-law tail, summing to ``ratings`` (capped per user)."""
    floor = min(MIN_PER_USER, max(1, ratings // users))
    cap = max(floor, int(movies * 0.4))
    weights = rng.pareto(1.3, size=users) + 1e-3
    extra = ratings - floor * users
    counts = floor + np.floor(extra * weights / weights.sum()).astype(np.int64)
    counts = np.minimum(counts, cap)
    # Hand out what rounding and capping left, to users below the cap.
    missing = ratings - int(counts.sum())
    while missing > 0:
        room = np.flatnonzero(counts < cap)
        if room.size == 0:
            break
        take = room[rng.integers(0, room.size, size=min(missing, room.size))]
        np.add.at(counts, take, 1)
        counts = np.minimum(counts, cap)
        missing = ratings - int(counts.sum())
    return counts


def _sample_items(rng, cdf: np.ndarray, user_index: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct popularity-weighted items for each user of a chunk (vectorised, a few rounds)."""
    first = int(user_index[0])
    remaining = counts.astype(np.int64).copy()  # still needed, by local user index
    taken_keys = np.zeros(0, dtype=np.int64)
    for _ in range(20):
        pending = np.flatnonzero(remaining > 0)
        if pending.size == 0:
            break
        draws = (remaining[pending] * 1.6 + 8).astype(np.int64)
        users = np.repeat(pending.astype(np.int64), draws)
        items = np.minimum(np.searchsorted(cdf, rng.random(users.size), side="right"), cdf.size - 1)
        keys = np.unique(users << 32 | items.astype(np.int64))
        keys = np.setdiff1d(keys, taken_keys, assume_unique=True)
        local = keys >> 32
        # A random subset of each user's new items, up to what the user still needs.
        order = np.lexsort((rng.random(keys.size), local))
        keys, local = keys[order], local[order]
        rank_in_user = np.arange(keys.size) - np.searchsorted(local, local, side="left")
        keep = rank_in_user < remaining[local]
        taken_keys = np.union1d(taken_keys, keys[keep])
        remaining -= np.bincount(local[keep], minlength=remaining.size)
    return (taken_keys >> 32) + first, taken_keys & 0xFFFFFFFF


def generate(
    out_dir: Path,
    *,
    users: int,
    movies: int,
    ratings: int,
    seed: int = 42,
    start: dt.date = dt.date(1996, 1, 1),
    end: dt.date = dt.date(2023, 12, 31),
    chunk_users: int = 20_000,
) -> dict:
    """Write ratings.csv, movies.csv, tags.csv and links.csv to ``out_dir``; return the counts."""
    if users < 1 or movies < 2 or ratings < users:
        raise ValueError(f"need users >= 1, movies >= 2 and ratings >= users; got {users}, {movies}, {ratings}")
    if ratings > users * movies * 0.4:
        raise ValueError(f"{ratings} ratings do not fit {users} users x {movies} movies at 40 % density")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t_start = int(dt.datetime.combine(start, dt.time(), tzinfo=dt.timezone.utc).timestamp())
    t_end = _end_timestamp(end)
    if t_end <= t_start:
        raise ValueError(f"end {end} must be after start {start}")

    movie_ids = _movie_ids(rng, movies)
    titles, years = _titles(rng, movies)
    genres = _genres(rng, movies)
    with open(out_dir / "movies.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["movieId", "title", "genres"])
        writer.writerows(zip(movie_ids.tolist(), titles, genres))
    with open(out_dir / "links.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["movieId", "imdbId", "tmdbId"])
        imdb = rng.choice(9_999_999, size=movies, replace=False) + 1
        for mid, im in zip(movie_ids.tolist(), imdb.tolist()):
            writer.writerow([mid, f"{im:07d}", mid * 7 + 11])

    # Latent model: popularity is Zipf over a random order of the movies.
    popularity = 1.0 / np.arange(1, movies + 1) ** 0.95
    popularity = popularity[rng.permutation(movies)]
    cdf = np.cumsum(popularity / popularity.sum())
    item_bias = rng.normal(0.0, 0.45, size=movies) + 0.15 * np.log(popularity / popularity.mean()) / 3
    item_factors = rng.normal(0.0, 0.3, size=(movies, RANK))
    counts = _activity(rng, users, movies, ratings)

    written = 0
    tag_rows = 0
    with open(out_dir / "ratings.csv", "w", encoding="utf-8") as r_out, open(out_dir / "tags.csv", "w", encoding="utf-8") as t_out:
        r_out.write("userId,movieId,rating,timestamp\n")
        t_out.write("userId,movieId,tag,timestamp\n")
        for first in range(0, users, chunk_users):
            index = np.arange(first, min(users, first + chunk_users))
            u, i = _sample_items(rng, cdf, index, counts[index])
            n = u.size
            user_bias = rng.normal(0.0, 0.45, size=index.size)
            user_factors = rng.normal(0.0, 0.3, size=(index.size, RANK))
            local = u - first
            score = (
                3.55 + user_bias[local] + item_bias[i]
                + np.einsum("ij,ij->i", user_factors[local], item_factors[i]) * 2.0
                + rng.normal(0.0, 0.55, size=n)
            )
            stars = np.clip(np.round(score * 2) / 2, 0.5, 5.0)
            # Each user is active from a random day on; ratings spread after it, never past the end.
            user_start = rng.integers(t_start, t_end - 86_400, size=index.size)
            span = np.minimum(rng.exponential(200 * 86_400, size=n), (t_end - user_start[local]))
            stamps = (user_start[local] + span).astype(np.int64)
            order = np.lexsort((stamps, u))
            ids_u = (u[order] + 1).astype(np.int64)
            ids_m = movie_ids[i[order]]
            lines = np.char.add(
                np.char.add(np.char.add(ids_u.astype(str), ","), np.char.add(ids_m.astype(str), ",")),
                np.char.add(np.char.add(np.char.mod("%.1f", stars[order]), ","), stamps[order].astype(str)),
            )
            r_out.write("\n".join(lines.tolist()))
            r_out.write("\n")
            written += n
            # Tags on a random share of the rated pairs, a little after the rating.
            pick = rng.random(n) < TAG_SHARE
            if pick.any():
                tags = np.array(_TAGS)[rng.integers(0, len(_TAGS), size=int(pick.sum()))]
                t_stamps = np.minimum(stamps[order][pick] + 60, t_end)
                for uu, mm, tt, ts in zip(ids_u[pick].tolist(), ids_m[pick].tolist(), tags.tolist(), t_stamps.tolist()):
                    t_out.write(f"{uu},{mm},{tt},{ts}\n")
                tag_rows += int(pick.sum())
    return {"ratings": written, "movies": movies, "tags": tag_rows, "links": movies, "users": users, "seed": seed}


def generate_size(out_dir: Path, size: str, **kwargs) -> dict:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    users, movies, ratings = SIZES[size]
    return generate(out_dir, users=users, movies=movies, ratings=ratings, **kwargs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate a synthetic MovieLens-shaped dataset.")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date.today(), help="last date of the data")
    args = parser.parse_args(argv)
    counts = generate_size(args.out, args.size, seed=args.seed, end=args.end)
    print(f"wrote {args.out}: {counts}")


if __name__ == "__main__":
    main()
