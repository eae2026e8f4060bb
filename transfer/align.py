"""Entity alignment across two scene subgraphs: which node of the left scene is the same thing as which node of the
right scene, from their texts and their graph neighbourhoods.

Pipeline (every step on arrays, no database; :meth:`scenerec.aligner.Aligner.align` feeds it from a store, through
:func:`joint_features`, :func:`joint_edges`, :func:`orient_pairs` and :func:`split_pairs`):

1. **Features.** Each node's text embedding (LLM), L2-normalised.
2. **Structure.** ``hops`` rounds of mean aggregation over the undirected graph (self loops included); the
   normalised outputs of every round are concatenated (training-free, in the spirit of SEU, Mao et al. 2021); with
   ``method="gcn"``, a GCN-Align-style residual layer on top is trained on the seed pairs (:class:`AlignGCN`).
3. **Similarity.** Cosine, corrected for hubness by CSLS (Lample et al. 2018); computed in blocks, never all pairs in
   Python.
4. **Matching.** One-to-one: mutual nearest neighbours under CSLS. Each pair gets a calibrated probability (a
   logistic model of its CSLS score and its margin over the runner-up, fitted on the seed pairs); pairs at or above
   ``threshold`` are accepted, the others are listed for review, never forced.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from scenerec.gnn.propagation import spmm

__all__ = [
    "METHODS",
    "AlignConfig",
    "AlignGCN",
    "AlignmentResult",
    "align",
    "joint_edges",
    "joint_features",
    "orient_pairs",
    "propagate_features",
    "shared_users",
    "split_pairs",
]

log = logging.getLogger(__name__)

#: Structure encoders of :class:`AlignConfig`.
METHODS = ("propagation", "gcn")


@dataclass(frozen=True)
class AlignConfig:
    """Settings of :func:`align`.

    ``hops``: neighbourhood rounds; ``csls_k``: neighbours in the CSLS hubness correction (0: plain cosine);
    ``threshold``: calibrated probability from which a mutual-nearest pair is accepted; ``method``: ``"gcn"`` (a
    residual GCN layer trained on the seeds; without seeds it falls back to the training-free features) or
    ``"propagation"`` (training-free); ``epochs``, ``lr``, ``dim``, ``margin``, ``negatives``: GCN
    training; ``bootstrap``: rounds of adding accepted pairs to the seeds and retraining (``"gcn"`` only);
    ``block``: rows per similarity block; ``seed``: for the GCN.
    """

    hops: int = 2
    csls_k: int = 10
    threshold: float = 0.5
    method: str = "gcn"
    epochs: int = 30
    lr: float = 5e-3
    dim: int = 64
    margin: float = 0.5
    negatives: int = 10
    bootstrap: int = 0
    block: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"AlignConfig.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.hops < 0 or self.csls_k < 0 or not 0.0 <= self.threshold <= 1.0 or self.block < 1:
            raise ValueError(f"invalid AlignConfig: {self}")


@dataclass
class AlignmentResult:
    """What :func:`align` found, in node indices of its input.

    ``pairs``: accepted one-to-one pairs ``left``, ``right``, ``score`` (calibrated probability), ``csls``,
    ``method``; ``review``: the mutual-nearest pairs below the threshold, same columns; ``metrics``: on the held-out
    gold pairs, ``hits@1``, ``hits@10``, ``mrr`` (ranking of the gold right node among ALL right nodes),
    ``precision`` and ``recall`` of the accepted pairs (empty without gold); counts and seconds.
    """

    pairs: pd.DataFrame
    review: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _adjacency(edges: np.ndarray, n: int) -> Tensor:
    """Row-normalised adjacency (mean aggregation) of the undirected graph ``edges`` (2, E) with self loops, CSR."""
    e = torch.as_tensor(np.asarray(edges, dtype=np.int64).reshape(2, -1))
    loops = torch.arange(n)
    rows = torch.cat([e[0], e[1], loops])
    cols = torch.cat([e[1], e[0], loops])
    coo = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), torch.ones(len(rows)), (n, n), check_invariants=False
    ).coalesce()
    index = coo.indices()
    values = torch.ones(index.shape[1])  # repeated edges count once
    deg = torch.zeros(n).index_add_(0, index[0], values)
    norm = torch.sparse_coo_tensor(index, values / deg[index[0]], (n, n), is_coalesced=True, check_invariants=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return norm.to_sparse_csr()


def propagate_features(x: Tensor, adj: Tensor, hops: int) -> Tensor:
    """``[x, A x, ..., A^hops x]``, each block L2-normalised, the whole row L2-normalised; (n, (hops + 1) d)."""
    outs = [F.normalize(x, dim=-1)]
    for _ in range(hops):
        x = adj @ x
        outs.append(F.normalize(x, dim=-1))
    return F.normalize(torch.cat(outs, dim=1), dim=-1)


class AlignGCN(torch.nn.Module):
    """GCN-Align-style encoder trained on the seed pairs, as a residual on the training-free features ``p``
    (:func:`propagate_features`): ``h = normalise(p + A (p U) V^T)``, a graph convolution through a rank-``dim``
    bottleneck. ``V`` starts at zero, so training starts from the training-free alignment and can only move away
    from it where the seeds say so. Shared by both scenes, so aligned nodes meet in one space."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.down = torch.nn.Linear(in_dim, dim, bias=False)
        self.up = torch.nn.Linear(dim, in_dim, bias=False)
        torch.nn.init.zeros_(self.up.weight)

    def forward(self, p: Tensor, adj: Tensor, adj_t: Tensor | None = None) -> Tensor:
        """``p`` (n, in_dim) training-free features, ``adj`` (n, n) CSR and its transpose ``adj_t`` -> (n, in_dim)."""
        return F.normalize(p + self.up(spmm(adj, self.down(p), adj_t)), dim=-1)


def _train_gcn(p: Tensor, adj: Tensor, seeds: np.ndarray, right: np.ndarray, config: AlignConfig) -> Tensor:
    """Train :class:`AlignGCN` on the training-free features ``p`` with a margin loss: each seed pair closer than
    its ``negatives`` hardest right-side non-matches (re-mined every 10 epochs) by ``margin`` in squared Euclidean
    distance of the unit embeddings."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = AlignGCN(p.shape[1], config.dim)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    s_left = torch.as_tensor(seeds[:, 0])
    s_right = torch.as_tensor(seeds[:, 1])
    right_t = torch.as_tensor(right)
    own = torch.searchsorted(right_t, s_right.contiguous())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        adj_t = adj.t().to_sparse_csr()
    negatives = torch.zeros(len(seeds), config.negatives, dtype=torch.long)
    for epoch in range(config.epochs):
        if epoch % 10 == 0:
            with torch.no_grad():
                h = model(p, adj, adj_t)
                sims = torch.cat(
                    [h[s_left[i : i + config.block]] @ h[right_t].t() for i in range(0, len(seeds), config.block)]
                )
                sims[torch.arange(len(seeds)), own] = -np.inf
                negatives = right_t[sims.topk(config.negatives, dim=1).indices]
                del sims
        h = model(p, adj, adj_t)
        hl, hr = h[s_left], h[s_right]
        pos = (hl - hr).pow(2).sum(-1)
        neg = (hl.unsqueeze(1) - h[negatives]).pow(2).sum(-1)
        loss = F.relu(config.margin + pos.unsqueeze(1) - neg).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (epoch + 1) % 10 == 0:
            log.info("align gcn epoch %d loss %.4f", epoch + 1, float(loss.detach()))
    with torch.no_grad():
        return model(p, adj, adj_t)


def _hubness(hl: Tensor, hr: Tensor, k: int, block: int) -> Tensor:
    """Mean similarity (m,) of each row of ``hl`` to its ``k`` nearest rows of ``hr`` (blocked)."""
    if k == 0:
        return hl.new_zeros(hl.shape[0])
    k = min(k, hr.shape[0])
    return torch.cat([(hl[i : i + block] @ hr.t()).topk(k, dim=1).values.mean(1) for i in range(0, len(hl), block)])


@dataclass
class _Similarity:
    """Blocked CSLS similarity between the left and right node embeddings."""

    hl: Tensor
    hr: Tensor
    r_left: Tensor
    r_right: Tensor
    block: int

    def scores(self, rows: slice | Tensor) -> Tensor:
        """CSLS scores (b, n_right) of the left positions ``rows`` (a slice or an index tensor)."""
        s = self.hl[rows] @ self.hr.t()
        return 2 * s - self.r_left[rows, None] - self.r_right[None, :]

    def best(self, k: int) -> tuple[Tensor, Tensor]:
        """Top-``k`` CSLS scores and right positions of every left row."""
        vals, idx = [], []
        for i in range(0, len(self.hl), self.block):
            v, j = self.scores(slice(i, i + self.block)).topk(min(k, self.hr.shape[0]), dim=1)
            vals.append(v)
            idx.append(j)
        return torch.cat(vals), torch.cat(idx)

    def best_left(self) -> Tensor:
        """Best left position of every right column (under CSLS)."""
        best_v = torch.full((self.hr.shape[0],), -np.inf)
        best_i = torch.zeros(self.hr.shape[0], dtype=torch.long)
        for i in range(0, len(self.hl), self.block):
            v, j = self.scores(slice(i, i + self.block)).max(dim=0)
            better = v > best_v
            best_v = torch.where(better, v, best_v)
            best_i = torch.where(better, j + i, best_i)
        return best_i

    def ranks(self, left_pos: Tensor, right_pos: Tensor) -> Tensor:
        """1-based rank of ``right_pos[j]`` among all right nodes for left node ``left_pos[j]`` (ties pessimistic)."""
        out = []
        for i in range(0, len(left_pos), self.block):
            s = self.scores(left_pos[i : i + self.block])
            gold = s.gather(1, right_pos[i : i + self.block, None])
            out.append((s > gold).sum(1) + (s == gold).sum(1))
        return torch.cat(out)


def _calibrate(features: np.ndarray, labels: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Logistic regression (Newton steps, L2 ``l2`` on the weights of the standardised ``features`` (m, f), so that
    separable seeds do not drive the probabilities to exactly 0 or 1) of ``labels`` (0/1); returns (weights with
    the standardisation folded in, bias)."""
    mu, sd = features.mean(0), features.std(0) + 1e-9
    z = (features - mu) / sd
    w = np.zeros(z.shape[1])
    b = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        g_w = z.T @ (p - labels) + l2 * w
        g_b = float((p - labels).sum())
        h = (p * (1 - p))[:, None]
        hess = np.zeros((len(w) + 1, len(w) + 1))
        hess[:-1, :-1] = z.T @ (z * h) + l2 * np.eye(len(w))
        hess[:-1, -1] = hess[-1, :-1] = (z * h).sum(0)
        hess[-1, -1] = float(h.sum()) + 1e-9
        step = np.linalg.solve(hess, np.concatenate([g_w, [g_b]]))
        w, b = w - step[:-1], b - float(step[-1])
        if np.abs(step).max() < 1e-8:
            break
    return w / sd, b - float((w * mu / sd).sum())


def align(
    x: np.ndarray,
    edges: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    seeds: np.ndarray | None = None,
    config: AlignConfig | None = None,
    gold: np.ndarray | None = None,
) -> AlignmentResult:
    """Align the ``left`` nodes with the ``right`` nodes (disjoint index arrays into the rows of ``x``).

    Args:
        x: (n, d) node features (text embeddings; zero rows for nodes without text).
        edges: (2, E) undirected structure among the n nodes (both scenes; edges across them are allowed).
        left, right: node indices of the two sides.
        seeds: (s, 2) known (left, right) pairs: the training signal of ``"gcn"`` and of the calibration; they are
            part of the answer (score 1, method ``seed``) and never re-proposed.
        config: :class:`AlignConfig`.
        gold: (m, 2) held-out true pairs to measure against (``metrics``).

    Returns an :class:`AlignmentResult` in node indices. Without seeds the calibration cannot be fitted: scores are
    then the CSLS values squashed by a logistic with unit slope, and the threshold applies to those.
    """
    cfg = config or AlignConfig()
    t0 = time.perf_counter()
    x_t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    n = x_t.shape[0]
    left = np.asarray(left, dtype=np.int64)
    right = np.sort(np.asarray(right, dtype=np.int64))
    if len(left) == 0 or len(right) == 0:
        raise ValueError("align needs nodes on both sides")
    if np.intersect1d(left, right).size:
        raise ValueError("left and right node sets overlap")
    seeds = np.zeros((0, 2), dtype=np.int64) if seeds is None else np.asarray(seeds, dtype=np.int64).reshape(-1, 2)
    adj = _adjacency(edges, n)
    p = propagate_features(x_t, adj, cfg.hops)
    if cfg.method == "gcn" and not len(seeds):
        log.info("align: no seed pairs to train the GCN on; training-free propagation instead")
        cfg = replace(cfg, method="propagation")
    h = _train_gcn(p, adj, seeds, right, cfg) if cfg.method == "gcn" else p
    rounds = cfg.bootstrap if cfg.method == "gcn" else 0
    sim = _similarity(h, left, right, cfg)
    result = _match(sim, left, right, seeds, cfg)
    for r in range(rounds):
        extra = result.pairs[["left", "right"]].to_numpy(dtype=np.int64)
        grown = np.unique(np.concatenate([seeds, extra]), axis=0)
        log.info("align bootstrap round %d: %d seeds", r + 1, len(grown))
        sim = _similarity(_train_gcn(p, adj, grown, right, cfg), left, right, cfg)
        result = _match(sim, left, right, seeds, cfg)
    if gold is not None and len(gold):
        result.metrics = _metrics(sim, left, right, np.asarray(gold, dtype=np.int64).reshape(-1, 2), result)
    result.info.update(
        {"left": len(left), "right": len(right), "seeds": len(seeds), "method": cfg.method, "hops": cfg.hops}
    )
    result.info["seconds"] = time.perf_counter() - t0
    return result


def _similarity(h: Tensor, left: np.ndarray, right: np.ndarray, cfg: AlignConfig) -> _Similarity:
    hl, hr = h[torch.as_tensor(left)], h[torch.as_tensor(right)]
    return _Similarity(
        hl, hr, _hubness(hl, hr, cfg.csls_k, cfg.block), _hubness(hr, hl, cfg.csls_k, cfg.block), cfg.block
    )


def _match(
    sim: _Similarity, left: np.ndarray, right: np.ndarray, seeds: np.ndarray, cfg: AlignConfig
) -> AlignmentResult:
    top_v, top_i = sim.best(2)
    back = sim.best_left()
    best = top_i[:, 0]
    mutual = back[best] == torch.arange(len(left))
    csls = top_v[:, 0].numpy().astype(np.float64)
    margin = (top_v[:, 0] - top_v[:, 1]).numpy().astype(np.float64) if top_v.shape[1] > 1 else np.zeros(len(left))
    feats = np.stack([csls, margin], axis=1)
    left_pos = {int(v): i for i, v in enumerate(left)}
    right_pos = np.searchsorted(right, seeds[:, 1]) if len(seeds) else np.zeros(0, dtype=np.int64)
    if len(seeds) >= 2:
        # positives: each seed's own left node scored against its true right node; negatives: the runner-up
        s_left = np.array([left_pos[int(v)] for v in seeds[:, 0]])
        pos_f = np.stack([csls[s_left], margin[s_left]], axis=1)
        right_is_gold = best.numpy()[s_left] == right_pos
        second_v = top_v[s_left, 1].numpy().astype(np.float64)
        neg_f = np.stack([second_v, np.zeros(len(s_left))], axis=1)
        feats_cal = np.concatenate([pos_f[right_is_gold], neg_f])
        labels = np.concatenate([np.ones(int(right_is_gold.sum())), np.zeros(len(neg_f))])
        w, b = _calibrate(feats_cal, labels)
        prob = 1.0 / (1.0 + np.exp(-(feats @ w + b)))
    else:
        prob = 1.0 / (1.0 + np.exp(-csls))
    seeded_left = set(seeds[:, 0].tolist())
    seeded_right = set(seeds[:, 1].tolist())
    rows = []
    mutual_np, best_np = mutual.numpy(), best.numpy()
    for i in np.flatnonzero(mutual_np):
        lnode, rnode = int(left[i]), int(right[best_np[i]])
        if lnode in seeded_left or rnode in seeded_right:
            continue
        rows.append((lnode, rnode, float(prob[i]), float(csls[i])))
    frame = pd.DataFrame(rows, columns=["left", "right", "score", "csls"])
    frame["method"] = cfg.method
    seed_frame = pd.DataFrame(
        {"left": seeds[:, 0], "right": seeds[:, 1], "score": 1.0, "csls": np.nan, "method": "seed"}
    )
    accepted = frame[frame["score"] >= cfg.threshold]
    review = frame[frame["score"] < cfg.threshold].sort_values("score", ascending=False, ignore_index=True)
    pairs = pd.concat([seed_frame, accepted], ignore_index=True) if len(seeds) else accepted.reset_index(drop=True)
    return AlignmentResult(pairs=pairs, review=review, info={"mutual": int(mutual_np.sum())})


def _metrics(
    sim: _Similarity, left: np.ndarray, right: np.ndarray, gold: np.ndarray, result: AlignmentResult
) -> dict[str, float]:
    left_index = np.full(int(max(left.max(), gold[:, 0].max())) + 1, -1, dtype=np.int64)
    left_index[left] = np.arange(len(left))
    lp = left_index[gold[:, 0]]
    rp = np.searchsorted(right, gold[:, 1])
    if (lp < 0).any() or (rp >= len(right)).any() or (right[np.minimum(rp, len(right) - 1)] != gold[:, 1]).any():
        raise ValueError("a gold pair is not a (left node, right node) pair of the inputs")
    ranks = sim.ranks(torch.as_tensor(lp), torch.as_tensor(rp)).double()
    predicted = result.pairs[result.pairs["method"] != "seed"]
    truth = {(int(a), int(b)) for a, b in gold}
    found = sum((int(a), int(b)) in truth for a, b in zip(predicted["left"], predicted["right"], strict=True))
    gold_left = set(gold[:, 0].tolist())
    proposed_for_gold = int(predicted["left"].isin(gold_left).sum())
    return {
        "hits@1": float((ranks <= 1).double().mean()),
        "hits@10": float((ranks <= 10).double().mean()),
        "mrr": float((1.0 / ranks).mean()),
        "precision": found / proposed_for_gold if proposed_for_gold else 0.0,
        "recall": found / len(gold),
        "pairs": float(len(gold)),
    }


# ------------------------------------------------------------------------------------------------ inputs from a graph
def joint_features(blocks: Sequence[np.ndarray | None], sizes: Sequence[int]) -> np.ndarray:
    """The node features :func:`align` takes for nodes of several kinds numbered one kind after the other: block
    ``j`` ((sizes[j], d), e.g. the item then the entity text embeddings) at rows ``sum(sizes[:j])`` onwards, zero
    rows for a kind without features (None). Returns (sum(sizes), d) float32; ``ValueError`` when no block is given,
    their widths differ or a block's rows are not its size."""
    if len(blocks) != len(sizes):
        raise ValueError(f"{len(blocks)} feature blocks for {len(sizes)} node kinds")
    given = [b for b in blocks if b is not None]
    if not given:
        raise ValueError("no node features to align with")
    widths = {b.shape[1] for b in given}
    if len(widths) > 1:
        raise ValueError(f"node features differ in width ({sorted(widths)})")
    x = np.zeros((int(sum(sizes)), widths.pop()), dtype=np.float32)
    start = 0
    for block, size in zip(blocks, sizes, strict=True):
        if block is not None:
            if block.shape[0] != size:
                raise ValueError(f"a feature block has {block.shape[0]} rows for {size} nodes")
            x[start : start + size] = block
        start += size
    return x


def joint_edges(
    edges: Mapping[tuple[str, str, str], pd.DataFrame], offset: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The structure and the gold pairs among the node kinds of ``offset`` (kind -> index of its first node in the
    joint numbering) from typed edge tables (``edges[(src_kind, rel, dst_kind)]`` with int ``src``, ``dst``, as
    :class:`scenerec.kg.EdgeIndex` holds them). Returns ``structure`` (2, E): every ``RELATED`` edge, and ``gold``
    (G, 2): the ``SAME_AS`` pairs whose ``method`` is ``gold``, in joint indices and stored direction (``SAME_AS``
    links are never structure)."""
    structure, gold_parts = [], []
    for (a, rel, b), df in edges.items():
        if a not in offset or b not in offset or df.empty:
            continue
        pair = np.stack([df["src"].to_numpy(np.int64) + offset[a], df["dst"].to_numpy(np.int64) + offset[b]])
        if rel == "RELATED":
            structure.append(pair)
        elif rel == "SAME_AS" and "method" in df:
            gold_parts.append(pair[:, (df["method"].astype("string").fillna("") == "gold").to_numpy()])
    joint = np.concatenate(structure, axis=1) if structure else np.zeros((2, 0), dtype=np.int64)
    gold = np.concatenate(gold_parts, axis=1).T if gold_parts else np.zeros((0, 2), dtype=np.int64)
    return joint, gold


def orient_pairs(pairs: np.ndarray, left: np.ndarray, right: np.ndarray, n: int) -> np.ndarray:
    """The pairs (P, 2) of nodes ``< n`` that join a ``left`` node with a ``right`` one, as (left, right) rows
    whichever way they were stored, each once, sorted; pairs within one side or outside both are dropped."""
    is_left, is_right = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    is_left[left], is_right[right] = True, True
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    forward = is_left[pairs[:, 0]] & is_right[pairs[:, 1]]
    backward = is_right[pairs[:, 0]] & is_left[pairs[:, 1]]
    oriented = np.concatenate([pairs[forward], pairs[backward][:, ::-1]])
    return np.unique(oriented, axis=0) if len(oriented) else oriented.reshape(0, 2)


def split_pairs(pairs: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``pairs`` split at random (``numpy.random.default_rng(seed)``) into ``floor(fraction * len(pairs))`` seeds
    and the held-out rest, both in their order in ``pairs``."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_seeds = int(np.floor(fraction * len(pairs)))
    return pairs[np.sort(order[:n_seeds])], pairs[np.sort(order[n_seeds:])]


def shared_users(users: np.ndarray, scenes: np.ndarray, left: int, right: int) -> int:
    """How many users interacted with items of both scene indices ``left`` and ``right``, from one row per
    interaction: its user index (``users``) and its item's scene index (``scenes``)."""
    return len(np.intersect1d(users[scenes == left], users[scenes == right]))
