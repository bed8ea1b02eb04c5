"""How believable are "similar movies" lists? Three sources compared on a real MovieLens release.

    .venv/bin/python bench/similar_quality.py --release ../shared/movielens/ml-latest-small [--seed 42] [--k 10]

Protocol: each user's ratings are split at random (seed) into 75% train and 25% held out. From train
only, every movie with a train rating gets its top-k most similar other movies from each source:

- ``als_cosine``: cosine of item factors of an explicit ALS (rank 20, ALS-WR regularisation 0.1 * n,
  12 iterations, ratings centred by the global mean): what the product serves today, approximately;
- ``ease_col`` / ``ease_sym``: EASE weights (binary train matrix, the 6,000 most-rated movies, reg 500);
  similarity of m to j is B[j, m] (how much j predicts m), or the symmetrised (B + B.T) / 2;
- ``item_knn``: cosine of the movie columns of the binary "liked" matrix (train rating >= ``--liked``, 3 by default).

Each source is also run with a minimum support s: a neighbour needs >= s train ratings (the query movie
may have any). Metrics over query movies with >= 20 train ratings, averaged over their top-k pairs (m, n):

- lift: share of m's train raters who rated n in held-out, over chance (|held-out raters of n| + 1) / |users|
  (the +1 guards against division by zero and slightly penalises neighbours nobody rated in held-out);
- hit share: the fraction of pairs where at least one of m's train raters rated n in held-out;
- genre Jaccard between m and n; the median train-rating count of the neighbours (list popularity).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

SUPPORTS = (1, 5, 10, 20, 50)
MIN_QUERY_RATINGS = 20
ALS_RANK, ALS_REG, ALS_ITERATIONS = 20, 0.1, 12
EASE_ITEMS, EASE_REG = 6000, 500.0
TOY_STORY = 1


def split(ratings: pd.DataFrame, seed: int, held_fraction: float = 0.25):
    """(train, held-out): a random held_fraction of each user's ratings is held out."""
    keyed = ratings.assign(key=np.random.default_rng(seed).random(len(ratings))).sort_values(["userId", "key"])
    position = keyed.groupby("userId").cumcount()
    size = keyed.groupby("userId")["movieId"].transform("size")
    held = position < np.round(held_fraction * size)
    return keyed[~held], keyed[held]


def als_item_factors(ratings: sparse.csr_matrix, seed: int) -> np.ndarray:
    """Explicit ALS-WR on centred ratings (users x movies): the movie factors."""
    rng = np.random.default_rng(seed)
    by_item = ratings.T.tocsr()
    users = rng.normal(0, 0.1, (ratings.shape[0], ALS_RANK))
    items = rng.normal(0, 0.1, (ratings.shape[1], ALS_RANK))
    for _ in range(ALS_ITERATIONS):
        users = solve_side(ratings, items)
        items = solve_side(by_item, users)
    return items


def solve_side(rows: sparse.csr_matrix, other: np.ndarray) -> np.ndarray:
    """Each row's least squares against the other side's factors, regularised by ALS_REG * its count."""
    out = np.zeros((rows.shape[0], other.shape[1]))
    eye = np.eye(other.shape[1])
    for row in range(rows.shape[0]):
        lo, hi = rows.indptr[row], rows.indptr[row + 1]
        if lo < hi:
            f = other[rows.indices[lo:hi]]
            out[row] = np.linalg.solve(f.T @ f + ALS_REG * (hi - lo) * eye, f.T @ rows.data[lo:hi])
    return out


def cosine_rows(vectors: np.ndarray):
    """Score function: cosine of the given rows' vectors with every vector."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.where(norms > 0, norms, 1)).astype(np.float32)
    return lambda rows: unit[rows] @ unit.T


def ease_rows(x: sparse.csr_matrix, counts: np.ndarray, symmetric: bool):
    """Score function from EASE weights over the EASE_ITEMS most-rated movies; -inf outside them."""
    from spark_jobs.top_n_model import ease_weights

    kept = np.sort(np.argsort(-counts, kind="stable")[:EASE_ITEMS])
    xk = x[:, kept]
    b = ease_weights((xk.T @ xk).toarray().astype(np.float64), EASE_REG)
    sim = (b + b.T) / 2 if symmetric else np.ascontiguousarray(b.T)  # row m: B[:, m]
    local = np.full(x.shape[1], -1)
    local[kept] = np.arange(len(kept))

    def score(rows):
        out = np.full((len(rows), x.shape[1]), -np.inf, dtype=np.float32)
        inside = local[rows] >= 0
        out[np.ix_(inside, kept)] = sim[local[rows[inside]]]
        return out

    return score


def knn_rows(liked: sparse.csr_matrix):
    """Score function: cosine of the movies' columns in the binary liked matrix."""
    by_item = liked.T.tocsr()
    norms = np.sqrt(np.asarray(liked.sum(axis=0)).ravel())
    inverse = np.where(norms > 0, 1 / np.maximum(norms, 1e-12), 0).astype(np.float32)
    return lambda rows: (by_item[rows] @ liked).toarray().astype(np.float32) * inverse[rows, None] * inverse


def top_neighbours(score, counts: np.ndarray, k: int, block: int = 1000) -> dict[int, np.ndarray]:
    """For each support s, every movie's top-k neighbours (movie indices; -1 where there are fewer)."""
    n = len(counts)
    lists = {s: np.full((n, k), -1) for s in SUPPORTS}
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        sim = score(rows)
        sim[np.arange(len(rows)), rows] = -np.inf  # never the movie itself
        for s in SUPPORTS:
            masked = np.where(counts[None, :] >= s, sim, -np.inf)
            part = np.argpartition(-masked, k, axis=1)[:, :k]
            values = np.take_along_axis(masked, part, axis=1)
            order = np.argsort(-values, axis=1, kind="stable")
            top = np.take_along_axis(part, order, axis=1)
            top[~np.isfinite(np.take_along_axis(values, order, axis=1))] = -1
            lists[s][rows] = top
    return lists


def evaluate(top: np.ndarray, queries: np.ndarray, co: np.ndarray, ctx: dict) -> dict:
    """Lift, hit share, genre Jaccard and neighbour popularity over the query movies' top-k pairs."""
    t = top[queries]
    valid = t >= 0
    has_list = valid.any(axis=1)
    tt = np.where(valid, t, 0)
    together = np.take_along_axis(co, tt, axis=1)  # m's train raters who rated n in held-out
    lift = together / ctx["counts"][queries, None] / ctx["chance"][tt]
    genres = ctx["genres"]
    inter = (genres[queries][:, None, :] & genres[tt]).sum(axis=2)
    union = genres[queries].sum(axis=1)[:, None] + genres[tt].sum(axis=2) - inter
    jaccard = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return {
        "queries": int(has_list.sum()),
        "lift": lift[valid].mean(),
        "hit": (together[valid] > 0).mean(),
        "jaccard": jaccard[valid].mean(),
        "median_count": np.median(ctx["counts"][t[valid]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, required=True, help="folder with ratings.csv and movies.csv")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--liked", type=float, default=3.0, help="item-kNN's liked threshold (rating >= this)")
    args = parser.parse_args()
    began = time.perf_counter()

    ratings = pd.read_csv(args.release / "ratings.csv", usecols=["userId", "movieId", "rating"])
    movies = pd.read_csv(args.release / "movies.csv").set_index("movieId")
    ratings = ratings[ratings["movieId"].isin(movies.index)]  # as bronze does: unknown movies are dropped
    train, held = split(ratings, args.seed)
    users = np.unique(ratings["userId"])
    items = np.unique(train["movieId"])  # every movie with a train rating
    u_tr, i_tr = np.searchsorted(users, train["userId"]), np.searchsorted(items, train["movieId"])
    shape = (len(users), len(items))
    x = sparse.csr_matrix((np.ones(len(train), np.float32), (u_tr, i_tr)), shape=shape)
    liked = sparse.csr_matrix(((train["rating"].to_numpy() >= args.liked).astype(np.float32), (u_tr, i_tr)), shape=shape)
    liked.eliminate_zeros()
    centred = sparse.csr_matrix((train["rating"].to_numpy() - train["rating"].mean(), (u_tr, i_tr)), shape=shape)
    held = held[held["movieId"].isin(items)]  # a movie without train ratings can't be a neighbour
    h = sparse.csr_matrix(
        (np.ones(len(held), np.float32), (np.searchsorted(users, held["userId"]), np.searchsorted(items, held["movieId"]))),
        shape=shape,
    )
    counts = np.asarray(x.sum(axis=0)).ravel().astype(int)
    queries = np.flatnonzero(counts >= MIN_QUERY_RATINGS)
    genre_sets = movies.loc[items, "genres"].str.split("|").map(lambda g: set(g) - {"(no genres listed)"})
    vocabulary = sorted(set().union(*genre_sets))
    ctx = {
        "counts": counts,
        "chance": (np.asarray(h.sum(axis=0)).ravel() + 1) / len(users),
        "genres": np.array([[g in s for g in vocabulary] for s in genre_sets], dtype=bool),
    }
    co = (x[:, queries].T @ h).toarray()  # query x movie: train raters of m who rated n in held-out
    print(f"{len(users)} users, {len(train)} train / {len(held)} held-out ratings, {len(items)} movies, "
          f"{len(queries)} query movies (>= {MIN_QUERY_RATINGS} train ratings)\n")

    sources = {
        "als_cosine": lambda: cosine_rows(als_item_factors(centred, args.seed)),
        "ease_col": lambda: ease_rows(x, counts, symmetric=False),
        "ease_sym": lambda: ease_rows(x, counts, symmetric=True),
        "item_knn": lambda: knn_rows(liked),
    }
    rows, timings, toy = [], {}, {}
    toy_index = int(np.searchsorted(items, TOY_STORY))
    for name, build in sources.items():
        start = time.perf_counter()
        lists = top_neighbours(build(), counts, args.k)
        timings[name] = time.perf_counter() - start
        results = {s: evaluate(lists[s], queries, co, ctx) for s in SUPPORTS}
        rows += [(name, s, r) for s, r in results.items()]
        best = max(SUPPORTS, key=lambda s: results[s]["lift"])
        toy[name] = best, {s: [movies.at[items[i], "title"] for i in lists[s][toy_index] if i >= 0] for s in (1, best)}

    print("| source | min support | query movies | lift@10 | hit share | genre Jaccard | median neighbour ratings |")
    print("|---|---|---|---|---|---|---|")
    for name, s, r in rows:
        print(f"| {name} | {s} | {r['queries']} | {r['lift']:.2f} | {r['hit']:.3f} | {r['jaccard']:.3f} | "
              f"{r['median_count']:.0f} |")
    print("\nSeconds per source (fit + top-k lists for every movie at every support):")
    print(", ".join(f"{name} {t:.1f}" for name, t in timings.items()))
    for name, (best, by_support) in toy.items():
        for s, titles in by_support.items():
            print(f"\nToy Story, {name}, s={s}{' (best lift)' if s == best else ''}:")
            print("  " + "; ".join(titles))
    print(f"\nTotal {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
