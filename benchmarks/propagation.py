"""LightGCN propagation speed on CPU: scenerec's pre-normalised CSR ``propagate`` vs PyG ``LGConv`` on ``edge_index``.

    .venv/bin/python benchmarks/propagation.py [--dim 64] [--repeats 5] [--threads 1 2]

Graphs: MovieLens-100K's training interactions (``movielens_100k_kg/split_recbole/train.tsv``) and a seeded synthetic
bipartite graph of 5k users + 5k items with 500k user–item pairs, i.e. 10k nodes and 1M directed edges.

For each graph and torch thread count, the median of ``--repeats`` timed runs after one warm-up of:

* ``propagate``: one ``adj @ x`` step (x: (N, dim));
* ``fwd+bwd``: the step plus the backward pass to ``x``;

for three implementations: ``ours`` (:func:`scenerec.gnn.propagation.propagate`, symmetric custom backward),
``torch-csr`` (the same CSR with torch's own sparse autograd, for reference) and ``pyg`` (``LGConv()(x, edge_index)``
with both edge directions, normalising on every call, as PyG's ``LightGCN`` does). Ratios are pyg / ours. Building
the CSR once (``normalized_adjacency``) is timed separately.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.nn import LGConv

from scenerec.gnn.propagation import normalized_adjacency, propagate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens_100k_kg" / "split_recbole" / "train.tsv"


def movielens_edges(path: Path) -> tuple[torch.Tensor, int, int]:
    """(user, item) index pairs (2, E) of the training file, ids mapped to 0-based indices in order of appearance."""
    df = pd.read_csv(path, sep="\t", dtype=str)
    users, user_ids = pd.factorize(df["user_id"])
    items, item_ids = pd.factorize(df["item_id"])
    return torch.from_numpy(np.stack([users, items]).astype(np.int64)), len(user_ids), len(item_ids)


def synthetic_edges(num_users: int, num_items: int, num_pairs: int, seed: int) -> torch.Tensor:
    """Uniformly random (user, item) pairs (2, num_pairs), seeded."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack(
        [torch.randint(num_users, (num_pairs,), generator=g), torch.randint(num_items, (num_pairs,), generator=g)]
    )


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up, in milliseconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def implementations(
    adj: torch.Tensor, conv: LGConv, undirected: torch.Tensor
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The compared ``x (N, d) -> (N, d)`` steps: ours, torch's CSR autograd, PyG ``LGConv`` on ``edge_index``."""
    return {
        "ours": lambda x: propagate(adj, x),
        "torch-csr": lambda x: adj @ x,
        "pyg": lambda x: conv(x, undirected),
    }


def bench_graph(
    name: str, edges: torch.Tensor, num_users: int, num_items: int, dim: int, repeats: int, threads: list[int]
) -> None:
    n = num_users + num_items
    undirected = torch.cat(
        [torch.stack([edges[0], edges[1] + num_users]), torch.stack([edges[1] + num_users, edges[0]])], 1
    )
    print(
        f"\n{name}: {num_users} users + {num_items} items = {n} nodes, {undirected.size(1)} directed edges, dim {dim}"
    )
    x0 = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
    grad = torch.randn(n, dim, generator=torch.Generator().manual_seed(1))
    conv = LGConv()
    for t in threads:
        torch.set_num_threads(t)
        build = median_ms(lambda: normalized_adjacency(edges, num_users, num_items), repeats)
        adj = normalized_adjacency(edges, num_users, num_items)
        ref = conv(x0, undirected)
        assert torch.allclose(propagate(adj, x0), ref, atol=1e-5), "ours and PyG disagree"

        def step(op: Callable[[torch.Tensor], torch.Tensor], backward: bool) -> Callable[[], object]:
            def run() -> object:
                with torch.set_grad_enabled(backward):
                    x = x0.detach().requires_grad_(backward)
                    y = op(x)
                    if backward:
                        y.backward(grad)
                return y

            return run

        ops = implementations(adj, conv, undirected)
        res = {(k, bwd): median_ms(step(op, bwd), repeats) for k, op in ops.items() for bwd in (False, True)}
        print(f"  threads={t}: build CSR {build:.1f} ms")
        for bwd, label in ((False, "propagate"), (True, "fwd+bwd")):
            ours, csr, pyg = res["ours", bwd], res["torch-csr", bwd], res["pyg", bwd]
            print(
                f"    {label:<9}  ours {ours:8.2f} ms  torch-csr {csr:8.2f} ms  pyg {pyg:9.2f} ms"
                f"  | pyg/ours {pyg / ours:6.1f}x  torch-csr/ours {csr / ours:4.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available by default")
    edges, nu, ni = movielens_edges(args.data)
    bench_graph("MovieLens-100K train", edges, nu, ni, args.dim, args.repeats, args.threads)
    bench_graph(
        "synthetic", synthetic_edges(5_000, 5_000, 500_000, seed=0), 5_000, 5_000, args.dim, args.repeats, args.threads
    )


if __name__ == "__main__":
    main()
