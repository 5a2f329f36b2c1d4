"""The Gram solvers against their closed forms: DLAE columns, sparse residuals, low-rank factors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from server.gram import Gram, RidgeProblem, local_ridges, prune_rows, shrunk_factors, top_eigen
from server.splits import Positives


def _gram(x: np.ndarray, *, dense_max: int = 1000) -> Gram:
    user, item = np.nonzero(x)
    seen = np.full((user.size, 4), -np.inf)
    positives = Positives(
        user.astype(np.int64), item.astype(np.int64), np.zeros(user.size, np.int64),
        np.ones(user.size, np.float32), x.shape[0], x.shape[1], seen,
    )  # fmt: skip
    return Gram.build(positives, np.arange(x.shape[1], dtype=np.int64), dense_max=dense_max)


def _data(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data: np.ndarray = (rng.random((80, 7)) < 0.45).astype(np.float64)
    return data


def _off_diagonal(b: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.array(b, dtype=np.float64)
    np.fill_diagonal(out, 0.0)
    return out


@pytest.mark.parametrize("dense_max", [1000, 0])
def test_dlae_columns_with_every_candidate_match_the_closed_form(dense_max: int) -> None:
    """DLAE (Steck 2020): B = (G + L)^-1 G with L = diag(l2 + dropout * G_kk); the item's own
    weight is fitted and dropped, so the off-diagonal part is what a history scores with."""
    x = _data()
    g = x.T @ x
    gram = _gram(x, dense_max=dense_max)
    got = local_ridges(gram, [2.0], candidates=6, dropout=0.5)[0].toarray()
    penalty = np.diag(2.0 + 0.5 * np.diag(g))
    expected = _off_diagonal(np.linalg.solve(g + penalty, g))
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert np.all(np.diag(got) == 0.0)


def test_residual_columns_fit_what_the_low_rank_part_leaves() -> None:
    """With a residual A, column j solves (G + L) w = G_j - G A A_j^T: the ridge regression of
    X_j - X A A_j^T on X (own weight dropped)."""
    x = _data(seed=2)
    g = x.T @ x
    gram = _gram(x)
    values, vectors = top_eigen(gram, 2)
    a = shrunk_factors(values, vectors, 3.0).astype(np.float64)
    problem = RidgeProblem(1.5, a)
    got = local_ridges(gram, [problem, 1.5], candidates=6, dropout=0.25)
    penalty = np.diag(1.5 + 0.25 * np.diag(g))
    expected = _off_diagonal(np.linalg.solve(g + penalty, g - g @ a @ a.T))
    np.testing.assert_allclose(got[0].toarray(), expected, atol=1e-9)
    # The plain problem of the same batch is the DLAE solution, not the residual's.
    plain = _off_diagonal(np.linalg.solve(g + penalty, g))
    np.testing.assert_allclose(got[1].toarray(), plain, atol=1e-9)


def test_low_rank_factors_with_every_eigenpair_are_the_ridge_solution() -> None:
    x = _data(seed=3)
    g = x.T @ x
    values, vectors = top_eigen(_gram(x), 7)
    a = shrunk_factors(values, vectors, 4.0).astype(np.float64)
    # top_eigen keeps at most n - 1 pairs: compare on the span it keeps.
    ridge = np.linalg.solve(g + 4.0 * np.eye(7), g)
    projector = vectors @ vectors.T
    np.testing.assert_allclose(a @ a.T, projector @ ridge @ projector, atol=1e-6)


def test_signed_pruning_keeps_the_largest_magnitudes_with_their_sign() -> None:
    w = sp.csr_matrix(np.array([[0, 3, -5, 1], [2, 0, -1, 0], [0, 0, 0, 0]], float))
    idx, vals = prune_rows(w, 2, signed=True)
    assert idx[0].tolist() == [2, 1] and vals[0].tolist() == [-5, 3]
    assert idx[1].tolist() == [0, 2] and vals[1].tolist() == [2, -1]
    assert idx[2].tolist() == [2, 2] and vals[2].tolist() == [0, 0]
    # Unsigned pruning drops negative weights.
    idx, vals = prune_rows(w, 2)
    assert idx[0].tolist() == [1, 3] and vals[0].tolist() == [3, 1]


@pytest.mark.parametrize("dropout", [None, 0.25])
def test_sparse_gram_solves_like_the_dense_one_with_short_candidate_lists(
    dropout: float | None,
) -> None:
    """Items with fewer co-occurring items than `candidates` get padded slots; the sparse Gram's
    block gathering must give the dense one's answer there too."""
    rng = np.random.default_rng(4)
    x = np.zeros((60, 12))
    x[:, :6] = rng.random((60, 6)) < 0.5  # items 0-5 co-occur widely
    x[:20, 6:9] = rng.random((20, 3)) < 0.6  # items 6-8 only with the first users
    x[40:, 9:] = rng.random((20, 3)) < 0.6
    problems: list[float | RidgeProblem] = [1.0, RidgeProblem(2.0, rng.normal(size=(12, 2)))]
    dense = local_ridges(_gram(x), problems, candidates=10, dropout=dropout)
    sparse = local_ridges(_gram(x, dense_max=0), problems, candidates=10, dropout=dropout)
    for d, s in zip(dense, sparse, strict=True):
        np.testing.assert_allclose(s.toarray(), d.toarray(), atol=1e-9)
