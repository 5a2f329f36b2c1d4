"""The low-rank plus sparse scoring graph: parity, contributions, exclusion, operators."""

from __future__ import annotations

import numpy as np

from client_sdk.scoring import Scorer
from model_export.export import LowRankSparseModel, build_graph
from model_export.graph import ALLOWED_OPS
from model_export.parity import check_parity
from model_export.quantize import quantize_rows


def _model(n: int = 200, d: int = 8, m: int = 6, seed: int = 0) -> LowRankSparseModel:
    rng = np.random.default_rng(seed)
    factors = rng.normal(0.0, 0.3, size=(n, d)).astype(np.float32)
    index = np.stack([rng.choice(n, size=m, replace=False) for _ in range(n)]).astype(np.int64)
    weight = rng.normal(0.0, 0.2, size=(n, m)).astype(np.float32)  # either sign
    base = (rng.random(n) * 1e-3).astype(np.float32)
    return LowRankSparseModel(tuple(f"i{i}" for i in range(n)), factors, index, weight, base)


def _histories(n: int, count: int, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        h = rng.choice(n, size=int(rng.integers(1, 25)), replace=False).astype(np.int64)
        out.append((h, rng.choice([0.25, 0.5, 1.0], size=h.size).astype(np.float32)))
    return out


def test_hybrid_graph_matches_the_float_reference() -> None:
    model = _model()
    model_bytes, facts = build_graph(model)
    assert facts == {"kind": "low-rank+sparse", "rank": 8, "neighbors_per_item": 6}
    report = check_parity(
        model.reference_scores, Scorer(model_bytes, 200), _histories(200, 40), atol=1e-1
    )
    assert report.mean_top_k_overlap >= 0.9


def test_hybrid_scores_and_contributions_add_both_parts() -> None:
    """The graph's scores are the two parts' sum (up to int8 steps), and each result's
    contributions add up to its score minus its base."""
    n = 6
    factors = np.zeros((n, 2), np.float32)
    factors[:, 0] = [1.0, 1.0, 0.5, 0.0, 0.0, 0.0]
    index = np.array([[3, 4], [4, 1], [2, 2], [3, 3], [4, 4], [5, 5]], np.int64)
    weight = np.array([[2.0, -1.0], [1.0, 0.0], [0, 0], [0, 0], [0, 0], [0, 0]], np.float32)
    base = np.array([0, 0, 0, 0, 0, 0.25], np.float32)
    model = LowRankSparseModel(tuple("abcdef"), factors, index, weight, base)
    history = np.array([0, 1], np.int64)
    x = np.array([1.0, 0.5], np.float32)
    # Low-rank: u = 1 * A_0 + 0.5 * A_1 = (1.5, 0): scores 1.5, 1.5, 0.75, 0, 0, 0.
    # Sparse: item 3 gets +2, item 4 gets -1 + 0.5; item 1 gets +0 (weight 0).
    expected = np.array([1.5, 1.5, 0.75, 2.0, -0.5, 0.25], np.float32)
    np.testing.assert_allclose(model.reference_scores(history, x), expected, atol=1e-6)
    # int8 per row: each weight within half a step (1/127 of its row's largest) of its value.
    assert np.abs(quantize_rows(weight).dequantize() - weight).max() <= 2.0 / 254 + 1e-6
    model_bytes, _ = build_graph(model)
    result = Scorer(model_bytes, n).score(history, x, exclude=history, k=4)
    assert result.indices.tolist() == [3, 2, 5, 4]
    np.testing.assert_allclose(result.scores, [2.0, 0.75, 0.25, -0.5], atol=0.02)
    np.testing.assert_allclose(
        result.contributions.sum(axis=1), result.scores - base[result.indices], atol=0.02
    )
    # Item 3: the sparse weight of history item 0 only (x_0 * 2); the low-rank part gives 0.
    np.testing.assert_allclose(result.contributions[0], [2.0, 0.0], atol=0.02)


def test_hybrid_graph_uses_only_allowed_operators() -> None:
    import onnx

    model_bytes, _ = build_graph(_model(n=50))
    graph = onnx.load_from_string(model_bytes)
    assert {node.op_type for node in graph.graph.node} <= ALLOWED_OPS
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in graph.graph.initializer)
