"""Step "score": run the bundle's ONNX graph with onnxruntime.

`Scorer` owns one `InferenceSession`, created from verified bytes held in memory (never from a
path, so the file on disk cannot be swapped after verification). onnxruntime's own errors are
wrapped: callers see `ClientError` families only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from .errors import ClientError, FormatError

EXCLUDED_SCORE_FLOOR = -1.0e37
"""Scores at or below this are items the graph was told to exclude."""

_INPUTS = ("history_index", "history_weight", "exclude_index", "k")
_OUTPUTS = ("top_index", "top_score", "contributions")


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Top-k of one scoring run, excluded items already dropped."""

    indices: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    contributions: npt.NDArray[np.float32]
    """[len(indices), h]: what each history item added to each result's score."""


def load_session(model_bytes: bytes, *, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session for verified model bytes, its interface checked.

    onnxruntime releases the GIL while it builds the session, so a caller may parse other
    files meanwhile (`Recommender.open` parses the catalogue).

    Raises:
        FormatError: onnxruntime cannot load the model or its interface is not the bundle
            format's (the same in formats 1 and 2).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise FormatError("onnxruntime cannot load the bundle's model") from exc
    names_in = tuple(i.name for i in session.get_inputs())
    names_out = tuple(o.name for o in session.get_outputs())
    if sorted(names_in) != sorted(_INPUTS) or sorted(names_out) != sorted(_OUTPUTS):
        raise FormatError(f"model interface {names_in} -> {names_out} is not the format's")
    return session


class Scorer:
    """Scores histories with the bundle's model on onnxruntime's CPU provider."""

    def __init__(
        self, model: bytes | ort.InferenceSession, n_items: int, *, threads: int = 1
    ) -> None:
        """Use a session made by `load_session`, or create one from the model's bytes.

        Raises:
            FormatError: onnxruntime cannot load the model or its interface is not the bundle
                format's (the same in formats 1 and 2).
        """
        self._session = (
            model
            if isinstance(model, ort.InferenceSession)
            else load_session(model, threads=threads)
        )
        self.n_items = n_items
        self._outputs = list(_OUTPUTS)

    def score(
        self,
        history_index: npt.NDArray[np.int64],
        history_weight: npt.NDArray[np.float32],
        *,
        exclude: npt.NDArray[np.int64],
        k: int,
    ) -> ScoreResult:
        """Top-k items for one history, best first, without excluded items.

        Raises:
            ValueError: indices out of range or shapes that disagree.
            ClientError: onnxruntime failed while scoring.
        """
        if history_index.shape != history_weight.shape or history_index.ndim != 1:
            raise ValueError(
                f"history_index {history_index.shape} and history_weight "
                f"{history_weight.shape} must be 1-D of one length"
            )
        for name, array in (("history_index", history_index), ("exclude", exclude)):
            if array.size and (array.min() < 0 or array.max() >= self.n_items):
                raise ValueError(f"{name} holds indices outside [0, {self.n_items})")
        kk = max(0, min(int(k), self.n_items))
        if kk == 0:
            empty = np.zeros(0, np.int64)
            return ScoreResult(
                empty, np.zeros(0, np.float32), np.zeros((0, history_index.size), np.float32)
            )
        feeds = {
            "history_index": np.ascontiguousarray(history_index, np.int64),
            "history_weight": np.ascontiguousarray(history_weight, np.float32),
            "exclude_index": np.ascontiguousarray(exclude, np.int64),
            "k": np.array([kk], np.int64),
        }
        try:
            top_index, top_score, contributions = self._session.run(self._outputs, feeds)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ClientError("onnxruntime failed to score") from exc
        # Excluded items sort last and show up only when k reaches into them: copy only then.
        if top_score[-1] > EXCLUDED_SCORE_FLOOR:
            return ScoreResult(
                np.asarray(top_index, np.int64),
                np.asarray(top_score, np.float32),
                np.asarray(contributions, np.float32),
            )
        keep = top_score > EXCLUDED_SCORE_FLOOR
        return ScoreResult(
            indices=np.asarray(top_index[keep], np.int64),
            scores=np.asarray(top_score[keep], np.float32),
            contributions=np.asarray(contributions[keep], np.float32),
        )
