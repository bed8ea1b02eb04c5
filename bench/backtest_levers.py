"""What might lift the next-day backtest (issue 14's target: served NDCG@10 >= 2x popularity on every date),
measured offline on the replay split of a MovieLens release, with the product's own pieces: the replay's
drops (``movielens.ingest.replay.assign_drops``), EASE's closed form (``spark_jobs.top_n_model.ease_weights``)
and the per-user metrics (``spark_jobs.common.ranking.user_metrics``), numpy on the driver, no Spark.

For each later date D: history = the drops before D, relevant = D's new (user, movie) pairs; every user with
new pairs gets a list of 10 movies they had not rated. Lists compared:

- ``popularity``: the most-rated movies of the history (the backtest's baseline);
- ``recent_<days>``: the most-rated movies among the ratings of the last <days> days of the history;
- ``ease``: EASE (binary, the most-rated ``--max-items`` movies) for the users it knows, the fallback for others;
- ``ease+recent``: EASE's per-user z-scores plus ``--beta`` times the z-score of the recent counts.

Each list's fallback for users with no history is named after the ``+``. The ratios are to ``popularity`` over
all users with new ratings (the target's measure) and over known users.

    .venv/bin/python bench/backtest_levers.py --release ../shared/movielens/ml-latest-small
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from movielens.ingest.replay import assign_drops  # noqa: E402
from spark_jobs.common.ranking import user_metrics  # noqa: E402
from spark_jobs.top_n_model import ease_weights  # noqa: E402

K = 10
DAY = 86400


def zscore(a: np.ndarray) -> np.ndarray:
    sd = a.std(axis=-1, keepdims=True)
    return (a - a.mean(axis=-1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def top_unseen(scores: np.ndarray, seen: set[int], items: np.ndarray) -> list[int]:
    order = np.argsort(-scores, kind="stable")
    out = []
    for i in order:
        movie = int(items[i])
        if movie not in seen:
            out.append(movie)
            if len(out) == K:
                break
    return out


def ndcg(lists: dict[int, list[int]], relevant: dict[int, set[int]], users) -> float:
    return float(np.mean([user_metrics(lists[u], relevant[u], K)["ndcg_at_k"] for u in users]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, required=True, help="a MovieLens folder with ratings.csv")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--new-share", type=float, default=0.1)
    parser.add_argument("--ease-reg", type=float, default=500.0)
    parser.add_argument("--max-items", type=int, default=6000)
    parser.add_argument("--recent-days", type=int, nargs="+", default=[30, 90, 365])
    parser.add_argument("--beta", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    args = parser.parse_args()

    ratings = pd.read_csv(args.release / "ratings.csv")
    ratings["drop"] = np.frombuffer(bytes(assign_drops(ratings["timestamp"].tolist(), args.days, args.new_share)), np.uint8)
    print(f"{len(ratings):,} ratings of {args.release.name}; drops {np.bincount(ratings['drop']).tolist()}")
    rows = []
    for d in range(1, args.days):
        started = time.monotonic()
        history, today = ratings[ratings["drop"] < d], ratings[ratings["drop"] == d]
        seen = history.groupby("userId")["movieId"].agg(set).to_dict()
        new = today[[m not in seen.get(u, ()) for u, m in zip(today["userId"], today["movieId"])]]
        relevant = new.groupby("userId")["movieId"].agg(set).to_dict()
        users = sorted(relevant)
        known = [u for u in users if u in seen]
        counts = history["movieId"].value_counts()
        items = counts.index.to_numpy()[: args.max_items]
        col = {m: j for j, m in enumerate(items)}
        end = history["timestamp"].max()

        def counts_over(frame: pd.DataFrame) -> np.ndarray:
            c = frame["movieId"].value_counts()
            return c.reindex(items, fill_value=0).to_numpy(np.float64)

        signals = {"popularity": counts_over(history)}
        for days in args.recent_days:
            recent = counts_over(history[history["timestamp"] > end - days * DAY])
            signals[f"recent_{days}"] = recent + 1e-6 * signals["popularity"]  # ties: all-time counts
        lists: dict[str, dict[int, list[int]]] = {
            name: {u: top_unseen(s, seen.get(u, set()), items) for u in users} for name, s in signals.items()}

        x = np.zeros((len(known), len(items)), np.float32)
        for r, u in enumerate(known):
            x[r, [col[m] for m in seen[u] if m in col]] = 1.0
        b = ease_weights((x.T @ x).astype(np.float64), args.ease_reg)
        ease = zscore(x @ b)
        for fallback in ["popularity", *(f"recent_{days}" for days in args.recent_days)]:
            name = f"ease+{fallback}"
            lists[name] = {**lists[fallback], **{u: top_unseen(ease[r], seen[u], items) for r, u in enumerate(known)}}
        for days in args.recent_days:
            boost = zscore(np.log1p(signals[f"recent_{days}"]))
            for beta in args.beta:
                name = f"ease_recent{days}_b{beta}+recent_{days}"
                mixed = ease + beta * boost[None, :]
                lists[name] = {**lists[f"recent_{days}"],
                               **{u: top_unseen(mixed[r], seen[u], items) for r, u in enumerate(known)}}
        base_all, base_known = ndcg(lists["popularity"], relevant, users), ndcg(lists["popularity"], relevant, known)
        for name, got in lists.items():
            all_users, known_users = ndcg(got, relevant, users), ndcg(got, relevant, known)
            rows.append({"date": d, "list": name, "users": len(users), "known": len(known), "ndcg": all_users,
                         "ratio": all_users / base_all if base_all else float("nan"), "ndcg_known": known_users,
                         "ratio_known": known_users / base_known if base_known else float("nan")})
        print(f"date {d}: {len(users)} users ({len(known)} known), {len(new):,} new pairs, {time.monotonic() - started:.1f} s",
              flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    wide = table.pivot(index="list", columns="date", values="ratio").round(2)
    wide["min"] = wide.min(axis=1)
    print("\nNDCG@10 over every user with new ratings, as a multiple of popularity's (per date, and the worst):")
    print(wide.sort_values("min", ascending=False).to_string())
    wide_known = table.pivot(index="list", columns="date", values="ratio_known").round(2)
    wide_known["min"] = wide_known.min(axis=1)
    print("\nThe same over the users the history knows:")
    print(wide_known.sort_values("min", ascending=False).to_string())
    print("\nNDCG@10 of popularity, all users / known users:",
          table[table["list"] == "popularity"][["date", "ndcg", "ndcg_known"]].round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
