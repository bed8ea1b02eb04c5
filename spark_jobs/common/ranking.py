"""Top-k scoring from factor matrices and ranking metrics, as plain numpy/Python functions.

Scoring is a blocked matrix product: users are processed in blocks, each block's scores against every
item are one ``U_block @ I.T``, already-seen items are masked, and ``argpartition`` keeps the top k.
Memory per block is bounded by ``max_cells`` floats whatever the catalogue size.

Metrics follow the usual offline top-N protocol (binary relevance: every held-out item of a user is
relevant): precision@k = hits/k, recall@k = hits/|relevant|, NDCG@k with gains 1/log2(rank+1)
normalised by the ideal ordering of min(|relevant|, k) hits, MAP@k = sum of precision at each hit
rank / min(|relevant|, k), hit rate@k = 1 if any hit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np




def top_k_block(
    user_vectors: np.ndarray,
    item_ids: np.ndarray,
    item_vectors: np.ndarray,
    seen: Sequence[Sequence[int] | None],
    k: int,
    max_cells: int = 8_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (item ids, scores) per user row, excluding each user's ``seen`` item ids.

    ``item_ids`` must be sorted ascending (so seen ids map to columns by binary search).
    Rows with fewer than k unseen items are padded with id -1 and score -inf.
    """
    n_users, n_items = user_vectors.shape[0], item_ids.shape[0]
    k_eff = min(k, n_items)
    out_ids = np.full((n_users, k), -1, dtype=np.int64)
    out_scores = np.full((n_users, k), -np.inf, dtype=np.float32)
    if n_users == 0 or n_items == 0:
        return out_ids, out_scores
    block = max(1, max_cells // n_items)
    for start in range(0, n_users, block):
        stop = min(n_users, start + block)
        scores = (user_vectors[start:stop] @ item_vectors.T).astype(np.float32, copy=False)
        for row, seen_ids in enumerate(seen[start:stop]):
            if seen_ids is not None and len(seen_ids):
                ids = np.asarray(seen_ids, dtype=np.int64)
                cols = np.searchsorted(item_ids, ids)
                inside = cols < n_items
                cols, ids = cols[inside], ids[inside]
                cols = cols[item_ids[cols] == ids]  # seen items absent from the catalogue are ignored
                scores[row, cols] = -np.inf
        top, top_scores = top_k_dense(scores, k_eff)
        ids = np.where(top >= 0, item_ids[np.maximum(top, 0)], -1)
        out_ids[start:stop, :k_eff] = ids
        out_scores[start:stop, :k_eff] = top_scores
    return out_ids, out_scores


def top_k_dense(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of each row's k largest finite scores, best first (-1 / -inf if fewer)."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    top[~np.isfinite(top_scores)] = -1
    return top, top_scores


def recommendation_frame(user_ids: np.ndarray, top_ids: np.ndarray, top_scores: np.ndarray):
    """pandas rows (userId, rank, movieId, score) from per-user top-k arrays; padding (id -1) dropped."""
    import pandas as pd

    n, k = top_ids.shape
    frame = pd.DataFrame(
        {
            "userId": np.repeat(np.asarray(user_ids), k).astype("int32"),
            "rank": np.tile(np.arange(1, k + 1, dtype="int32"), n),
            "movieId": top_ids.reshape(-1).astype("int64"),
            "score": top_scores.reshape(-1).astype("float32"),
        }
    )
    frame = frame[frame["movieId"] >= 0]
    frame["movieId"] = frame["movieId"].astype("int32")
    return frame


def top_k_same_order(
    ranked_ids: np.ndarray, ranked_scores: np.ndarray, seen: Sequence[Sequence[int] | None], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k unseen items per user when every user shares one ranking (the popularity baseline).

    ``ranked_ids`` is the catalogue best first. A user's list is the first k of the first k + |seen|
    items that they have not seen: O(k + |seen|) per user instead of a score per (user, item).
    """
    n_users = len(seen)
    out_ids = np.full((n_users, k), -1, dtype=np.int64)
    out_scores = np.full((n_users, k), -np.inf, dtype=np.float32)
    for row, seen_ids in enumerate(seen):
        window = k + (len(seen_ids) if seen_ids is not None else 0)
        candidates = ranked_ids[:window]
        keep = ~np.isin(candidates, np.asarray(seen_ids if seen_ids is not None else [], dtype=np.int64))
        chosen = np.flatnonzero(keep)[:k]
        out_ids[row, : len(chosen)] = candidates[chosen]
        out_scores[row, : len(chosen)] = ranked_scores[:window][chosen]
    return out_ids, out_scores


def user_metrics(recommended: Sequence[int], relevant: Iterable[int], k: int) -> dict[str, float]:
    """Ranking metrics of one user's recommendation list against the held-out relevant items."""
    relevant = set(relevant)
    if not relevant:
        raise ValueError("a user with no relevant item cannot be evaluated")
    recs = [r for r in recommended[:k] if r is not None and r >= 0]
    hits = 0
    dcg = 0.0
    precision_sum = 0.0
    for rank, item in enumerate(recs, start=1):
        if item in relevant:
            hits += 1
            dcg += 1.0 / math.log2(rank + 1)
            precision_sum += hits / rank
    ideal = min(len(relevant), k)
    idcg = sum(1.0 / math.log2(rank + 1) for rank in range(1, ideal + 1))
    return {
        "precision_at_k": hits / k,
        "recall_at_k": hits / len(relevant),
        "ndcg_at_k": dcg / idcg,
        "map_at_k": precision_sum / ideal,
        "hit_rate_at_k": 1.0 if hits else 0.0,
    }


def metric_names(k: int) -> dict[str, str]:
    """Generic metric keys -> the run summary's names for this k (``precision_at_10`` ...)."""
    return {
        name: name.replace("_at_k", f"_at_{k}")
        for name in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k")
    }
