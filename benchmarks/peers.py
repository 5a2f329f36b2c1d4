"""Outside peers for the quality benchmark: implicit's ALS and BPR, and LightFM with WARP loss.

Each `fit_*` takes the training positives of a split (binary user x item: every positive is a
1) and returns a `server.baselines.Baseline`, ready for
`server.evaluation.evaluate(..., extra_baselines=[fit_als, fit_bpr, fit_lightfm])`.

- **Search.** Hyper-parameters are chosen on a validation split carved from the training users
  (`strong_split(positives, held_out_fraction=0.1, seed=seed + 1, min_items=3)`, NDCG@20 via
  `server.baselines.mean_ndcg`), over a small grid; the winner is then refitted on all training
  users. `train_seconds` covers the search and the refit. Default grids: ALS factors {64, 128}
  x regularization {1, 10, 100} x alpha {1, 10} (0.1 never won; 100 won on the Complete Journey
  sample); BPR factors {64, 128} x learning rate {0.01, 0.05}; LightFM 64 components, rate 0.05,
  20 or 40 epochs; for BPR and LightFM also the fold-in l2 factor {0.1, 1, 10, 100}.
- **Fold-in.** The evaluated users were never seen in training, so each history is folded in
  against the item side of the model (no per-user parameters are kept):
  - ALS: the exact implicit-ALS least-squares solve for one new user, the one implicit's
    `recalculate_user` makes (Hu, Koren, Volinsky 2008; confidence `alpha` on a history item, 1
    elsewhere): u = (YᵀY + reg·I + (alpha - 1)·Y_hᵀY_h)⁻¹ · alpha·Y_hᵀ1, score = Y·u. It is
    written out in numpy (float64) so scoring needs no library call; a test checks it against
    `recalculate_user`.
  - BPR and LightFM: their training has no closed form for a new user, so the history is folded
    in by ridge regression on the item embeddings, u = (Y_hᵀY_h + l2·I)⁻¹ · Y_hᵀ1, and
    score = Y·u + item bias. l2 is a factor (searched, like the model's own parameters) times
    the mean squared norm of an item embedding. Items no training user has keep their random
    initial embedding in these libraries; they score below every trained item.
- **Size.** `model_bytes` is the item side as float32, what a device would hold: the factors
  (and ALS's d x d Gram matrix, which its fold-in needs) or the embeddings and biases.
- **Threads.** CPU classes only (`implicit.cpu.*`), `num_threads` at most 2 by default.
  implicit's ALS runs its own threads and warns (a RuntimeWarning from
  `implicit.utils.check_blas_config`) when OpenBLAS is threaded too, which slows it badly: every
  fit runs under `threadpoolctl.threadpool_limits(1, "blas")`, so scripts need not set
  OPENBLAS_NUM_THREADS=1 before importing numpy, and no warning escapes. ALS solves each user
  and item independently, so its 2 threads give repeatable results. BPR and LightFM train by
  lock-free SGD: with 2 threads their results change from run to run (LightFM's NDCG@20 by up to
  0.02 on ml-100k) and they were no faster here, so they default to one thread.

`implicit`, `lightfm` (from `rectools-lightfm`) and `threadpoolctl` (which implicit needs) come
with the `bench` extra; they are imported when a peer is fitted, so this module imports without
them.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from server.baselines import binary_matrix, mean_ndcg
from server.splits import Positives, Split, strong_split

logger = logging.getLogger(__name__)

VALIDATION_K = 20
"""The cut-off of the validation NDCG."""

ScoreFn = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float32]]
_ItemSide = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class AlsPeer:
    """Implicit ALS item factors, scoring a new history by the exact least-squares fold-in."""

    item_factors: npt.NDArray[np.float32]
    gram: npt.NDArray[np.float64]
    """YᵀY + regularization·I, precomputed for the fold-in."""
    alpha: float
    train_seconds: float
    params: dict[str, float] = field(default_factory=dict)
    name: str = "implicit-als"

    @classmethod
    def from_factors(
        cls,
        item_factors: npt.NDArray[np.floating],
        *,
        regularization: float,
        alpha: float,
        train_seconds: float = 0.0,
        params: dict[str, float] | None = None,
    ) -> AlsPeer:
        """The peer of trained item factors (n x d)."""
        y = np.asarray(item_factors, dtype=np.float32)
        y64 = y.astype(np.float64)
        gram = y64.T @ y64 + regularization * np.eye(y.shape[1])
        return cls(y, gram, float(alpha), train_seconds, dict(params or {}))

    @property
    def model_bytes(self) -> int:
        return 4 * (self.item_factors.size + self.gram.size)

    def user_vector(self, history: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The factors implicit's `recalculate_user` gives a user with these items (binary)."""
        items = np.unique(history)
        y_h = self.item_factors[items].astype(np.float64)
        a = self.gram + (self.alpha - 1.0) * (y_h.T @ y_h)
        b = self.alpha * y_h.sum(axis=0)
        return np.asarray(np.linalg.solve(a, b), dtype=np.float64)

    def scores(self, history: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        return np.asarray(self.item_factors @ self.user_vector(history), dtype=np.float32)


@dataclass(frozen=True)
class RidgePeer:
    """Item embeddings and biases, scoring a new history by ridge fold-in (BPR, LightFM)."""

    item_embeddings: npt.NDArray[np.float32]
    item_bias: npt.NDArray[np.float32]
    l2: float
    trained: npt.NDArray[np.bool_]
    """Items with at least one training positive; the others score lowest."""
    train_seconds: float
    name: str
    params: dict[str, float] = field(default_factory=dict)

    @property
    def model_bytes(self) -> int:
        return 4 * (self.item_embeddings.size + self.item_bias.size)

    def user_vector(self, history: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """u = (Y_hᵀY_h + l2·I)⁻¹ Y_hᵀ1: the user whose scores of the history items are ~1."""
        y_h = self.item_embeddings[np.unique(history)].astype(np.float64)
        a = y_h.T @ y_h + self.l2 * np.eye(y_h.shape[1])
        return np.asarray(np.linalg.solve(a, y_h.sum(axis=0)), dtype=np.float64)

    def scores(self, history: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        scores = self.item_embeddings @ self.user_vector(history) + self.item_bias
        scores[~self.trained] = scores[self.trained].min() - 1.0 if self.trained.any() else 0.0
        return np.asarray(scores, dtype=np.float32)


def fit_als(
    positives: Positives,
    *,
    seed: int = 0,
    factors: Sequence[int] = (64, 128),
    regularization: Sequence[float] = (1.0, 10.0, 100.0),
    alpha: Sequence[float] = (1.0, 10.0),
    iterations: int = 15,
    num_threads: int = 2,
) -> AlsPeer:
    """implicit's ALS (CPU), parameters chosen on a validation split, exact fold-in.

    Raises:
        ValueError: an empty grid or a count below 1.
        ImportError: implicit or threadpoolctl is not installed (the `bench` extra).
    """
    _check_grids(factors=factors, regularization=regularization, alpha=alpha)
    _check_counts(iterations=iterations, num_threads=num_threads)
    started = time.perf_counter()
    als = _import("implicit.cpu.als")

    def train(x: sp.csr_matrix, f: int, reg: float, a: float) -> npt.NDArray[np.float32]:
        model = als.AlternatingLeastSquares(
            factors=f, regularization=reg, alpha=a, iterations=iterations,
            num_threads=num_threads, random_state=seed,
        )  # fmt: skip
        model.fit(x, show_progress=False)
        return np.asarray(model.item_factors, dtype=np.float32)

    with _single_thread_blas():
        split = _validation_split(positives, seed)
        x_val = binary_matrix(split.train)
        best = _Best()
        for f, reg, a in itertools.product(factors, regularization, alpha):
            peer = AlsPeer.from_factors(train(x_val, f, reg, a), regularization=reg, alpha=a)
            params = {"factors": f, "regularization": reg, "alpha": a}
            best.offer(params, _validate(peer.scores, split))
        f, reg, a = int(best.params["factors"]), best.params["regularization"], best.params["alpha"]
        y = train(binary_matrix(positives), f, reg, a)
    seconds = time.perf_counter() - started
    logger.info("implicit-als: chose %s in %.1f s", best.params, seconds)
    return AlsPeer.from_factors(
        y, regularization=reg, alpha=a, train_seconds=seconds, params=best.params
    )


def fit_bpr(
    positives: Positives,
    *,
    seed: int = 0,
    factors: Sequence[int] = (64, 128),
    learning_rate: Sequence[float] = (0.01, 0.05),
    fold_in_l2: Sequence[float] = (0.1, 1.0, 10.0, 100.0),
    iterations: int = 100,
    num_threads: int = 1,
) -> RidgePeer:
    """implicit's BPR (CPU), parameters and fold-in l2 chosen on a validation split.

    implicit keeps the item bias in an extra last column of the item factors (the user's is a
    constant 1): `factors` latent factors plus the bias.

    Raises:
        ValueError: an empty grid or a count below 1.
        ImportError: implicit or threadpoolctl is not installed (the `bench` extra).
    """
    _check_grids(factors=factors, learning_rate=learning_rate, fold_in_l2=fold_in_l2)
    _check_counts(iterations=iterations, num_threads=num_threads)
    started = time.perf_counter()
    bpr = _import("implicit.cpu.bpr")

    def train(x: sp.csr_matrix, f: int, rate: float) -> _ItemSide:
        model = bpr.BayesianPersonalizedRanking(
            factors=f, learning_rate=rate, iterations=iterations, num_threads=num_threads,
            random_state=seed,
        )  # fmt: skip
        model.fit(x, show_progress=False)
        y = np.asarray(model.item_factors, dtype=np.float32)
        return y[:, :-1], y[:, -1]

    with _single_thread_blas():
        split = _validation_split(positives, seed)
        x_val, best = binary_matrix(split.train), _Best()
        for f, rate in itertools.product(factors, learning_rate):
            embeddings, bias = train(x_val, f, rate)
            params = {"factors": f, "learning_rate": rate}
            _offer_fold_ins(best, params, embeddings, bias, split, fold_in_l2)
        embeddings, bias = train(
            binary_matrix(positives), int(best.params["factors"]), best.params["learning_rate"]
        )
    seconds = time.perf_counter() - started
    logger.info("implicit-bpr: chose %s in %.1f s", best.params, seconds)
    return _ridge_peer("implicit-bpr", embeddings, bias, positives, best.params, seconds=seconds)


def fit_lightfm(
    positives: Positives,
    *,
    seed: int = 0,
    no_components: Sequence[int] = (64,),
    learning_rate: Sequence[float] = (0.05,),
    epochs: Sequence[int] = (20, 40),
    fold_in_l2: Sequence[float] = (0.1, 1.0, 10.0, 100.0),
    num_threads: int = 1,
) -> RidgePeer:
    """LightFM with WARP loss, parameters and fold-in l2 chosen on a validation split.

    The epoch counts of the grid are checkpoints of one run per (components, rate): the model
    is scored after each, then trained on.

    Raises:
        ValueError: an empty grid or a count below 1.
        ImportError: lightfm or threadpoolctl is not installed (the `bench` extra).
    """
    _check_grids(
        no_components=no_components, learning_rate=learning_rate, epochs=epochs,
        fold_in_l2=fold_in_l2,
    )  # fmt: skip
    _check_counts(num_threads=num_threads, epochs=min(epochs))
    started = time.perf_counter()
    lightfm = _import("lightfm")

    def model_of(d: int, rate: float) -> Any:
        return lightfm.LightFM(no_components=d, loss="warp", learning_rate=rate, random_state=seed)

    def item_side(model: Any) -> _ItemSide:
        bias, embeddings = model.get_item_representations()
        return np.asarray(embeddings, np.float32), np.asarray(bias, np.float32)

    with _single_thread_blas():
        split = _validation_split(positives, seed)
        x_val, best = binary_matrix(split.train).tocoo(), _Best()
        for d, rate in itertools.product(no_components, learning_rate):
            model, done = model_of(d, rate), 0
            for n in sorted(set(epochs)):
                model.fit_partial(x_val, epochs=n - done, num_threads=num_threads)
                done = n
                params = {"no_components": d, "learning_rate": rate, "epochs": n}
                _offer_fold_ins(best, params, *item_side(model), split, fold_in_l2)
        model = model_of(int(best.params["no_components"]), best.params["learning_rate"])
        model.fit(
            binary_matrix(positives).tocoo(), epochs=int(best.params["epochs"]),
            num_threads=num_threads,
        )  # fmt: skip
        embeddings, bias = item_side(model)
    seconds = time.perf_counter() - started
    logger.info("lightfm-warp: chose %s in %.1f s", best.params, seconds)
    return _ridge_peer("lightfm-warp", embeddings, bias, positives, best.params, seconds=seconds)


@dataclass
class _Best:
    """The best parameters offered so far (the first of equals wins)."""

    params: dict[str, float] = field(default_factory=dict)
    ndcg: float = -1.0

    def offer(self, params: dict[str, float], ndcg: float) -> None:
        logger.debug("validation NDCG@%d %.4f at %s", VALIDATION_K, ndcg, params)
        if ndcg > self.ndcg:
            self.params, self.ndcg = dict(params), ndcg


def _offer_fold_ins(
    best: _Best,
    params: dict[str, float],
    embeddings: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32],
    split: Split,
    fold_in_l2: Sequence[float],
) -> None:
    """Score one trained model on the validation users with each fold-in l2."""
    for l2 in fold_in_l2:
        peer = _ridge_peer("validation", embeddings, bias, split.train, {}, seconds=0.0, l2=l2)
        best.offer({**params, "fold_in_l2": l2}, _validate(peer.scores, split))


def _ridge_peer(
    name: str,
    embeddings: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32],
    positives: Positives,
    params: dict[str, float],
    *,
    seconds: float,
    l2: float | None = None,
) -> RidgePeer:
    factor = params["fold_in_l2"] if l2 is None else l2
    scale = float(np.mean(np.sum(embeddings.astype(np.float64) ** 2, axis=1))) or 1.0
    trained = np.bincount(positives.item, minlength=positives.n_items) > 0
    return RidgePeer(embeddings, bias, factor * scale, trained, seconds, name, dict(params))


def _validation_split(positives: Positives, seed: int) -> Split:
    split = strong_split(positives, held_out_fraction=0.1, seed=seed + 1, min_items=3)
    if not split.held_out:
        logger.warning("no validation user (3+ items): the first grid point is used")
    return split


def _validate(score_fn: ScoreFn, split: Split) -> float:
    return mean_ndcg(score_fn, split.held_out, VALIDATION_K)


@contextlib.contextmanager
def _single_thread_blas() -> Iterator[None]:
    """One BLAS thread while fitting (see the module docstring, "Threads")."""
    threadpoolctl = _import("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"the benchmark peers need {module!r}: install the 'bench' extra "
            "(pip install -e '.[bench]')"
        ) from exc


def _check_grids(**grids: Sequence[float]) -> None:
    for argument, grid in grids.items():
        if len(grid) == 0:
            raise ValueError(f"{argument} must list at least one value, found none")


def _check_counts(**counts: int) -> None:
    for argument, count in counts.items():
        if count < 1:
            raise ValueError(f"{argument} must be >= 1, found {count}")
