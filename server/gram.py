"""The item co-occurrence (Gram) matrix X^T X and the solvers that train on it, at any scale.

Small catalogues keep the Gram dense; past `DENSE_MAX_ITEMS` it stays a sparse matrix, so that a
catalogue of 50k items never needs the 10-20 GB a dense n x n array would. Both serve:

- `local_ridge`: each item's EASE column solved on its C most co-occurring candidates only,
  w = (G[N, N] + l2 I)^-1 G[N, j] — O(n C^3) instead of EASE's O(n^3) inverse. Optionally
  DLAE-style (Steck, NeurIPS 2020: "Autoencoders that don't overfit towards the identity"): the
  item's own column joins its candidates and every candidate k is penalised by
  l2 + dropout * G[k, k], which keeps popular items from dominating the weights; and optionally
  fitted to what a low-rank model A A^T leaves unexplained (the residual X_j - X A A_j^T, whose
  Gram with the candidates is G[N, j] - (G A)[N] A_j^T);
- `top_eigen`: the d largest eigenpairs (for the low-rank form).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .splits import Positives

DENSE_MAX_ITEMS = 12_000
SPARSE_KEEP_PER_ROW = 512
"""Past DENSE_MAX_ITEMS, each item keeps its 512 strongest co-occurrences (and every pair kept
by either side, when a block is read): the candidate blocks of `local_ridge` then read short
rows. Co-occurrences
between two candidates that neither counts among its 512 strongest read as 0 — an
approximation in the spirit of SANSA's sparsified Gram, exact below that catalogue size."""
_DENSE_EIGH_MAX = 3_000
_BATCH = 256


@dataclass(frozen=True)
class Gram:
    """X^T X over the active items (dense array or CSR), with X weighted by event strength."""

    matrix: npt.NDArray[np.float64] | sp.csr_matrix
    n: int
    mean_diag: float

    @property
    def is_dense(self) -> bool:
        return isinstance(self.matrix, np.ndarray)

    def diagonal(self) -> npt.NDArray[np.float64]:
        """G[i, i]: each active item's (weighted) count."""
        if isinstance(self.matrix, np.ndarray):
            return np.diag(self.matrix).astype(np.float64)
        return np.asarray(self.matrix.diagonal(), dtype=np.float64)

    def times(self, factors: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """G @ factors, for a thin [n, d] block."""
        return np.asarray(self.matrix @ factors, dtype=np.float64)

    @classmethod
    def build(
        cls,
        positives: Positives,
        active: npt.NDArray[np.int64],
        *,
        dense_max: int = DENSE_MAX_ITEMS,
    ) -> Gram:
        """The Gram matrix of `positives` restricted to `active` items (in that order)."""
        position = np.full(positives.n_items, -1, np.int64)
        position[active] = np.arange(active.size)
        keep = position[positives.item] >= 0
        x = sp.csr_matrix(
            (
                positives.strength[keep].astype(np.float64),
                (positives.user[keep], position[positives.item[keep]]),
            ),
            shape=(positives.n_users, active.size),
        )
        gram = (x.T @ x).tocsr()
        mean_diag = float(np.mean(gram.diagonal())) if active.size else 0.0
        matrix: npt.NDArray[np.float64] | sp.csr_matrix
        if active.size <= dense_max:
            matrix = np.asarray(gram.toarray(), dtype=np.float64)
        else:
            matrix = _sparsify(gram, SPARSE_KEEP_PER_ROW)
        return cls(matrix, int(active.size), mean_diag or 1.0)

    def candidates(self, cols: npt.NDArray[np.int64], c: int) -> npt.NDArray[np.int64]:
        """For each column j, its c most co-occurring other items; -1 pads short lists."""
        if isinstance(self.matrix, np.ndarray):
            block = self.matrix[cols].copy()
            block[np.arange(cols.size), cols] = -np.inf
            block[block <= 0] = -np.inf
            cand = np.argpartition(-block, c - 1, axis=1)[:, :c]
            return np.where(np.isfinite(np.take_along_axis(block, cand, axis=1)), cand, -1)
        out = np.full((cols.size, c), -1, np.int64)
        for r, j in enumerate(cols):
            start, end = self.matrix.indptr[j], self.matrix.indptr[j + 1]
            idx, val = self.matrix.indices[start:end], self.matrix.data[start:end]
            mask = (idx != j) & (val > 0)
            idx, val = idx[mask], val[mask]
            if idx.size > c:
                top = np.argpartition(-val, c - 1)[:c]
                idx = idx[top]
            out[r, : idx.size] = idx
        return out


def _sparsify(gram: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Each row's `keep` largest entries plus the diagonal (rows stay short)."""
    n = gram.shape[0]
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int32]] = []
    vals: list[npt.NDArray[np.float64]] = []
    for i in range(n):
        start, end = gram.indptr[i], gram.indptr[i + 1]
        idx, data = gram.indices[start:end], gram.data[start:end]
        if idx.size > keep:
            top = np.argpartition(-data, keep - 1)[:keep]
            idx, data = idx[top], data[top]
        rows.append(np.full(idx.size, i, np.int64))
        cols.append(idx)
        vals.append(data)
    pruned = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    pruned.setdiag(gram.diagonal())
    # Not symmetrised here: a popular item sits in everyone's list, and its row would fill up.
    # `_blocks` symmetrises each small candidate block instead.
    return pruned


@dataclass(frozen=True)
class RidgeProblem:
    """One set of columns to solve on the shared candidate blocks.

    `l2` is the ridge penalty; `residual` (item factors A, [n, d]) fits each column to what
    x A A^T leaves unexplained instead of to the column itself.
    """

    l2: float
    residual: npt.NDArray[np.float64] | None = None


def local_ridge(gram: Gram, l2: float, candidates: int) -> sp.csr_matrix:
    """EASE's columns, each solved on its candidates: a sparse n x n matrix W, W[i, j] the
    weight of history item i for item j."""
    return local_ridges(gram, [l2], candidates)[0]


def local_ridges(
    gram: Gram,
    l2s: Sequence[float | RidgeProblem],
    candidates: int,
    *,
    dropout: float | None = None,
) -> list[sp.csr_matrix]:
    """`local_ridge` for several problems at once: the candidate blocks are gathered once.

    With `dropout` (DLAE), each item's own column is a candidate too (its weight is fitted,
    then dropped: a history never scores its own items) and candidate k's penalty is
    l2 + dropout * G[k, k].
    """
    problems = [p if isinstance(p, RidgeProblem) else RidgeProblem(float(p)) for p in l2s]
    n = gram.n
    c = max(1, min(candidates, n - 1))
    diag = gram.diagonal()
    shifted = [None if p.residual is None else gram.times(p.residual) for p in problems]
    parts: list[tuple[list[npt.NDArray[np.int64]], list[npt.NDArray[np.int64]], list[Any]]] = [
        ([], [], []) for _ in problems
    ]
    for start in range(0, n, _BATCH):
        cols = np.arange(start, min(n, start + _BATCH), dtype=np.int64)
        cand = gram.candidates(cols, c)
        pad = cand < 0
        safe = np.where(pad, cols[:, None], cand)
        if dropout is not None:  # the item itself, in the last slot
            safe = np.concatenate([safe, cols[:, None]], axis=1)
            pad = np.concatenate([pad, np.zeros((cols.size, 1), bool)], axis=1)
        lhs, rhs = _blocks(gram, safe, cols, pad)
        # A padded slot solves to 0: its row and column become the identity, its target 0.
        lhs[pad] = 0.0
        lhs.transpose(0, 2, 1)[pad] = 0.0
        b_idx, s_idx = np.nonzero(pad)
        width = safe.shape[1]
        penalty = np.zeros(safe.shape) if dropout is None else dropout * diag[safe]
        on_diag = np.arange(width)
        for (rows, cols_out, vals), problem, gram_a in zip(parts, problems, shifted, strict=True):
            target = rhs
            if gram_a is not None and problem.residual is not None:
                target = rhs - np.einsum("bcd,bd->bc", gram_a[safe], problem.residual[cols])
            target = np.where(pad, 0.0, target)
            system = lhs.copy()
            system[:, on_diag, on_diag] += problem.l2 + penalty
            system[b_idx, s_idx, s_idx] = 1.0
            solved = np.linalg.solve(system, target[..., None])[..., 0][:, :c]
            keep = ~pad[:, :c] & (solved != 0)
            rows.append(safe[:, :c][keep])
            cols_out.append(np.broadcast_to(cols[:, None], (cols.size, c))[keep])
            vals.append(solved[keep])
    return [
        sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols_out))),
            shape=(n, n),
        )
        for rows, cols_out, vals in parts
    ]


def _blocks(
    gram: Gram,
    safe: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    pad: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """G[N_b, N_b] and G[N_b, j_b] for a batch of columns j_b with candidate lists N_b (padded
    slots, marked by `pad`, hold arbitrary values: the caller zeroes them)."""
    if isinstance(gram.matrix, np.ndarray):
        return gram.matrix[safe[:, :, None], safe[:, None, :]], gram.matrix[safe, cols[:, None]]
    b, c = safe.shape
    # Where each item sits in each column's candidate list (-1: not a candidate). Padded slots
    # repeat an item of the list (the column itself) and must not take its place.
    slot = np.full((b, gram.n), -1, np.int32)
    batch, position = np.nonzero(~pad)
    slot[batch, safe[batch, position]] = position.astype(np.int32)
    rows = gram.matrix[safe.ravel()].tocoo()
    owner, local = rows.row // c, rows.row % c
    where = slot[owner, rows.col]
    ok = where >= 0
    lhs = np.zeros((b, c, c))
    lhs[owner[ok], local[ok], where[ok]] = rows.data[ok]
    # G is symmetric; a row-pruned G may hold a pair on one side only.
    lhs = np.maximum(lhs, lhs.transpose(0, 2, 1))
    column = gram.matrix[cols].tocoo()  # G is symmetric: row j holds column j
    where = slot[column.row, column.col]
    ok = where >= 0
    rhs = np.zeros((b, c))
    rhs[column.row[ok], where[ok]] = column.data[ok]
    return lhs, rhs


def prune_rows(
    weights: sp.csr_matrix, m: int, *, signed: bool = False
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Each row's m largest positive weights (`signed`: largest in absolute value), best first;
    short rows padded with (self, 0)."""
    n = weights.shape[0]
    coo = weights.tocoo()
    kept = coo.data != 0 if signed else coo.data > 0
    row, col, data = coo.row[kept], coo.col[kept], coo.data[kept]
    order = np.lexsort((-np.abs(data), row))
    row, col, data = row[order], col[order], data[order]
    first = np.searchsorted(row, np.arange(n))
    rank = np.arange(row.size) - first[row]
    keep = rank < m
    idx = np.repeat(np.arange(n, dtype=np.int64)[:, None], m, axis=1)
    val = np.zeros((n, m), np.float32)
    idx[row[keep], rank[keep]] = col[keep]
    val[row[keep], rank[keep]] = data[keep]
    return idx, val


def shrunk_factors(
    values: npt.NDArray[np.float64], vectors: npt.NDArray[np.float64], l2: float
) -> npt.NDArray[np.float32]:
    """The low-rank ridge solution's factors: A = V sqrt(L / (L + l2)), so A A^T is the ridge
    regression of X on itself restricted to the eigenvectors V."""
    factors: npt.NDArray[np.float32] = (vectors * np.sqrt(values / (values + l2))).astype(
        np.float32
    )
    return factors


def top_eigen(gram: Gram, d: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The d largest eigenpairs of the (symmetric, PSD) Gram matrix, largest first."""
    d = max(1, min(d, gram.n - 1))
    if isinstance(gram.matrix, np.ndarray) and gram.n <= _DENSE_EIGH_MAX:
        values, vectors = np.linalg.eigh(gram.matrix)
    else:
        values, vectors = _randomized_eigen(gram.matrix, d)
    order = np.argsort(-values)[:d]
    return np.maximum(values[order], 0.0), vectors[:, order]


def _randomized_eigen(
    matrix: npt.NDArray[np.float64] | sp.csr_matrix, d: int, *, oversample: int = 48, power: int = 6
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Top eigenpairs of a symmetric PSD matrix by a randomised range finder (Halko, Martinsson
    and Tropp 2011) with `power` subspace iterations: a few products with a thin block instead of
    ARPACK's long Lanczos restarts (minutes at 50k items)."""
    n = matrix.shape[0]
    width = min(n, d + oversample)
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(matrix @ rng.standard_normal((n, width)))
    for _ in range(power):
        basis, _ = np.linalg.qr(matrix @ basis)
    small = basis.T @ (matrix @ basis)
    values, vectors = np.linalg.eigh((small + small.T) / 2)
    return values, basis @ vectors
