"""A synthetic dataset shaped like MovieLens, from a few thousand ratings to ML-25M size.

Writes ``ratings.csv``, ``movies.csv``, ``tags.csv`` and ``links.csv`` in the exact CSV layout of the
GroupLens ml-latest releases (same headers, LF line ends, double quotes only where a field needs them,
``|``-separated genres, 7-digit zero-padded imdbId). What makes the data useful for a recommender:

- item popularity follows a power law (a few blockbusters, a long tail), user activity is log-normal
  with at least 20 ratings per user, as in MovieLens;
- ratings come from a latent low-rank model (global mean + user bias + item bias + user/item factors
  partly driven by genres + noise), rounded to half stars and clipped to 0.5..5.0, so that ALS has real
  structure to learn; before 2003 (when MovieLens added half stars) and for some users they are whole stars;
- each user rates within an activity window, and never a movie before the movie's year.

Memory stays bounded at any size: users are generated in fixed blocks of ``_BLOCK_USERS`` with their
own random stream (derived from the seed and the block number), as numpy arrays, and written out as
text every ``chunk_rows`` rows. Because the random streams follow the blocks, not the chunks, the
output is byte-identical for a given seed whatever ``chunk_rows`` is.

Command line: ``python -m movielens.ingest.synthetic --size tiny|small|1m|25m --out DIR [--seed N] [--end YYYY-MM-DD]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from spark_jobs.common.layout import GENRES, NO_GENRES  # the real MovieLens genre names, alphabetical

# (users, movies, ratings), after the real releases: ml-latest-small, ml-1m and ml-25m.
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (60, 200, 3_000),
    "small": (610, 9_700, 100_000),
    "1m": (6_040, 3_900, 1_000_000),
    "25m": (162_000, 62_000, 25_000_000),
}

# Relative genre frequencies in ml-latest-small (Drama and Comedy dominate, Film-Noir is rare).
_GENRE_WEIGHTS = np.array(
    [1828, 1263, 611, 664, 3756, 1199, 440, 4361, 779, 87, 978, 158, 334, 573, 1596, 980, 1894, 382, 167], float
)

HEADERS = {
    "ratings": ("userId", "movieId", "rating", "timestamp"),
    "movies": ("movieId", "title", "genres"),
    "tags": ("userId", "movieId", "tag", "timestamp"),
    "links": ("movieId", "imdbId", "tmdbId"),
}

MIN_RATINGS_PER_USER = 20  # MovieLens only includes users with at least 20 ratings
HALF_STARS_SINCE = dt.datetime(2003, 2, 12, tzinfo=dt.timezone.utc)  # MovieLens added half stars then

_BLOCK_USERS = 256  # users per random stream; fixed so that chunk_rows never changes the output
_RANK = 10  # latent factors
_FACTOR_SD = (0.5 / np.sqrt(_RANK)) ** 0.5  # per entry, so that a user-item factor product has sd ~0.5
_GLOBAL_MEAN = 3.65  # before rounding and clipping; the written mean comes out near 3.5, like MovieLens
_USER_BIAS_SD = 0.45
_ITEM_BIAS_SD = 0.45
_NOISE_SD = 0.70
_ZIPF_EXPONENT = 1.2  # item popularity ~ 1 / (rank + offset) ** exponent
_TOP_MOVIE_SHARE = 0.5  # share of users who rated the most popular movie (the offset is solved for it)
_TAGGER_SHARE = 0.10  # about one user in ten tags (58 of 610 in ml-latest-small)
_TAG_RATE = 0.20  # a tagger tags about this share of the movies they rated
_MISSING_TMDB = 0.001  # real links.csv has a few movies without a tmdbId

_RATING_TEXT = [f"{i / 2:.1f}" for i in range(11)]  # index = 2 * rating: "0.5" .. "5.0"

_ADJECTIVES = (
    "Last", "Silent", "Dark", "Lost", "Broken", "Golden", "Hidden", "Wild", "Secret", "Final", "Red", "Blue",
    "Crimson", "Eternal", "Little", "Big", "Lonely", "Midnight", "Frozen", "Burning", "Forgotten", "Perfect",
    "Strange", "Sweet", "Bitter", "Long", "Quiet", "Savage", "Electric", "Invisible", "Endless", "Brave",
    "Wicked", "Crazy", "Happy", "Deadly", "Shining", "Restless", "Distant", "Fallen",
)  # fmt: skip
_NOUNS = (
    "Night", "River", "City", "Heart", "Road", "Dream", "Storm", "Kingdom", "Island", "Shadow", "Game", "Garden",
    "Summer", "Winter", "Mountain", "Sky", "Ocean", "Star", "Machine", "Ghost", "Empire", "Journey", "Mirror",
    "Train", "House", "Forest", "Fire", "Stranger", "Detective", "Soldier", "Thief", "Queen", "King", "Wolf",
    "Dragon", "Planet", "Highway", "Promise", "Secret", "Letter", "Hunter", "Angel", "Circus", "Harbor",
    "Desert", "Voyage", "Symphony", "Legend", "Orchard", "Lighthouse", "Bridge", "Frontier", "Carnival",
    "Witness", "Prophet", "Rebel", "Sister", "Brother", "Father", "Daughter",
)  # fmt: skip
_PLACES = (
    "Paris", "Tokyo", "Brooklyn", "Texas", "Mars", "the North", "Rome", "Berlin", "Chicago", "Nowhere",
    "Shanghai", "Casablanca", "the Sea", "Avalon", "Bombay", "Montana",
)  # fmt: skip
# Foreign titles come with an English title in parentheses, as in "Cité des enfants perdus, La (...)".
_FOREIGN = (
    ("Rêve", "Le"), ("Été", "L'"), ("Château", "Le"), ("Niño", "El"), ("Mädchen", "Das"), ("Señorita", "La"),
    ("Noël", "Le"), ("Förster", "Der"), ("Ciudad", "La"), ("Nuit", "La"), ("Fête", "La"), ("Öde", "Die"),
    ("Amor", "El"), ("Città", "La"), ("Sjöman", "En"), ("Łódź", "Le"),
)  # fmt: skip
_TAGS = (
    "atmospheric", "funny", "thought-provoking", "twist ending", "dark comedy", "visually appealing", "classic",
    "sci-fi", "based on a book", "surreal", "action", "romance", "quirky", "psychology", "dystopia",
    "great soundtrack", "predictable", "overrated", "Oscar (Best Picture)", "cult film", "violence", "satire",
    "time travel", "space", "superhero", "Disney", "Pixar", "animation", "mindfuck", "nonlinear", "philosophy",
    "beautiful", "slow", "boring", "suspense", "stylized", "BD-R", "In Netflix queue", "imdb top 250",
    "comedy", "drama", "war", "World War II", "true story", "biography", "music", "musical", "high school",
    "heist", "revenge", "serial killer", "zombies", "aliens", "robots", "artificial intelligence", "magic",
    "fantasy world", "coming of age", "family", "friendship", "politics", "religion", "Shakespeare",
    "remake", "sequel", "franchise", "black and white", "noir", "western", "road trip", "New York City",
    "Paris", "Tokyo", "dialogue", "great acting", "great ending", "bad ending", "cheesy", "so bad it's good",
    "funny, sad", 'not "funny"', "Tom Hanks", "Quentin Tarantino", "Christopher Nolan", "Stanley Kubrick",
    "Hayao Miyazaki", "Studio Ghibli", "anime", "documentary", "social commentary", "feel-good",
    "tearjerker", "disturbing", "gore", "clever", "witty", "cinematography", "long", "short",
)  # fmt: skip


def generate(
    out_dir: Path,
    *,
    users: int,
    movies: int,
    ratings: int,
    seed: int = 42,
    start: dt.date = dt.date(1996, 1, 1),
    end: dt.date = dt.date(2023, 12, 31),
    chunk_rows: int = 1_000_000,
) -> dict:
    """Write a MovieLens-shaped dataset into ``out_dir``; returns row counts per file and the seed.

    Timestamps fall between ``start`` 00:00:00 and ``end`` 23:59:59 UTC. Files appear only when
    complete (written under a temporary name, then renamed; ``ratings.csv`` last).
    """
    _check_sizes(users, movies, ratings)
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = int(dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc).timestamp())
    t_end = int(dt.datetime(end.year, end.month, end.day, tzinfo=dt.timezone.utc).timestamp()) + 86_399

    counts = _ratings_per_user(np.random.default_rng(_stream(seed, 1)), users, movies, ratings)
    catalog = _Catalog(np.random.default_rng(_stream(seed, 0)), movies, end.year, counts)

    _write_rows(out_dir / "movies.csv", HEADERS["movies"], catalog.movie_rows())
    _write_rows(out_dir / "links.csv", HEADERS["links"], catalog.link_rows())

    window = (t_start, t_end)
    n_ratings = n_tags = 0
    with _AtomicText(out_dir / "ratings.csv") as rfile, _AtomicText(out_dir / "tags.csv") as tfile:
        rfile.write(",".join(HEADERS["ratings"]) + "\n")
        tfile.write(",".join(HEADERS["tags"]) + "\n")
        rbuf: list[str] = []
        tbuf: list[str] = []
        buffered = 0
        for first in range(0, users, _BLOCK_USERS):
            block_counts = counts[first : first + _BLOCK_USERS]
            rng = np.random.default_rng(_stream(seed, 2, first // _BLOCK_USERS))
            block = _rating_block(rng, catalog, block_counts, first, window)
            rbuf.append(_ratings_text(catalog.ids, *block))
            tags = _tag_block(rng, *block, force_tagger=(first == 0), t_end=t_end)
            tbuf.append(_tags_text(catalog.ids, *tags))
            n_ratings += len(block[0])
            n_tags += len(tags[0])
            buffered += len(block[0])
            if buffered >= chunk_rows:
                rfile.write("".join(rbuf))
                tfile.write("".join(tbuf))
                rbuf, tbuf, buffered = [], [], 0
        rfile.write("".join(rbuf))
        tfile.write("".join(tbuf))
        # tags.csv is renamed into place before ratings.csv (exits in reverse order), so a present
        # ratings.csv means the whole dataset is there.
    return {"ratings": n_ratings, "movies": movies, "tags": n_tags, "links": movies, "users": users, "seed": seed}


def generate_size(out_dir: Path, size: str, **kw) -> dict:
    """``generate`` with the (users, movies, ratings) of a preset in ``SIZES``."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    users, movies, ratings = SIZES[size]
    return generate(out_dir, users=users, movies=movies, ratings=ratings, **kw)


# --- sizes and random streams -------------------------------------------------------------------


def _check_sizes(users: int, movies: int, ratings: int) -> None:
    for name, value in (("users", users), ("movies", movies), ("ratings", ratings)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if ratings < users:
        raise ValueError(f"ratings ({ratings}) must be at least users ({users}): every user rates something")
    if ratings > users * movies:
        raise ValueError(f"ratings ({ratings}) exceed users x movies ({users * movies}): pairs must be unique")


def _stream(seed: int, *key: int) -> np.random.SeedSequence:
    """An independent random stream per purpose (and per user block), all derived from ``seed``."""
    return np.random.SeedSequence(seed, spawn_key=key)


def _ratings_per_user(rng: np.random.Generator, users: int, movies: int, ratings: int) -> np.ndarray:
    """Log-normal activity (median about half the mean, like MovieLens) with a floor of 20 and at most
    ``movies`` per user, summing exactly to ``ratings``."""
    floor = min(MIN_RATINGS_PER_USER, ratings // users, movies)
    weights = rng.lognormal(0.0, 1.25, users)
    counts = np.full(users, floor, np.int64)
    extra = ratings - floor * users
    # Nobody rates everything: the most active user of ml-1m rated 62 % of its movies.
    cap = min(movies, max(int(0.6 * movies), -(-ratings // users)))
    # Hand out the extra ratings in proportion to the weights; users at the cap drop out and the
    # overflow goes round again (a few passes at most).
    open_ = np.ones(users, bool)
    while extra > 0:
        share = weights * open_
        add = _apportion(extra, share, limit=cap - counts)
        counts += add
        extra -= int(add.sum())
        open_ &= counts < cap
    return counts


def _apportion(total: int, weights: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (largest remainders), none over ``limit``."""
    exact = total * weights / weights.sum()
    base = np.floor(exact).astype(np.int64)
    rest = total - int(base.sum())
    if rest:
        order = np.argsort(-(exact - base), kind="stable")[:rest]
        base[order] += 1
    return np.minimum(base, limit)


# --- movies ---------------------------------------------------------------------------------------


class _Catalog:
    """Everything per movie: ids, titles, genres, links, popularity and latent factors."""

    def __init__(self, rng: np.random.Generator, movies: int, last_year: int, counts: np.ndarray) -> None:
        m = movies
        # Sparse, increasing ids like the real files (ml-latest-small: 9,742 movies up to id 193,609).
        gaps = rng.geometric(0.4, m)
        gaps[0] = 1
        self.ids = np.cumsum(gaps).astype(np.int64)
        # Release years lean recent, from 1915 up to the last year of the data.
        lo = min(1915, last_year)
        years = lo + np.floor((last_year - lo + 1) * rng.beta(3.0, 1.3, m)).astype(np.int64)
        self.years = np.minimum(years, last_year)
        release = [dt.datetime(int(y), 1, 1, tzinfo=dt.timezone.utc).timestamp() for y in range(lo, last_year + 1)]
        self.release_ts = np.array(release, np.int64)[self.years - lo]

        # Genres: 1-4 per movie drawn by frequency (Gumbel top-k), a few movies with none.
        n_genres = np.minimum(1 + rng.poisson(1.1, m), 4)
        keys = np.log(_GENRE_WEIGHTS) + rng.gumbel(size=(m, len(GENRES)))
        ranks = np.argsort(np.argsort(-keys, axis=1), axis=1)
        self.genre_flags = ranks < n_genres[:, None]
        self.genre_flags[rng.random(m) < 0.0035] = False

        self.titles = [_title(rng, int(y)) for y in self.years]

        # Links: unique ids, older movies with smaller ids (as IMDb and TMDb assign them over time).
        by_year = np.argsort(self.years, kind="stable")
        self.imdb = np.empty(m, np.int64)
        self.imdb[by_year] = np.sort(rng.choice(9_999_999, m, replace=False) + 1)
        self.tmdb = np.empty(m, np.int64)
        self.tmdb[by_year] = np.sort(rng.choice(max(1_000_000, 2 * m), m, replace=False) + 2)
        self.tmdb_missing = rng.random(m) < _MISSING_TMDB

        # Popularity (Zipf, see _popularity); popular movies are a bit better liked.
        weight = _popularity(rng, m, counts)
        self.log_pop = np.log(weight / weight.sum())
        self.cdf = np.cumsum(np.exp(self.log_pop))
        zpop = (self.log_pop - self.log_pop.mean()) / (self.log_pop.std() or 1.0)
        zpop -= np.exp(self.log_pop) @ zpop  # centred on what gets rated, so the mean stays put
        self.bias = rng.normal(0.0, _ITEM_BIAS_SD, m) + 0.15 * zpop
        # Latent factors: half from genres (so taste for a genre carries across its movies), half free.
        genre_loadings = rng.normal(0.0, 1.0, (len(GENRES), _RANK))
        from_genres = self.genre_flags @ genre_loadings / np.sqrt(np.maximum(self.genre_flags.sum(1), 1))[:, None]
        factors = 0.7 * from_genres + 0.7 * rng.normal(0.0, 1.0, (m, _RANK))
        self.factors = factors * _FACTOR_SD

    def movie_rows(self) -> Iterator[tuple]:
        for movie_id, title, flags in zip(self.ids.tolist(), self.titles, self.genre_flags):
            names = [GENRES[i] for i in np.flatnonzero(flags)]  # GENRES is alphabetical, like MovieLens
            yield movie_id, title, "|".join(names) if names else NO_GENRES

    def link_rows(self) -> Iterator[tuple]:
        for movie_id, imdb, tmdb, missing in zip(
            self.ids.tolist(), self.imdb.tolist(), self.tmdb.tolist(), self.tmdb_missing.tolist()
        ):
            yield movie_id, f"{imdb:07d}", "" if missing else tmdb


def _popularity(rng: np.random.Generator, m: int, counts: np.ndarray) -> np.ndarray:
    """Zipf weights ``1 / (rank + 1 + offset) ** exponent`` over a random order of the movies.

    A plain Zipf head is too strong: every user would rate the top movie. The offset is solved for (by
    bisection) so that the most popular movie is rated by about half the users, as in MovieLens
    (Forrest Gump: 54 % of users in ml-latest-small, 50 % in ML-25M), whatever the sizes.
    """
    ranks = np.arange(1, m + 1, dtype=float)
    n = counts.astype(float)

    def top_share(offset: float) -> float:
        w = (ranks + offset) ** -_ZIPF_EXPONENT
        p_top = w[0] / w.sum()
        return float(np.mean(1.0 - np.exp(-p_top * n)))  # chance that a user's draws include it

    lo, hi = 0.0, 10.0 * m
    if top_share(lo) > _TOP_MOVIE_SHARE:
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if top_share(mid) > _TOP_MOVIE_SHARE else (lo, mid)
    return (rng.permutation(m) + 1.0 + lo) ** -_ZIPF_EXPONENT


def _title(rng: np.random.Generator, year: int) -> str:
    adj = _ADJECTIVES[rng.integers(len(_ADJECTIVES))]
    noun = _NOUNS[rng.integers(len(_NOUNS))]
    noun2 = _NOUNS[rng.integers(len(_NOUNS))]
    kind = rng.choice(10, p=[0.22, 0.16, 0.12, 0.14, 0.04, 0.08, 0.1, 0.06, 0.06, 0.02])
    if kind == 0:
        base = f"{adj} {noun}"
    elif kind == 1:
        base = noun
    elif kind == 2:
        base = f"{noun} of {_PLACES[rng.integers(len(_PLACES))]}"
    elif kind == 3:
        base = f"{adj} {noun}, The"  # MovieLens moves a leading article to the end
    elif kind == 4:
        base = f"{noun} in {_PLACES[rng.integers(len(_PLACES))]}, A"
    elif kind == 5:
        base = f"{adj} {noun} {('2', '3', 'II', 'Part II')[rng.integers(4)]}"
    elif kind == 6:
        base = f"{noun}: {adj} {noun2}"
    elif kind == 7:
        word, article = _FOREIGN[rng.integers(len(_FOREIGN))]
        base = f"{word}, {article} ({adj} {noun})"  # like "Atalante, L' (1934)" with an English title
    elif kind == 8:
        base = f"{noun}, {noun2} and Me"
    else:
        base = f'"{adj} {noun}" {noun2}'  # like "Great Performances" Cats (1998)
    return f"{base} ({year})"


# Tag popularity is Zipf in the order of _TAGS ("atmospheric" and "funny" lead, as in MovieLens).
_TAG_CDF = np.cumsum(1.0 / np.arange(1, len(_TAGS) + 1))
_TAG_CDF /= _TAG_CDF[-1]


# --- ratings and tags -----------------------------------------------------------------------------


def _rating_block(
    rng: np.random.Generator, cat: _Catalog, counts: np.ndarray, first_user: int, window: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(userId, movie index, rating * 2, timestamp) of one block of users, sorted by user then movie."""
    n_users = len(counts)
    m = len(cat.ids)
    user_bias = rng.normal(0.0, _USER_BIAS_SD, n_users)
    user_factors = rng.normal(0.0, _FACTOR_SD, (n_users, _RANK))
    whole_stars_only = rng.random(n_users) < 0.3  # some users never use half stars
    t_lo, t_hi = window
    span_total = t_hi - t_lo
    # Activity windows: half the users rate everything within a day, the rest over days to years.
    first_ts = t_lo + (rng.random(n_users) * span_total).astype(np.int64)
    one_day = rng.random(n_users) < 0.5
    span = np.where(
        one_day, rng.uniform(600, 86_400, n_users), np.exp(rng.uniform(np.log(86_400), np.log(3e8), n_users))
    )
    span = np.minimum(span, t_hi - first_ts).astype(np.int64)

    keys = _sample_pairs(rng, counts, cat.cdf, cat.log_pop)  # local user * m + movie index, sorted
    u_local = keys // m
    item = keys - u_local * m
    n = len(keys)

    x = (
        _GLOBAL_MEAN
        + user_bias[u_local]
        + cat.bias[item]
        + np.einsum("ij,ij->i", user_factors[u_local], cat.factors[item])
        + rng.normal(0.0, _NOISE_SD, n)
    )
    ts = first_ts[u_local] + (rng.random(n) * (span[u_local] + 1)).astype(np.int64)
    # Nobody rates a movie before its year: move such ratings to a time after the release.
    early = ts < cat.release_ts[item]
    if early.any():
        rel = cat.release_ts[item[early]]
        ts[early] = rel + (rng.random(int(early.sum())) * (t_hi - rel + 1)).astype(np.int64)
    ts = np.clip(ts, t_lo, t_hi)
    whole = whole_stars_only[u_local] | (ts < int(HALF_STARS_SINCE.timestamp()))
    twice = np.where(whole, 2 * np.clip(np.rint(x), 1, 5), np.clip(np.rint(2 * x), 1, 10)).astype(np.int64)
    return u_local + first_user + 1, item, twice, ts


def _sample_pairs(rng: np.random.Generator, counts: np.ndarray, cdf: np.ndarray, log_pop: np.ndarray) -> np.ndarray:
    """Distinct movies for each user of a block, drawn by popularity; returns sorted keys user * m + movie.

    Light users draw with replacement from the popularity CDF and drop repeats, topping up until each has
    their count (fast, vectorised). Users who rate a large share of the catalog get an exact weighted
    draw without replacement (Gumbel top-k), which is O(movies) per user but they are few.
    """
    m = len(cdf)
    heavy = counts * 8 > m
    accepted = np.empty(0, np.int64)
    have = np.zeros(len(counts), np.int64)
    light_need = np.where(heavy, 0, counts)
    for _ in range(40):
        deficit = light_need - have
        if not deficit.any():
            break
        draws = np.where(deficit > 0, np.ceil(deficit * 1.3).astype(np.int64) + 2, 0)
        users = np.repeat(np.arange(len(counts), dtype=np.int64), draws)
        items = np.minimum(np.searchsorted(cdf, rng.random(len(users)) * cdf[-1], side="right"), m - 1)
        pool = np.concatenate([accepted, users * m + items])
        _, first = np.unique(pool, return_index=True)
        pool = pool[np.sort(first)]  # distinct, in draw order (already accepted ones come first)
        owner = pool // m
        order = np.argsort(owner, kind="stable")
        pool, owner = pool[order], owner[order]
        rank = np.arange(len(pool)) - np.searchsorted(owner, owner, side="left")
        accepted = pool[rank < light_need[owner]]
        have = np.bincount(accepted // m, minlength=len(counts))
    extra = []
    # Heavy users, and (rarely) light users still short after the rounds: exact draw over what is left.
    for user in np.flatnonzero(heavy | (have < light_need)):
        keys = log_pop + rng.gumbel(size=m)
        taken = accepted[(accepted // m) == user] - user * m
        keys[taken] = -np.inf
        need = int(counts[user] - len(taken))
        extra.append(user * m + np.argpartition(-keys, need - 1)[:need])
    return np.sort(np.concatenate([accepted, *extra]))


def _tag_block(
    rng: np.random.Generator,
    user_ids: np.ndarray,
    item: np.ndarray,
    _twice: np.ndarray,  # the ratings: unused, taggers tag whatever they rated
    ts: np.ndarray,
    *,
    force_tagger: bool,
    t_end: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(userId, movie index, tag index, timestamp) for the taggers of a block, sorted; tags go on movies
    the user rated, shortly after the rating, with 1-3 distinct tags per tagged movie."""
    first_user = int(user_ids[0]) if len(user_ids) else 0
    n_users = int(user_ids[-1]) - first_user + 1 if len(user_ids) else 0
    taggers = rng.random(n_users) < _TAGGER_SHARE
    if force_tagger and n_users:
        taggers[min(1, n_users - 1)] = True  # so that even the tiny dataset has tags
    rows = np.flatnonzero(taggers[user_ids - first_user] & (rng.random(len(user_ids)) < _TAG_RATE))
    per_movie = 1 + rng.binomial(2, 0.3, len(rows))
    rows = np.repeat(rows, per_movie)
    tag = np.minimum(np.searchsorted(_TAG_CDF, rng.random(len(rows)), side="right"), len(_TAGS) - 1)
    key = rows * len(_TAGS) + tag
    key = np.unique(key)  # distinct (rating row, tag); sorted by row = by user, movie
    rows, tag = key // len(_TAGS), key % len(_TAGS)
    tag_ts = np.minimum(ts[rows] + rng.integers(0, 3_600, len(rows)), t_end)
    return user_ids[rows], item[rows], tag, tag_ts


# --- writing --------------------------------------------------------------------------------------


def _ratings_text(
    movie_ids: np.ndarray, user_ids: np.ndarray, item: np.ndarray, twice: np.ndarray, ts: np.ndarray
) -> str:
    # An f-string per row is the fastest plain formatting here (~0.4 s per million rows, 3x pandas).
    stars = [_RATING_TEXT[v] for v in twice.tolist()]
    rows = zip(user_ids.tolist(), movie_ids[item].tolist(), stars, ts.tolist())
    return "".join([f"{u},{m},{r},{t}\n" for u, m, r, t in rows])


def _tags_text(movie_ids: np.ndarray, user_ids: np.ndarray, item: np.ndarray, tag: np.ndarray, ts: np.ndarray) -> str:
    fields = [_TAG_FIELDS[v] for v in tag.tolist()]
    rows = zip(user_ids.tolist(), movie_ids[item].tolist(), fields, ts.tolist())
    return "".join([f"{u},{m},{g},{t}\n" for u, m, g, t in rows])


def _csv_field(text: str) -> str:
    """A field as MovieLens (and csv.QUOTE_MINIMAL) writes it: quoted only if it must be."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


_TAG_FIELDS = [_csv_field(t) for t in _TAGS]


class _AtomicText:
    """A text file written under a temporary name and renamed into place on success only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.partial")

    def __enter__(self):
        self.file = open(self.tmp, "w", encoding="utf-8", newline="")
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        self.file.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _write_rows(path: Path, header: tuple[str, ...], rows) -> None:
    # csv's minimal quoting is MovieLens': quotes only around fields with a comma, quote or newline.
    with _AtomicText(path) as f:
        writer = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate a synthetic MovieLens-shaped dataset (CSV layout).")
    parser.add_argument("--size", choices=list(SIZES), default="small", help="preset (users, movies, ratings)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the four CSV files into")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(1996, 1, 1), help="first date")
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2023, 12, 31), help="last date")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows buffered per write")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    try:
        counts = generate_size(
            args.out, args.size, seed=args.seed, start=args.start, end=args.end, chunk_rows=args.chunk_rows
        )
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    rows = ", ".join(f"{counts[k]:,} {k}" for k in ("ratings", "movies", "tags", "links"))
    print(f"wrote {args.out}: {rows} (seed {counts['seed']}) in {time.perf_counter() - began:.1f} s", file=sys.stdout)


if __name__ == "__main__":
    main()
