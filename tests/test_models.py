"""Propagation (``scenerec.gnn.propagation``) and recommenders (``scenerec.gnn.models``) against dense references."""

from __future__ import annotations

import copy

import pytest
import torch
from torch_geometric.nn import LGConv

from scenerec.gnn.models import BPRMF, LightGCN, MostPopular
from scenerec.gnn.propagation import normalized_adjacency, propagate

NU, NI = 3, 4
# user -> item pairs of a hand-built 3 x 4 graph; (0, 1) is repeated, item 3 has no interactions.
EDGES = torch.tensor([[0, 0, 0, 1, 2, 2], [0, 1, 1, 1, 1, 2]])


def dense_adjacency(
    edges: torch.Tensor, num_users: int, num_items: int, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """The reference ``D^-1/2 A D^-1/2`` (N, N), float64, built densely."""
    n = num_users + num_items
    a = torch.zeros(n, n, dtype=torch.float64)
    w = torch.ones(edges.size(1), dtype=torch.float64) if weight is None else weight.double()
    for (u, i), value in zip(edges.t().tolist(), w.tolist(), strict=True):
        a[u, num_users + i] += value
        a[num_users + i, u] += value
    deg = a.sum(1)
    inv = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    return inv[:, None] * a * inv[None, :]


def random_bipartite(num_users: int, num_items: int, num_edges: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack(
        [torch.randint(num_users, (num_edges,), generator=g), torch.randint(num_items, (num_edges,), generator=g)]
    )


def test_normalized_adjacency_matches_dense_with_duplicates_and_isolated_nodes() -> None:
    adj = normalized_adjacency(EDGES, NU, NI)
    assert adj.layout == torch.sparse_csr and adj.shape == (NU + NI, NU + NI) and adj.dtype == torch.float32
    dense = adj.to_dense().double()
    torch.testing.assert_close(dense, dense_adjacency(EDGES, NU, NI), rtol=1e-6, atol=1e-7)
    assert torch.isfinite(dense).all() and dense[NU + 3].abs().sum() == 0  # item 3 is isolated
    torch.testing.assert_close(dense, dense.t())


def test_normalized_adjacency_weights_and_errors() -> None:
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0, 4.0], dtype=torch.float64)
    adj = normalized_adjacency(EDGES, NU, NI, w)
    assert adj.dtype == torch.float64
    torch.testing.assert_close(adj.to_dense(), dense_adjacency(EDGES, NU, NI, w))
    empty = normalized_adjacency(torch.zeros(2, 0, dtype=torch.long), 2, 3)
    assert empty.shape == (5, 5) and empty.to_dense().abs().sum() == 0
    with pytest.raises(ValueError):
        normalized_adjacency(torch.tensor([[0], [4]]), NU, NI)
    with pytest.raises(ValueError):
        normalized_adjacency(EDGES, NU, NI, -w)
    with pytest.raises(ValueError):
        propagate(adj.to_dense(), torch.zeros(NU + NI, 2))


def test_propagate_gradient_matches_dense() -> None:
    adj = normalized_adjacency(EDGES, NU, NI).double()
    x = torch.randn(NU + NI, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: propagate(adj, t), (x,))
    dense = adj.to_dense()
    weight = torch.randn(NU + NI, 3, dtype=torch.float64)
    (g_sparse,) = torch.autograd.grad((propagate(adj, propagate(adj, x)) * weight).sum(), x)
    (g_dense,) = torch.autograd.grad((dense @ (dense @ x) * weight).sum(), x)
    torch.testing.assert_close(g_sparse, g_dense)


def test_propagate_equals_pyg_lgconv() -> None:
    num_users, num_items = 40, 30
    edges = random_bipartite(num_users, num_items, 300, seed=0)  # repeats and isolated nodes likely
    undirected = torch.cat(
        [torch.stack([edges[0], edges[1] + num_users]), torch.stack([edges[1] + num_users, edges[0]])], 1
    )
    x = torch.randn(num_users + num_items, 8)
    expected = LGConv()(x, undirected)
    torch.testing.assert_close(propagate(normalized_adjacency(edges, num_users, num_items), x), expected)


def test_shapes_and_score() -> None:
    adj = normalized_adjacency(EDGES, NU, NI)
    users = torch.tensor([2, 0])
    for model in (BPRMF(NU, NI, dim=5), LightGCN(NU, NI, adj, dim=5, num_layers=3)):
        u, i = model()
        assert u.shape == (NU, 5) and i.shape == (NI, 5)
        scores = model.score(users)
        assert scores.shape == (2, NI)
        torch.testing.assert_close(scores, u[users] @ i.t())
        torch.testing.assert_close(model.score(users, u, i), scores)
        reg = model.regularized(users, torch.tensor([0, 1]), torch.tensor([[2, 3], [3, 0]]))
        assert reg.shape == () and reg > 0


def test_lightgcn_without_layers_is_matrix_factorisation() -> None:
    model = LightGCN(NU, NI, normalized_adjacency(EDGES, NU, NI), dim=4, num_layers=0)
    u, i = model()
    torch.testing.assert_close(u, model.user_embedding.weight)
    torch.testing.assert_close(i, model.item_embedding.weight)
    users = torch.arange(NU)
    torch.testing.assert_close(model.score(users), model.user_embedding.weight @ model.item_embedding.weight.t())


@pytest.mark.parametrize("alpha", [None, (0.5, 0.3, 0.2)])
def test_lightgcn_forward_matches_dense_reference(alpha: tuple[float, ...] | None) -> None:
    model = LightGCN(NU, NI, normalized_adjacency(EDGES, NU, NI).double(), dim=3, num_layers=2, alpha=alpha).double()
    a = dense_adjacency(EDGES, NU, NI)
    e0 = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    weights = alpha or (1 / 3, 1 / 3, 1 / 3)
    expected = weights[0] * e0 + weights[1] * (a @ e0) + weights[2] * (a @ a @ e0)
    u, i = model()
    torch.testing.assert_close(torch.cat([u, i]), expected)
    with pytest.raises(ValueError):
        LightGCN(NU, NI, normalized_adjacency(EDGES, NU, NI), num_layers=2, alpha=(0.5, 0.5))
    with pytest.raises(ValueError):
        LightGCN(NU + 1, NI, normalized_adjacency(EDGES, NU, NI))


def test_most_popular_ranks_by_counts() -> None:
    counts = torch.tensor([3, 10, 0, 7])
    model = MostPopular(counts, num_users=NU)
    assert list(model.parameters()) == []
    scores = model.score(torch.tensor([0, 2, 1]))
    assert scores.shape == (3, NI)
    assert (scores.argsort(dim=1, descending=True) == torch.tensor([1, 3, 0, 2])).all()
    u, i = model()
    assert u.shape == (NU, 1) and i.shape == (NI, 1)
    torch.testing.assert_close(u[[1]] @ i.t(), counts.float()[None])
    assert model.regularized(torch.tensor([0]), torch.tensor([1]), torch.tensor([2])) == 0


def test_reset_parameters_is_deterministic() -> None:
    adj = normalized_adjacency(EDGES, NU, NI)
    for model in (BPRMF(NU, NI, dim=6), LightGCN(NU, NI, adj, dim=6)):
        torch.manual_seed(7)
        model.reset_parameters()
        first = copy.deepcopy(model.state_dict())
        model.reset_parameters()
        assert not torch.equal(first["user_embedding.weight"], model.user_embedding.weight)
        torch.manual_seed(7)
        model.reset_parameters()
        for name, value in model.state_dict().items():
            torch.testing.assert_close(value, first[name])


def test_gradients_flow_through_propagation() -> None:
    # item 1 is in no batch below: its embedding gets a gradient only through propagation (it neighbours all users).
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 0, 2]), torch.tensor([3, 3, 3])
    for num_layers, reaches_item_1 in ((2, True), (0, False)):
        model = LightGCN(NU, NI, normalized_adjacency(EDGES, NU, NI), dim=4, num_layers=num_layers)
        u, i = model()
        diff = (u[users] * i[pos]).sum(1) - (u[users] * i[neg]).sum(1)
        loss = -torch.nn.functional.logsigmoid(diff).mean() + 1e-4 * model.regularized(users, pos, neg)
        loss.backward()
        grad = model.item_embedding.weight.grad
        assert grad is not None and model.user_embedding.weight.grad is not None
        assert bool(grad[1].abs().sum() > 0) is reaches_item_1
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_lightgcn_deepcopy_and_state_dict() -> None:
    model = LightGCN(NU, NI, normalized_adjacency(EDGES, NU, NI), dim=4)
    assert "adj" not in model.state_dict()
    clone = copy.deepcopy(model)
    assert clone.adj is not model.adj and clone.adj.layout == torch.sparse_csr
    torch.testing.assert_close(clone()[0], model()[0])
    with torch.no_grad():
        clone.user_embedding.weight.add_(1.0)
    assert not torch.equal(clone.user_embedding.weight, model.user_embedding.weight)
    other = LightGCN(NU, NI, normalized_adjacency(EDGES, NU, NI), dim=4)
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other()[1], model()[1])


def test_spmm_with_a_precomputed_transpose_has_the_dense_gradient() -> None:
    from scenerec.gnn.propagation import spmm

    gen = torch.Generator().manual_seed(0)
    dense = (torch.rand(7, 5, generator=gen) > 0.5).double() * torch.rand(7, 5, generator=gen, dtype=torch.float64)
    adj = dense.to_sparse_csr()
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: spmm(adj, t), (x,))
    assert torch.autograd.gradcheck(lambda t: spmm(adj, t, dense.t().to_sparse_csr()), (x,))
    with pytest.raises(ValueError, match="sparse_csr"):
        spmm(dense, x)
