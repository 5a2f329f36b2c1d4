"""Step "export": trained weights -> the ONNX scoring graph the device runs.

The graph's interface is part of bundle format 1 and is the same for every model form:

inputs
    history_index  int64[h]    model indices of the shopper's history items (distinct)
    history_weight float32[h]  their weights (event kind, recency; computed on the device)
    exclude_index  int64[e]    indices that must not be returned (history, dismissed, rules)
    k              int64[1]    how many results (at most n_items)
outputs
    top_index      int64[k]    best first
    top_score      float32[k]  excluded items score EXCLUDED_SCORE
    contributions  float32[k, h]  how much each history item added to each result's score

Three forms share it. The sparse form holds, for every item i, its m strongest neighbours j (as
uint16 when n < 65,536) and the weight w[i, j] (int8 with a per-row scale). A history scores
score[j] = base[j] + sum_i x_i * w[i, j] with two Gathers and one ScatterElements(add):
O(h * m + n), whatever the catalogue's density. The low-rank form holds item factors A (int8,
[n, d]) and scores base + (sum_i x_i A_i) A^T with one integer matrix product: O(h * d + n * d).
The low-rank plus sparse form holds both and adds the sparse part's scatter to the low-rank
scores (its sparse weights may be negative: they correct what the low-rank part smooths).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from .errors import ExportError
from .quantize import QuantizedRows

OPSET = 18
IR_VERSION = 9
EXCLUDED_SCORE = -3.0e38
ALLOWED_OPS = frozenset(
    {
        "Gather",
        "Cast",
        "Mul",
        "Unsqueeze",
        "Reshape",
        "ScatterElements",
        "Expand",
        "Shape",
        "TopK",
        "Equal",
        "Where",
        "ReduceSum",
        "Transpose",
        "Add",
        "MatMul",
        "Sub",
        "Constant",
        "DynamicQuantizeLinear",
        "MatMulInteger",
    }
)


def build_sparse_scoring_graph(
    neighbor_index: npt.NDArray[np.integer],
    neighbor_weight: QuantizedRows,
    base_score: npt.NDArray[np.floating],
) -> onnx.ModelProto:
    """Build and check the sparse item-item scoring graph.

    Args:
        neighbor_index: int [n, m], the m neighbours of every item (pad with the item itself).
        neighbor_weight: int8 [n, m] weights with a float32 scale per row.
        base_score: float [n], the score of every item before any history (a popularity prior).

    Raises:
        ExportError: shapes disagree, an index is out of range, or the graph fails the checker.
    """
    initializers = [
        *_sparse_initializers(neighbor_index, neighbor_weight, base_score),
        *_common_initializers(base_score),
    ]
    nodes = [
        *_sparse_score_nodes("base_score", "scores"),
        *_exclude_and_top_k(),
        *_sparse_contribution_nodes("contributions"),
    ]
    return _finish(nodes, initializers, "facetwo-sparse-item-item")


def build_lowrank_scoring_graph(
    factors: QuantizedRows,
    base_score: npt.NDArray[np.floating],
) -> onnx.ModelProto:
    """Build and check the low-rank scoring graph: score = base + (sum_i x_i A_i) A^T.

    `A` is stored once, transposed, as int8 [d, n] with one scale per item. The user vector
    u = sum_i x_i A_i (d floats) is quantised on the fly and multiplied with MatMulInteger, and
    each item's scale is applied to its score afterwards, so the weights are read once, as int8,
    and never dequantised as a whole (PERFORMANCE-NOTES: the DequantizeLinear trap).

    Args:
        factors: int8 [n, d] item factors with a float32 scale per item (row).
        base_score: float [n], the score of every item before any history.

    Raises:
        ExportError: shapes disagree or the graph fails the checker.
    """
    initializers = [*_lowrank_initializers(factors, base_score), *_common_initializers(base_score)]
    nodes = [
        *_lowrank_score_nodes("scores"),
        *_exclude_and_top_k(),
        *_lowrank_contribution_nodes("contributions"),
    ]
    return _finish(nodes, initializers, "facetwo-low-rank")


def build_hybrid_scoring_graph(
    factors: QuantizedRows,
    neighbor_index: npt.NDArray[np.integer],
    neighbor_weight: QuantizedRows,
    base_score: npt.NDArray[np.floating],
) -> onnx.ModelProto:
    """Build and check the low-rank plus sparse graph: the low-rank graph's scores, then the
    sparse weights of the history rows added by ScatterElements; contributions are the sum of
    both parts'. O(h * d + n * d + h * m).

    Args:
        factors: int8 [n, d] item factors with a float32 scale per item (row).
        neighbor_index: int [n, m], the m neighbours of every item (pad with the item itself).
        neighbor_weight: int8 [n, m] weights (either sign) with a float32 scale per row.
        base_score: float [n], the score of every item before any history.

    Raises:
        ExportError: shapes disagree, an index is out of range, or the graph fails the checker.
    """
    initializers = [
        *_lowrank_initializers(factors, base_score),
        *_sparse_initializers(neighbor_index, neighbor_weight, base_score),
        *_common_initializers(base_score),
    ]
    nodes = [
        *_lowrank_score_nodes("lowrank_scores"),
        *_sparse_score_nodes("lowrank_scores", "scores"),
        *_exclude_and_top_k(),
        *_lowrank_contribution_nodes("lowrank_contributions"),
        *_sparse_contribution_nodes("sparse_contributions"),
        helper.make_node(
            "Add", ["lowrank_contributions", "sparse_contributions"], ["contributions"]
        ),
    ]
    return _finish(nodes, initializers, "facetwo-low-rank-sparse")


def _common_initializers(base_score: npt.NDArray[np.floating]) -> list[onnx.TensorProto]:
    return [
        numpy_helper.from_array(base_score.astype(np.float32), "base_score"),
        numpy_helper.from_array(np.array([-1], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array(EXCLUDED_SCORE, np.float32), "excluded_score"),
    ]


def _sparse_initializers(
    neighbor_index: npt.NDArray[np.integer],
    neighbor_weight: QuantizedRows,
    base_score: npt.NDArray[np.floating],
) -> list[onnx.TensorProto]:
    n, m = neighbor_index.shape if neighbor_index.ndim == 2 else (-1, -1)
    if n <= 0 or neighbor_weight.values.shape != (n, m) or base_score.shape != (n,):
        raise ExportError(
            f"shapes disagree: neighbor_index {neighbor_index.shape}, "
            f"neighbor_weight {neighbor_weight.values.shape}, base_score {base_score.shape}"
        )
    if neighbor_index.size and (neighbor_index.min() < 0 or neighbor_index.max() >= n):
        raise ExportError(f"neighbor_index holds values outside [0, {n})")
    return [
        # The narrowest index type that holds n: 2 bytes a weight up to 65,535 items.
        numpy_helper.from_array(neighbor_index.astype(_index_dtype(n)), "neighbor_index"),
        numpy_helper.from_array(neighbor_weight.values.astype(np.int8), "neighbor_q"),
        numpy_helper.from_array(neighbor_weight.scale.astype(np.float32), "neighbor_scale"),
        numpy_helper.from_array(np.array([1, -1, 1], np.int64), "topk_shape"),
        numpy_helper.from_array(np.array([2], np.int64), "axis2"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]


def _sparse_score_nodes(start: str, out: str) -> list[onnx.NodeProto]:
    """out = start with x_i * w[i, j] added at every history row's neighbours j."""
    return [
        # Gather the history rows only: the int8 matrix is never dequantised as a whole.
        helper.make_node("Gather", ["neighbor_index", "history_index"], ["h_idx_narrow"], axis=0),
        helper.make_node("Cast", ["h_idx_narrow"], ["h_idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["neighbor_q", "history_index"], ["h_q"], axis=0),
        helper.make_node("Gather", ["neighbor_scale", "history_index"], ["h_scale"], axis=0),
        helper.make_node("Mul", ["h_scale", "history_weight"], ["h_coef"]),
        helper.make_node("Unsqueeze", ["h_coef", "axis1"], ["h_coef2"]),
        helper.make_node("Cast", ["h_q"], ["h_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["h_f", "h_coef2"], ["h_val"]),
        helper.make_node("Reshape", ["h_idx", "flat_shape"], ["flat_idx"]),
        helper.make_node("Reshape", ["h_val", "flat_shape"], ["flat_val"]),
        helper.make_node(
            "ScatterElements", [start, "flat_idx", "flat_val"], [out], axis=0, reduction="add"
        ),
    ]


def _sparse_contribution_nodes(out: str) -> list[onnx.NodeProto]:
    """out[r, i] = x_i * w[i, top_index[r]]: find top_index[r] in row i's neighbours."""
    return [
        helper.make_node("Unsqueeze", ["h_idx", "axis1"], ["h_idx3"]),
        helper.make_node("Reshape", ["top_index", "topk_shape"], ["top3"]),
        helper.make_node("Equal", ["h_idx3", "top3"], ["match"]),
        helper.make_node("Unsqueeze", ["h_val", "axis1"], ["h_val3"]),
        helper.make_node("Where", ["match", "h_val3", "zero"], ["picked"]),
        helper.make_node("ReduceSum", ["picked", "axis2"], ["contrib_hk"], keepdims=0),
        helper.make_node("Transpose", ["contrib_hk"], [out], perm=[1, 0]),
    ]


def _lowrank_initializers(
    factors: QuantizedRows, base_score: npt.NDArray[np.floating]
) -> list[onnx.TensorProto]:
    n, d = factors.values.shape
    if n <= 0 or d <= 0 or base_score.shape != (n,):
        raise ExportError(
            f"shapes disagree: factors {factors.values.shape}, base {base_score.shape}"
        )
    return [
        numpy_helper.from_array(np.ascontiguousarray(factors.values.T), "factors_t"),
        numpy_helper.from_array(factors.scale.astype(np.float32), "factor_scale"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "row_shape"),
    ]


def _lowrank_score_nodes(out: str) -> list[onnx.NodeProto]:
    """out = base_score + (sum_i x_i A_i) A^T, with one integer matrix product."""
    return [
        # History rows of A, dequantised (h x d only), weighted and summed into u.
        helper.make_node("Gather", ["factors_t", "history_index"], ["f_q_t"], axis=1),
        helper.make_node("Cast", ["f_q_t"], ["f_f_t"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["factor_scale", "history_index"], ["f_scale"], axis=0),
        helper.make_node("Mul", ["f_scale", "history_weight"], ["f_coef"]),
        helper.make_node("Mul", ["f_f_t", "f_coef"], ["f_rows_t"]),  # [d, h]
        helper.make_node("ReduceSum", ["f_rows_t", "axis1"], ["u_col"], keepdims=1),  # [d, 1]
        helper.make_node("Reshape", ["u_col", "row_shape"], ["u"]),  # [1, d]
        helper.make_node("DynamicQuantizeLinear", ["u"], ["u_q", "u_scale", "u_zero"]),
        helper.make_node("MatMulInteger", ["u_q", "factors_t", "u_zero"], ["raw"]),  # [1, n]
        helper.make_node("Cast", ["raw"], ["raw_f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["raw_f", "flat_shape"], ["raw_flat"]),
        helper.make_node("Mul", ["raw_flat", "factor_scale"], ["scaled"]),
        helper.make_node("Mul", ["scaled", "u_scale"], ["affinity"]),
        helper.make_node("Add", ["affinity", "base_score"], [out]),
    ]


def _lowrank_contribution_nodes(out: str) -> list[onnx.NodeProto]:
    """out[r, i] = x_i * A_i . A_top_r, from the h and k rows only."""
    return [
        helper.make_node("Gather", ["factors_t", "top_index"], ["t_q_t"], axis=1),
        helper.make_node("Cast", ["t_q_t"], ["t_f_t"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["factor_scale", "top_index"], ["t_scale"], axis=0),
        helper.make_node("Mul", ["t_f_t", "t_scale"], ["t_rows_t"]),  # [d, k]
        helper.make_node("Transpose", ["t_rows_t"], ["t_rows"], perm=[1, 0]),  # [k, d]
        helper.make_node("MatMul", ["t_rows", "f_rows_t"], [out]),  # [k, h]
    ]


def _index_dtype(n: int) -> type[np.unsignedinteger[Any]] | type[np.signedinteger[Any]]:
    return np.uint16 if n <= np.iinfo(np.uint16).max else np.int32


def _exclude_and_top_k() -> list[onnx.NodeProto]:
    return [
        helper.make_node("Shape", ["exclude_index"], ["exclude_shape"]),
        helper.make_node("Expand", ["excluded_score", "exclude_shape"], ["exclude_fill"]),
        helper.make_node(
            "ScatterElements", ["scores", "exclude_index", "exclude_fill"], ["masked"], axis=0
        ),
        helper.make_node(
            "TopK", ["masked", "k"], ["top_score", "top_index"], axis=0, largest=1, sorted=1
        ),
    ]


def _finish(
    nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto], name: str
) -> onnx.ModelProto:
    inputs = [
        helper.make_tensor_value_info("history_index", TensorProto.INT64, ["h"]),
        helper.make_tensor_value_info("history_weight", TensorProto.FLOAT, ["h"]),
        helper.make_tensor_value_info("exclude_index", TensorProto.INT64, ["e"]),
        helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
    ]
    outputs = [
        helper.make_tensor_value_info("top_index", TensorProto.INT64, ["k"]),
        helper.make_tensor_value_info("top_score", TensorProto.FLOAT, ["k"]),
        helper.make_tensor_value_info("contributions", TensorProto.FLOAT, ["k", "h"]),
    ]
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facetwo",
        ir_version=IR_VERSION,
    )
    check_graph(model)
    return model


def check_graph(model: onnx.ModelProto) -> None:
    """Validate with onnx.checker, the operator allow-list and "no external data".

    Raises:
        ExportError: the model fails any of the three.
    """
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"ONNX checker refused the graph: {exc}") from exc
    used = {node.op_type for node in model.graph.node}
    foreign = sorted(used - ALLOWED_OPS)
    if foreign:
        raise ExportError(f"graph uses operators outside the allow-list: {', '.join(foreign)}")
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            raise ExportError(f"initializer {tensor.name!r} uses external data")
