"""Top-k scoring and ranking metrics (numpy/Python, used inside the Spark job)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spark_jobs.common.ranking import metric_names, top_k_block, top_k_same_order, user_metrics


def test_top_k_excludes_seen_and_orders_by_score():
    item_ids = np.array([10, 20, 30, 40])
    items = np.array([[1.0], [4.0], [3.0], [2.0]])
    users = np.array([[1.0], [-1.0]])
    ids, scores = top_k_block(users, item_ids, items, [[20], None], k=2)
    assert ids.tolist() == [[30, 40], [10, 40]]
    assert scores[0].tolist() == [3.0, 2.0]


def test_top_k_pads_when_few_unseen_items_and_ignores_unknown_seen():
    ids, scores = top_k_block(np.ones((1, 1)), np.array([1, 2]), np.ones((2, 1)), [[1, 999]], k=3)
    assert ids.tolist() == [[2, -1, -1]]
    assert np.isneginf(scores[0, 1:]).all()


def test_blocked_result_equals_single_block():
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(50, 4)), rng.normal(size=(30, 4))
    item_ids = np.arange(100, 130)
    seen = [list(rng.choice(item_ids, 5, replace=False)) for _ in range(50)]
    one = top_k_block(users, item_ids, items, seen, 5, max_cells=10**9)
    many = top_k_block(users, item_ids, items, seen, 5, max_cells=31)  # one user per block
    assert (one[0] == many[0]).all()
    brute = [sorted(set(item_ids) - set(s), key=lambda i: -(users[u] @ items[i - 100]))[:5] for u, s in enumerate(seen)]
    assert one[0].tolist() == brute


def test_user_metrics_by_hand():
    m = user_metrics([1, 2, 3, 4], {2, 4, 9}, k=4)
    assert m["precision_at_k"] == pytest.approx(2 / 4)
    assert m["recall_at_k"] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg_at_k"] == pytest.approx(dcg / idcg)
    assert m["map_at_k"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert m["hit_rate_at_k"] == 1.0


def test_perfect_and_empty_lists():
    assert user_metrics([5, 6], {5, 6}, k=2)["ndcg_at_k"] == pytest.approx(1.0)
    assert user_metrics([], {5}, k=10)["precision_at_k"] == 0.0
    with pytest.raises(ValueError):
        user_metrics([1], set(), k=10)


def test_metric_names_follow_the_summary_contract():
    assert set(metric_names(10).values()) >= {"precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10"}


def test_shared_ranking_equals_the_matrix_product_with_one_factor():
    rng = np.random.default_rng(3)
    item_ids = np.arange(1, 201)
    counts = rng.permutation(200).astype(np.float64) + 1  # distinct scores: one right answer
    seen = [rng.choice(item_ids, size=int(n), replace=False).tolist() for n in rng.integers(0, 150, size=40)] + [None, item_ids.tolist()]
    expected_ids, expected_scores = top_k_block(np.ones((len(seen), 1)), item_ids, counts[:, None], seen, k=10)
    order = np.argsort(-counts, kind="stable")
    ids, scores = top_k_same_order(item_ids[order], counts[order].astype(np.float32), seen, k=10)
    assert ids.tolist() == expected_ids.tolist()
    assert np.array_equal(scores, expected_scores)
    assert (ids[-1] == -1).all(), "a user who has seen everything gets nothing"
