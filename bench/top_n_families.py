"""How far standard top-N model families get on a MovieLens folder under the project's protocol.

    .venv/bin/python bench/top_n_families.py [--dir DIR] [--max-items N] [--min-user-ratings 20]

The question it answers: is the top-N target (NDCG@10 >= 0.48, precision@10 >= 0.42) out of reach of
the product's model on this data, or of every model of its kind? The split is the product's own
(``spark_jobs.evaluation.split``: stratified by movie, 75/25, seed 42) and so are the metrics
(``spark_jobs.common.ranking.user_metrics``); the models are computed here with numpy on the whole
user x movie matrix, which is fine at ml-latest-small size. Each family's grid is scored on the
validation split of the training part (seed 43, as the product tunes); the table gives the test
metrics of the configuration validation chose, and the best test NDCG of the grid (an optimistic
upper bound: it peeks at the test set).

``--max-items N`` keeps the N most-rated movies and then the users with at least ``--min-user-ratings``
of them: with N = 1682 this gives ml-100k's catalogue size and density, an approximation of the data
the public reference table was measured on.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spark_jobs.common import ranking  # noqa: E402
from spark_jobs.top_n_model import _transpose, solve_rows  # noqa: E402

K = 10


def load(folder: Path, max_items: int | None, min_user_ratings: int):
    import pandas as pd

    ratings = pd.read_csv(folder / "ratings.csv", usecols=["userId", "movieId", "rating"])
    # As bronze does: a rating of a movie missing from movies.csv is not kept.
    ratings = ratings[ratings["movieId"].isin(pd.read_csv(folder / "movies.csv", usecols=["movieId"])["movieId"])]
    if max_items:
        top = ratings["movieId"].value_counts().sort_index().sort_values(ascending=False, kind="stable").head(max_items)
        ratings = ratings[ratings["movieId"].isin(top.index)]
        per_user = ratings.groupby("userId")["movieId"].transform("size")
        ratings = ratings[per_user >= min_user_ratings]
    return ratings


def splits(ratings, seed: int, test_fraction: float):
    """(train, test, validation train, validation test) as pandas frames, by the product's split."""
    from spark_jobs import evaluation
    from spark_jobs.common import session

    spark = session.get_session("bench-top-n-families")
    frame = spark.createDataFrame(ratings.astype({"userId": "int32", "movieId": "int32", "rating": "float64"}))
    train, test = evaluation.split(frame, test_fraction, seed)
    train = train.cache()
    vtrain, vtest = evaluation.split(train, test_fraction, seed + 1)
    out = [df.toPandas() for df in (train, test, vtrain, vtest)]
    spark.stop()
    return out


class Problem:
    """The binary user x movie matrix of a training part and each user's held-out movies."""

    def __init__(self, train, test):
        self.users = np.unique(np.concatenate([train["userId"], test["userId"]]))
        self.items = np.unique(train["movieId"])
        self.x = np.zeros((len(self.users), len(self.items)))
        self.x[np.searchsorted(self.users, train["userId"]), np.searchsorted(self.items, train["movieId"])] = 1.0
        self.relevant = test.groupby("userId")["movieId"].apply(list).to_dict()
        self.gram = self.x.T @ self.x
        self.user_rows = [np.flatnonzero(row) for row in self.x]
        self.item_rows = _transpose(self.user_rows, len(self.items))

    def metrics(self, scores: np.ndarray) -> dict[str, float]:
        scores = np.where(self.x > 0, -np.inf, scores).astype(np.float32)
        top, _ = ranking.top_k_dense(scores, K)
        ids = np.where(top >= 0, self.items[np.maximum(top, 0)], -1)
        rows = [ranking.user_metrics(ids[row].tolist(), self.relevant[user], K)
                for row, user in enumerate(self.users) if user in self.relevant]
        names = ranking.metric_names(K)
        return {names[name]: math.fsum(r[name] for r in rows) / len(rows) for name in names}


def zscore(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return scores / np.where(std > 0, std, 1.0)


def ease(p: Problem, reg: float, dropout: float = 0.0) -> np.ndarray:
    """EASE (dropout 0) or DLAE (Steck 2020: diagonal penalty dropout/(1-dropout) * diag(G) + reg)."""
    g = p.gram.copy()
    g[np.diag_indices_from(g)] += reg + dropout / (1.0 - dropout) * np.diag(p.gram)
    if dropout:
        return p.x @ np.linalg.solve(g, p.gram)
    inv = np.linalg.inv(g)
    b = inv / -np.diag(inv)[None, :]
    np.fill_diagonal(b, 0.0)
    return p.x @ b


def rp3beta(p: Problem, alpha: float, beta: float) -> np.ndarray:
    """RP3beta (Paudel et al. 2017): two-step random walk item -> user -> item, popularity damped."""
    pui = p.x / np.maximum(p.x.sum(axis=1, keepdims=True), 1.0)
    piu = (p.x / np.maximum(p.x.sum(axis=0, keepdims=True), 1.0)).T
    w = (piu ** alpha) @ (pui ** alpha) / np.maximum(p.x.sum(axis=0), 1.0)[None, :] ** beta
    np.fill_diagonal(w, 0.0)
    return p.x @ w


def user_knn(p: Problem, neighbours: int) -> np.ndarray:
    norms = np.sqrt(np.maximum(p.x.sum(axis=1), 1.0))
    sim = (p.x @ p.x.T) / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    cut = -np.sort(-sim, axis=1)[:, neighbours - 1: neighbours]
    return np.where(sim >= cut, sim, 0.0) @ p.x


def ials(p: Problem, rank: int, reg: float, alpha: float, iterations: int = 8, seed: int = 42) -> np.ndarray:
    """The product's iALS solver (``top_n_model.solve_rows``) on the whole matrix."""
    items = (np.random.default_rng(seed).standard_normal((len(p.items), rank)) * 0.01).astype(np.float32)
    for _ in range(iterations):
        y = items.astype(np.float64)
        users = solve_rows(p.user_rows, y, y.T @ y, reg, alpha)
        y = users.astype(np.float64)
        items = solve_rows(p.item_rows, y, y.T @ y, reg, alpha)
    return users.astype(np.float64) @ items.T.astype(np.float64)


FAMILIES = {
    "popularity": [({}, lambda p: np.tile(p.x.sum(axis=0), (len(p.users), 1)))],
    "EASE": [({"reg": r}, lambda p, r=r: ease(p, r)) for r in (100, 200, 400, 800)],
    "DLAE": [({"dropout": d, "reg": r}, lambda p, d=d, r=r: ease(p, r, d))
             for d in (0.1, 0.25) for r in (200, 800)],
    "RP3beta": [({"alpha": a, "beta": b}, lambda p, a=a, b=b: rp3beta(p, a, b))
                for a in (0.5, 1.0) for b in (0.3, 0.5, 0.7)],
    "user kNN (cosine)": [({"k": n}, lambda p, n=n: user_knn(p, n)) for n in (25, 50, 100, 200)],
    "iALS": [({"rank": r, "reg": g, "alpha": a}, lambda p, r=r, g=g, a=a: ials(p, r, g, a))
             for r, g, a in ((32, 0.3, 2), (64, 0.3, 2), (128, 0.3, 2), (32, 0.1, 2), (32, 0.3, 10), (64, 1.0, 10))],
}


def run_family(name, grid, validation: Problem, test: Problem):
    started = time.monotonic()
    scored = []
    for params, model in grid:
        scored.append((params, validation.metrics(model(validation)), test.metrics(model(test))))
        print(f"    {name} {params}: validation NDCG@10 {scored[-1][1]['ndcg_at_10']:.4f}, "
              f"test NDCG@10 {scored[-1][2]['ndcg_at_10']:.4f}, P@10 {scored[-1][2]['precision_at_10']:.4f}", flush=True)
    chosen = max(scored, key=lambda s: (s[1]["ndcg_at_10"], s[1]["precision_at_10"]))
    best = max(scored, key=lambda s: s[2]["ndcg_at_10"])
    return {"family": name, "chosen": chosen[0], "validation_ndcg": chosen[1]["ndcg_at_10"], "test": chosen[2],
            "best_test_ndcg": best[2]["ndcg_at_10"], "best_params": best[0], "configs": len(grid),
            "seconds": time.monotonic() - started}


def blend_grid(ease_reg: float, ials_params: dict):
    """The product's model: z(EASE) + w z(iALS), over w; the two parts are computed once per problem."""
    parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def part(p: Problem) -> tuple[np.ndarray, np.ndarray]:
        if id(p) not in parts:
            parts[id(p)] = (zscore(ease(p, ease_reg)), zscore(ials(p, **ials_params)))
        return parts[id(p)]

    return [({"ease_reg": ease_reg, **ials_params, "w": w}, lambda p, w=w: part(p)[0] + w * part(p)[1])
            for w in (0.25, 0.5, 1.0, 2.0)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT.parent / "shared" / "movielens" / "ml-latest-small")
    parser.add_argument("--max-items", type=int, default=None)
    parser.add_argument("--min-user-ratings", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    args = parser.parse_args(argv)

    ratings = load(args.dir, args.max_items, args.min_user_ratings)
    train, test, vtrain, vtest = splits(ratings, args.seed, args.test_fraction)
    test_problem, validation_problem = Problem(train, test), Problem(vtrain, vtest)
    print(f"data: {args.dir.name}, {len(ratings):,} ratings, {ratings['userId'].nunique():,} users, "
          f"{ratings['movieId'].nunique():,} movies (max items {args.max_items}); train {len(train):,}, "
          f"test {len(test):,}; validation train {len(vtrain):,}, validation test {len(vtest):,}", flush=True)
    results = []
    for name in args.families:
        results.append(run_family(name, FAMILIES[name], validation_problem, test_problem))
        r = results[-1]
        print(f"  {name}: test NDCG@10 {r['test']['ndcg_at_10']:.4f} ({r['chosen']}), {r['seconds']:.0f} s", flush=True)
    by_name = {r["family"]: r for r in results}
    if "EASE" in by_name and "iALS" in by_name:
        grid = blend_grid(by_name["EASE"]["chosen"]["reg"], by_name["iALS"]["chosen"])
        results.append(run_family("EASE + iALS blend (the product's kind)", grid, validation_problem, test_problem))
    print("\n| family | chosen on validation | P@10 | R@10 | NDCG@10 | MAP@10 | HR@10 | best test NDCG@10 of the grid |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        t = r["test"]
        print(f"| {r['family']} | {r['chosen']} | {t['precision_at_10']:.4f} | {t['recall_at_10']:.4f} | "
              f"**{t['ndcg_at_10']:.4f}** | {t['map_at_10']:.4f} | {t['hit_rate_at_10']:.4f} | "
              f"{r['best_test_ndcg']:.4f} ({r['best_params']}) |")


if __name__ == "__main__":
    main()
