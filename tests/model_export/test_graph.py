"""The scoring graph: checker, allow-list, parity with numpy, contributions, exclusion."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from client_sdk.scoring import Scorer
from model_export.errors import ExportError, ParityError
from model_export.export import SparseItemModel
from model_export.graph import ALLOWED_OPS, build_sparse_scoring_graph, check_graph
from model_export.parity import check_parity
from model_export.quantize import quantize_rows


def _random_model(n: int = 300, m: int = 12, seed: int = 0) -> SparseItemModel:
    rng = np.random.default_rng(seed)
    index = np.stack([rng.choice(n, size=m, replace=False) for _ in range(n)]).astype(np.int64)
    weight = rng.gamma(1.0, 0.1, size=(n, m)).astype(np.float32)
    base = (rng.random(n) * 1e-4).astype(np.float32)
    return SparseItemModel(tuple(f"i{i}" for i in range(n)), index, weight, base)


def _histories(n: int, count: int, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        h = rng.choice(n, size=int(rng.integers(1, 30)), replace=False).astype(np.int64)
        out.append((h, rng.choice([0.25, 0.5, 1.0], size=h.size).astype(np.float32)))
    return out


def test_quantised_graph_matches_the_float_reference() -> None:
    model = _random_model()
    q = quantize_rows(model.neighbor_weight)
    graph = build_sparse_scoring_graph(model.neighbor_index, q, model.base_score)
    scorer = Scorer(graph.SerializeToString(), 300)
    report = check_parity(model.reference_scores, scorer, _histories(300, 50), k=20)
    assert report.max_abs_diff < 1e-2
    assert report.mean_top_k_overlap > 0.95


def test_graph_scores_equal_the_dequantised_weights_exactly() -> None:
    model = _random_model(n=50, m=5)
    q = quantize_rows(model.neighbor_weight)
    graph = build_sparse_scoring_graph(model.neighbor_index, q, model.base_score)
    scorer = Scorer(graph.SerializeToString(), 50)
    history = np.array([3, 17, 20], np.int64)
    weights = np.array([1.0, 0.5, 0.25], np.float32)
    expected = model.base_score.copy()
    deq = q.dequantize()
    for h, w in zip(history, weights, strict=True):
        np.add.at(expected, model.neighbor_index[h], deq[h] * w)
    expected[history] = -np.inf
    result = scorer.score(history, weights, exclude=history, k=10)
    np.testing.assert_allclose(result.scores, np.sort(expected)[::-1][:10], rtol=1e-5)
    # contributions: each row sums to the score minus the base prior.
    np.testing.assert_allclose(
        result.contributions.sum(axis=1) + model.base_score[result.indices],
        result.scores,
        rtol=1e-5,
    )


def test_excluded_items_never_come_back_and_k_valid_results_remain() -> None:
    model = _random_model(n=40, m=5)
    graph = build_sparse_scoring_graph(
        model.neighbor_index, quantize_rows(model.neighbor_weight), model.base_score
    )
    scorer = Scorer(graph.SerializeToString(), 40)
    excluded = np.arange(0, 40, 2, dtype=np.int64)
    result = scorer.score(np.array([1], np.int64), np.ones(1, np.float32), exclude=excluded, k=20)
    assert result.indices.size == 20
    assert not set(result.indices.tolist()) & set(excluded.tolist())
    result = scorer.score(np.array([1], np.int64), np.ones(1, np.float32), exclude=excluded, k=40)
    assert result.indices.size == 20  # only 20 items are left to recommend


def test_parity_check_fails_a_drifted_model() -> None:
    model = _random_model()
    q = quantize_rows(model.neighbor_weight * 1.5)  # a wrong scale
    graph = build_sparse_scoring_graph(model.neighbor_index, q, model.base_score)
    scorer = Scorer(graph.SerializeToString(), 300)
    with pytest.raises(ParityError, match="max abs diff"):
        check_parity(model.reference_scores, scorer, _histories(300, 20))


def test_graph_uses_only_allowed_operators_and_no_external_data() -> None:
    model = _random_model(n=20, m=3)
    graph = build_sparse_scoring_graph(
        model.neighbor_index, quantize_rows(model.neighbor_weight), model.base_score
    )
    assert {node.op_type for node in graph.graph.node} <= ALLOWED_OPS
    graph.graph.node.append(helper.make_node("Relu", ["top_score"], ["relu_out"]))
    with pytest.raises(ExportError, match="allow-list: Relu"):
        check_graph(graph)


def test_checker_failure_is_an_export_error() -> None:
    bad = onnx.ModelProto()
    with pytest.raises(ExportError, match="checker"):
        check_graph(bad)


def test_shape_mismatch_and_out_of_range_indices_are_refused() -> None:
    q = quantize_rows(np.ones((4, 2), np.float32))
    with pytest.raises(ExportError, match="shapes disagree"):
        build_sparse_scoring_graph(np.zeros((3, 2), np.int64), q, np.zeros(4, np.float32))
    with pytest.raises(ExportError, match="outside"):
        build_sparse_scoring_graph(np.full((4, 2), 4, np.int64), q, np.zeros(4, np.float32))


def test_quantize_rows_error_is_at_most_half_a_step() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(100, 16)).astype(np.float32)
    q = quantize_rows(w)
    assert q.values.dtype == np.int8
    assert np.all(np.abs(q.dequantize() - w) <= q.scale[:, None] / 2 + 1e-7)
    zero = quantize_rows(np.zeros((2, 3), np.float32))
    assert np.all(zero.dequantize() == 0)
    with pytest.raises(ValueError, match="NaN"):
        quantize_rows(np.array([[np.nan]], np.float32))
