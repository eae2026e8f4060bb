"""Peer models shared by the benchmarks: implicit's ALS fitted over a small grid, each option a scoring function
that :func:`scenerec.gnn.evaluate_scores` can rank by (``benchmarks/transfer.py``, ``benchmarks/scale.py``).

A helper module of the benchmark scripts, imported by name from this folder (the scripts run as
``.venv/bin/python benchmarks/<script>.py``, which puts the folder on ``sys.path``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from scenerec.gnn.evaluate import CSR

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

#: The grid of ``benchmarks/transfer.py``: factors, regularization, confidence weight alpha.
ALS_GRID: dict[str, tuple[float, ...]] = {
    "factors": (64, 128),
    "regularization": (0.01, 0.1, 1.0),
    "alpha": (1.0, 10.0, 40.0),
}


def als_available() -> str | None:
    """None when implicit's ALS can be imported, else why not (a message for the benchmark's table)."""
    try:
        import implicit.als  # noqa: F401
    except ImportError:
        return "implicit is not installed (pip install -e '.[bench]')"
    return None


def als_options(
    train: CSR,
    *,
    seed: int,
    threads: int,
    grid: dict[str, Sequence[float]] | None = None,
    iterations: int = 15,
) -> Iterator[tuple[dict[str, Any], ScoreFn]]:
    """implicit's ALS (Hu, Koren & Volinsky, 2008) on the binary ``train`` matrix, fitted once per point of
    ``grid`` (default :data:`ALS_GRID`; keys ``factors``, ``regularization``, ``alpha``), lazily: yields
    ``(params, score)`` where ``params`` holds the point and ``"seconds"`` (that fit's wall time) and
    ``score(users)`` is the (len(users), items) dot products of the user and item factors.

    ``threads``: implicit's ``num_threads`` (0: all cores). ImportError when implicit is not installed
    (:func:`als_available` says so beforehand).
    """
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    grid = grid or ALS_GRID
    matrix = sp.csr_matrix((np.ones(train.nnz, dtype=np.float32), train.indices, train.indptr), shape=train.shape)
    for factors, reg, alpha in itertools.product(grid["factors"], grid["regularization"], grid["alpha"]):
        t0 = time.perf_counter()
        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's, run the solves
            model = AlternatingLeastSquares(
                factors=int(factors),
                regularization=float(reg),
                alpha=float(alpha),
                iterations=iterations,
                random_state=seed,
                num_threads=threads,
                calculate_training_loss=False,
            )
            model.fit(matrix, show_progress=False)
        uf = torch.from_numpy(np.asarray(model.user_factors))
        itf = torch.from_numpy(np.asarray(model.item_factors))
        seconds = time.perf_counter() - t0

        def score(u: torch.Tensor, uf: torch.Tensor = uf, itf: torch.Tensor = itf) -> torch.Tensor:
            return uf[u] @ itf.t()

        yield {"factors": int(factors), "regularization": reg, "alpha": alpha, "seconds": seconds}, score
