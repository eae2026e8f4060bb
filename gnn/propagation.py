"""Graph propagation over the user–item bipartite graph with a pre-normalised torch CSR adjacency.

On CPU, a torch ``sparse_csr`` matmul against the symmetric normalised adjacency is much faster than PyG's
``edge_index`` message passing (measured in ``benchmarks/README.md``, ``benchmarks/propagation.py``). Autograd through ``adj @ x`` would transpose
the CSR for the backward pass; since ``D^-1/2 A D^-1/2`` of an undirected graph is symmetric, :class:`SymmetricSpMM`
reuses the same matmul for the gradient instead.

Node layout: users are nodes ``0 .. num_users - 1``, items are nodes ``num_users .. num_users + num_items - 1``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

__all__ = ["SparseMatMul", "SymmetricSpMM", "normalized_adjacency", "propagate", "spmm"]


def normalized_adjacency(
    edge_index: torch.Tensor,
    num_users: int,
    num_items: int,
    edge_weight: torch.Tensor | None = None,
    item_edges: torch.Tensor | None = None,
    item_edge_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The symmetric normalised adjacency ``D^-1/2 A D^-1/2`` of the undirected user–item graph, as sparse CSR.

    Args:
        edge_index: LongTensor (2, E) of (user index, item index) pairs, items indexed from 0.
        num_users: number of users U.
        num_items: number of items I.
        edge_weight: optional non-negative weights (E,); 1 when omitted. Its dtype is the result's (else float32).
        item_edges: optional LongTensor (2, L) of undirected item-item links (item indices from 0), e.g. the
            ``SAME_AS`` pairs that connect two scenes; self-links are dropped.
        item_edge_weight: optional non-negative weights (L,) of ``item_edges``; 1 when omitted.

    Returns:
        A ``torch.sparse_csr`` tensor of shape (N, N), N = U + I, items offset by U. Both directions of every edge are
        stored; repeated (user, item) pairs have their weights summed; isolated nodes have empty rows (their degree
        is 0 and their inverse square-root degree is taken as 0, not infinity).
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
    if num_users < 0 or num_items < 0:
        raise ValueError(f"num_users and num_items must be >= 0, got {num_users} and {num_items}")
    edge_index = edge_index.long()
    num_edges = edge_index.size(1)
    if num_edges and (
        int(edge_index[0].min()) < 0
        or int(edge_index[0].max()) >= num_users
        or int(edge_index[1].min()) < 0
        or int(edge_index[1].max()) >= num_items
    ):
        raise ValueError(f"an edge is outside {num_users} users x {num_items} items")
    if edge_weight is None:
        weight = torch.ones(num_edges, dtype=torch.float32, device=edge_index.device)
    else:
        if edge_weight.shape != (num_edges,):
            raise ValueError(f"edge_weight must have shape ({num_edges},), got {tuple(edge_weight.shape)}")
        if num_edges and bool((edge_weight < 0).any()):
            raise ValueError("edge_weight must be non-negative")
        weight = edge_weight if edge_weight.is_floating_point() else edge_weight.float()
    n = num_users + num_items
    src, dst = edge_index[0], edge_index[1] + num_users
    if item_edges is not None and item_edges.numel():
        if item_edges.dim() != 2 or item_edges.size(0) != 2:
            raise ValueError(f"item_edges must have shape (2, L), got {tuple(item_edges.shape)}")
        links = item_edges.long().to(edge_index.device)
        if int(links.min()) < 0 or int(links.max()) >= num_items:
            raise ValueError(f"an item link is outside the {num_items} items")
        link_weight = (
            torch.ones(links.size(1), dtype=weight.dtype, device=weight.device)
            if item_edge_weight is None
            else item_edge_weight.to(weight.dtype)
        )
        if link_weight.shape != (links.size(1),) or bool((link_weight < 0).any()):
            raise ValueError("item_edge_weight must be non-negative with one weight per item link")
        proper = links[0] != links[1]
        src = torch.cat([src, links[0, proper] + num_users])
        dst = torch.cat([dst, links[1, proper] + num_users])
        weight = torch.cat([weight, link_weight[proper]])
    index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    coo = torch.sparse_coo_tensor(
        index, torch.cat([weight, weight]), (n, n), check_invariants=True
    ).coalesce()  # sums duplicates
    row, col = coo.indices()
    values = coo.values()
    deg = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, row, values)
    inv_sqrt = deg.pow(-0.5)
    inv_sqrt.masked_fill_(deg <= 0, 0.0)
    norm = torch.sparse_coo_tensor(
        coo.indices(), inv_sqrt[row] * values * inv_sqrt[col], (n, n), is_coalesced=True, check_invariants=False
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return norm.to_sparse_csr()


class SymmetricSpMM(torch.autograd.Function):
    """``adj @ x`` for a symmetric sparse ``adj`` (N, N) and dense ``x`` (N, d), differentiable in ``x`` only.

    The backward pass is ``adj @ grad`` (valid because ``adj.T == adj``), which avoids the CSR transpose that
    torch's own sparse autograd performs. No gradient flows to ``adj``.
    """

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``adj`` (N, N) sparse CSR, symmetric; ``x`` (N, d) -> (N, d)."""
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[None, torch.Tensor | None]:
        """``grad_out`` (N, d) -> (None, ``adj @ grad_out``)."""
        grad_x = ctx.adj @ grad_out if ctx.needs_input_grad[1] else None
        return None, grad_x


def propagate(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One propagation step ``adj @ x``: ``adj`` (N, N) symmetric sparse CSR (from :func:`normalized_adjacency`),
    ``x`` (N, d) dense -> (N, d), with the gradient to ``x`` computed by :class:`SymmetricSpMM`."""
    if adj.layout != torch.sparse_csr:
        raise ValueError(f"adj must be a torch.sparse_csr tensor, got layout {adj.layout}")
    if x.dim() != 2 or x.size(0) != adj.size(1):
        raise ValueError(f"x must have shape ({adj.size(1)}, d), got {tuple(x.shape)}")
    out: torch.Tensor = SymmetricSpMM.apply(adj, x)
    return out


class SparseMatMul(torch.autograd.Function):
    """``adj @ x`` for any sparse CSR ``adj`` (N, M) whose transpose ``adj_t`` (M, N, CSR) is precomputed once:
    the backward pass is ``adj_t @ grad``, without the per-call CSR transpose of torch's sparse autograd."""

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``adj`` (N, M), ``adj_t`` (M, N), ``x`` (M, d) -> (N, d)."""
        ctx.adj_t = adj_t
        return adj @ x

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[None, None, torch.Tensor | None]:
        """``grad_out`` (N, d) -> (None, None, ``adj_t @ grad_out``)."""
        grad_x = ctx.adj_t @ grad_out if ctx.needs_input_grad[2] else None
        return None, None, grad_x


def spmm(adj: torch.Tensor, x: torch.Tensor, adj_t: torch.Tensor | None = None) -> torch.Tensor:
    """``adj @ x`` differentiable in ``x``: ``adj`` sparse CSR (N, M), ``x`` (M, d); ``adj_t`` its transpose as CSR
    (computed here when omitted; pass it to reuse it across calls)."""
    if adj.layout != torch.sparse_csr:
        raise ValueError(f"adj must be a torch.sparse_csr tensor, got layout {adj.layout}")
    if adj_t is None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            adj_t = adj.t().to_sparse_csr()
    out: torch.Tensor = SparseMatMul.apply(adj, adj_t, x)
    return out
