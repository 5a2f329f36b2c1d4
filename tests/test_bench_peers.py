"""The outside peers of the quality benchmark (benchmarks/peers.py) on clusters with a known answer.

Needs the `bench` extra (implicit, rectools-lightfm); CI installs only `dev`, so it skips there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp

from benchmarks.peers import AlsPeer, RidgePeer, fit_als, fit_bpr, fit_lightfm
from server.baselines import Baseline, binary_matrix
from server.splits import Positives

_REASON = "needs the 'bench' extra (pip install -e '.[bench]'): {} is not installed"
implicit_als = pytest.importorskip("implicit.cpu.als", reason=_REASON.format("implicit"))
pytest.importorskip("lightfm", reason=_REASON.format("lightfm (rectools-lightfm)"))
threadpoolctl = pytest.importorskip("threadpoolctl", reason=_REASON.format("threadpoolctl"))

CLUSTERS, SIZE, BOUGHT = 4, 8, 6
N_ITEMS = CLUSTERS * SIZE


def clustered_positives() -> Positives:
    """Item c * 8 + j is item j of cluster c. Every user buys 6 of the 8 items of one cluster,
    one a day; cluster c has 30 * (c + 1) users, so that popularity alone cannot find it."""
    rng = np.random.default_rng(7)
    users, items = [], []
    n_users = 0
    for c in range(CLUSTERS):
        for _ in range(30 * (c + 1)):
            users += [n_users] * BOUGHT
            items += list(c * SIZE + rng.permutation(SIZE)[:BOUGHT])
            n_users += 1
    user = np.array(users, np.int64)
    first_time = np.tile(np.arange(BOUGHT, dtype=np.int64), n_users)
    last_seen = np.full((user.size, 3), -np.inf)
    last_seen[:, 2] = first_time  # every positive is one purchase
    return Positives(
        user=user,
        item=np.array(items, np.int64),
        first_time=first_time,
        strength=np.ones(user.size, np.float32),
        n_users=n_users,
        n_items=N_ITEMS,
        last_seen=last_seen,
    )


# Small grids keep the test fast; the search, refit and fold-in are those of the benchmark.
FITS: dict[str, Callable[[Positives], Baseline]] = {
    "implicit-als": lambda p: fit_als(p, factors=(8,), regularization=(0.1, 1.0), alpha=(10.0,)),
    "implicit-bpr": lambda p: fit_bpr(p, factors=(8,), learning_rate=(0.05,), fold_in_l2=(1.0,)),
    "lightfm-warp": lambda p: fit_lightfm(p, no_components=(8,), epochs=(10, 30)),
}


@pytest.fixture(scope="module")
def peers() -> dict[str, Baseline]:
    positives = clustered_positives()
    return {name: fit(positives) for name, fit in FITS.items()}


@pytest.mark.parametrize("name", sorted(FITS))
@pytest.mark.parametrize("cluster", range(CLUSTERS))
def test_a_new_user_is_offered_the_rest_of_their_cluster(
    peers: dict[str, Baseline], name: str, cluster: int
) -> None:
    history = np.array([cluster * SIZE + 5, cluster * SIZE + 1, cluster * SIZE + 6], np.int64)
    scores = peers[name].scores(history)
    scores[history] = -np.inf
    top = set(np.argsort(-scores, kind="stable")[: SIZE - history.size].tolist())
    assert top == set(range(cluster * SIZE, (cluster + 1) * SIZE)) - set(history.tolist())


@pytest.mark.parametrize("name", sorted(FITS))
def test_each_peer_exposes_the_baseline_protocol(peers: dict[str, Baseline], name: str) -> None:
    model = peers[name]
    assert model.name == name
    assert model.train_seconds > 0.0
    # The item side as float32: 8 factors (ALS adds its 8 x 8 Gram; the others a bias per item).
    assert model.model_bytes == (
        4 * (N_ITEMS * 8 + 64) if name == "implicit-als" else 4 * N_ITEMS * 9
    )
    scores = model.scores(np.array([0, 1], np.int64))
    assert scores.dtype == np.float32
    assert scores.shape == (N_ITEMS,)
    assert np.isfinite(scores).all()


def test_the_search_picks_from_the_grid(peers: dict[str, Baseline]) -> None:
    als, lightfm = peers["implicit-als"], peers["lightfm-warp"]
    assert isinstance(als, AlsPeer)
    assert isinstance(lightfm, RidgePeer)
    assert als.params["factors"] == 8
    assert als.params["regularization"] in (0.1, 1.0)
    assert lightfm.params["epochs"] in (10, 30)
    assert lightfm.params["fold_in_l2"] in (0.1, 1.0, 10.0, 100.0)


def test_als_fold_in_is_implicits_recalculate_user() -> None:
    x = binary_matrix(clustered_positives())
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        model = implicit_als.AlternatingLeastSquares(
            factors=8, regularization=0.5, alpha=10.0, iterations=5, random_state=0
        )
        model.fit(x, show_progress=False)
        history = np.array([3, 9, 10, 12], np.int64)
        row = sp.csr_matrix((np.ones(4, np.float32), ([0, 0, 0, 0], history)), shape=(1, N_ITEMS))
        expected = model.recalculate_user(0, row)
    peer = AlsPeer.from_factors(model.item_factors, regularization=0.5, alpha=10.0)
    np.testing.assert_allclose(peer.user_vector(history), expected, rtol=1e-3, atol=1e-5)


def test_ridge_fold_in_by_hand() -> None:
    # Items 0 and 1 share a direction, item 2 has its own; item 1 was never trained on.
    peer = RidgePeer(
        item_embeddings=np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32),
        item_bias=np.array([0.0, 0.0, 0.1], np.float32),
        l2=1.0,
        trained=np.array([True, False, True]),
        train_seconds=0.0,
        name="hand",
    )
    # u = (diag(1, 0) + I)^-1 (1, 0) = (0.5, 0); item 1 scores below the lowest trained item.
    np.testing.assert_allclose(peer.user_vector(np.array([0], np.int64)), [0.5, 0.0])
    np.testing.assert_allclose(peer.scores(np.array([0], np.int64)), [0.5, -0.9, 0.1], rtol=1e-6)
    assert peer.model_bytes == 4 * 9


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda p: fit_als(p, alpha=()), "alpha"),
        (lambda p: fit_bpr(p, num_threads=0), "num_threads"),
        (lambda p: fit_lightfm(p, epochs=()), "epochs"),
    ],
)
def test_bad_arguments_name_the_argument(
    call: Callable[[Positives], Baseline], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        call(clustered_positives())
