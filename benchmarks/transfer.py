"""Cross-scene transfer on Amazon Arts–Office (URLLM's release), Office as the target scene.

    .venv/bin/python benchmarks/transfer.py [--protocols warm cold] [--models pop als-target als-joint target-only
        shared-users +alignment +gate ...] [--seeds 1] [--epochs 60] [--threads 2] [--store /tmp/scenerec-bench/...]

Protocols (held-out users are URLLM's own user-level split: users 8000-8999 are the test users, 9000-9576 the
validation users, whose metrics drive early stopping and every tuning choice; nothing is tuned on test users):

* ``warm``: the last Office interaction (by sequence position) of each held-out user is its test (validation) item;
  that user's earlier interactions, Arts history included, are training data; interactions at or after the test
  item's position (URLLM's sequences end with one Arts and one Office target at the same position) are not.
* ``cold``: the 1,000 test users (and the validation users) lose ALL their Office interactions, which become the
  test (validation) items; their Arts history stays.

Ranking is over all 19,757 Office items, the user's training items excluded. Metrics: NDCG@10 and Recall@10.

Models (``--models``):

* ``pop``: Office popularity over the training interactions.
* ``itemknn-target``, ``itemknn-joint``: item-based kNN (cosine of the binary item columns) plus a popularity prior
  whose weight is chosen on the validation users; the history is the user's Office items or all of them.
* ``als-target``, ``als-joint``: implicit's ALS (Hu, Koren & Volinsky, 2008) on the Office-only or the joint
  user x item matrix, 15 iterations, its factors (64, 128), regularisation (0.01, 0.1, 1) and confidence weight
  alpha (1, 10, 40) chosen on the validation users (``pip install implicit``; skipped with a message without it).
* ``sasrec-target``, ``sasrec-joint``: SASRec (Kang & McAuley, 2018), a sequential peer (URLLM's sequences are in
  time order, and warm is a next-item protocol): 2 causal self-attention blocks over the last 50 items of the
  user's Office sequence or of the mixed Arts + Office sequence, trained to predict each next Office item (softmax
  against 2,048 sampled Office items), dimension 64, dropout 0.5, Adam 1e-3, early stopping on the validation
  users (patience ``--patience`` epochs); users without any history get popularity.
* scenerec's ablations, all :class:`scenerec.transfer.CrossSceneGNN` with the settings of ``fit("crossscene")``
  (the ``crossscene`` preset of :data:`scenerec.registry.MODELS`: item id vectors plus text, an item bias, view dropout 0.5) except:
  ``target-only`` (trained on the Office interactions alone, no gate), ``shared-users`` (both scenes, users
  shared, no gate), ``+alignment`` (plus the ``SAME_AS`` item links the aligner finds between the scenes, no gate),
  ``+gate`` (plus the per-scene gate: the full model), ``gate-no-align`` (the gate without the links).
  All train with the in-scene softmax loss (lr 1e-2, 1,024 (user, scene) rows per step, early stopping on the
  validation users' NDCG@10 with patience 10). The item-item channel is off unless ``--item-item`` names a kind:
  ``knn`` (item kNN across scenes; its exponents and fusion weight chosen per scene on the validation users by
  :func:`scenerec.gnn.train.tune_item_item`, as ``fit("crossscene")`` does) or ``ease`` (a dense EASE inverse over
  the 19,757 Office items, slow: see ``benchmarks/README.md``).

On cold users the target-only models are skipped: those users have no Office history, so such a model has nothing
to rank by (``--cold-target-only`` runs them anyway). The aligner runs once, without seeds (the dataset has no gold
item pairs): training-free text + structure features, CSLS, mutual nearest neighbours, accepted when the logistic
of the CSLS score is >= 0.5; its pairs are written into the store as ``SAME_AS`` and reused.

The graph (items, brand/category entities, all-MiniLM-L6-v2 text embeddings of all 38,396 items) is built once into
``--store`` by scenerec's own pipeline and reused (its cost: ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scenerec.gnn import GraphInputs, build_hetero
from scenerec.gnn.evaluate import CSR, evaluate_scores
from scenerec.gnn.train import TrainConfig
from scenerec.ids import IdMap
from scenerec.registry import MODELS
from scenerec.trainer import train_recommender

#: ``fit("crossscene")``'s preset, the settings every variant starts from.
CROSSSCENE_KW = MODELS["crossscene"].preset

TARGET = "office"
DATASET = "amazon_art_office_urllm"
TEST_USERS = range(8000, 9000)
VALID_USERS = range(9000, 9577)
KS = (10, 20)
#: Item pairs the aligner accepts as SAME_AS (its calibrated score; without seeds, the logistic of the CSLS score).
ALIGN_THRESHOLD = 0.5


@dataclass
class Graph:
    """The stored graph as arrays: interactions (user, item, position) and the SceneGNN inputs (``train`` unset)."""

    idmap: IdMap
    users: np.ndarray
    items: np.ndarray
    position: np.ndarray
    item_scene: np.ndarray
    scene_index: dict[str, int]
    data: Any
    test_users: np.ndarray
    valid_users: np.ndarray
    links: tuple[torch.Tensor, torch.Tensor]

    @property
    def shape(self) -> tuple[int, int]:
        return self.idmap.size("user"), self.idmap.size("item")

    def target_items(self) -> np.ndarray:
        return np.flatnonzero(self.item_scene == self.scene_index[TARGET])


@dataclass
class Split:
    train: CSR
    valid: CSR
    test: CSR
    #: indices into the :class:`Graph` arrays of the training interactions (their order in time: ``Graph.position``)
    train_rows: np.ndarray


def load_graph(store: Path, shared: Path) -> Graph:
    """Build the Arts–Office graph into ``store`` once (with text embeddings), then read it back."""
    from scenerec.config import EmbedConfig
    from scenerec.engine import Engine
    from scenerec.kg import load_features, load_idmap, open_store
    from scenerec.pipeline import build

    if not (store / "CURRENT").is_file():
        t = time.perf_counter()
        build(shared / DATASET, store, embed=EmbedConfig(model=None, threads=2))
        print(f"built the Arts-Office graph with text embeddings into {store} in {time.perf_counter() - t:.0f} s")
    idmap = load_idmap(store)
    graph = open_store(store)
    try:
        n_links = int(graph.query("MATCH (:Item)-[r:SAME_AS]->(:Item) RETURN count(r)").iloc[0, 0])
    finally:
        graph.close()
    if n_links == 0:
        with Engine.open(store, read_only=False) as engine:
            aligned = engine.align("arts", TARGET, seed_fraction=0.0, threshold=ALIGN_THRESHOLD)
        print(f"aligned arts with {TARGET}: {json.dumps(aligned.summary)}")
    graph = open_store(store)
    try:
        data = build_hetero(graph.edge_index(idmap), load_features(store))
        scenes = [str(r) for r in graph.query("MATCH (s:Scene) RETURN s.id AS id")["id"]]
        pairs = graph.query("MATCH (a:Item)-[r:SAME_AS]->(b:Item) RETURN a.id AS a, b.id AS b, r.score AS score")
    finally:
        graph.close()
    links = (
        torch.from_numpy(
            np.stack([idmap.indices("item", pairs["a"].astype(str)), idmap.indices("item", pairs["b"].astype(str))])
        ),
        torch.as_tensor(pairs["score"].to_numpy(np.float32)),
    )
    ui = data["user", "interacted", "item"]
    scene_index = {s: idmap.index("scene", s) for s in scenes}
    reviewers = json.loads((shared / DATASET / "splits_llm" / "Dualuser_dict.json").read_text(encoding="utf-8"))
    test_users = np.array([idmap.index("user", str(reviewers[i])) for i in TEST_USERS])
    valid_users = np.array([idmap.index("user", str(reviewers[i])) for i in VALID_USERS])
    return Graph(
        idmap=idmap,
        users=ui.edge_index[0].numpy(),
        items=ui.edge_index[1].numpy(),
        position=ui.timestamp.numpy(),
        item_scene=data["item"].scene.numpy().astype(np.int64),
        scene_index=scene_index,
        data=data,
        test_users=test_users,
        valid_users=valid_users,
        links=links,
    )


def make_split(g: Graph, protocol: str) -> Split:
    """The ``warm`` or ``cold`` protocol (module docstring) as train / valid / test CSRs over all users and items."""
    target = g.item_scene[g.items] == g.scene_index[TARGET]
    role = np.zeros(g.shape[0], dtype=np.int64)  # 0 train-only, 1 valid user, 2 test user
    role[g.valid_users] = 1
    role[g.test_users] = 2
    held = role[g.users] > 0
    drop = np.zeros(len(g.users), dtype=bool)
    if protocol == "cold":
        out = held & target
    elif protocol == "warm":
        # the last target interaction of each held-out user (largest position; ties: the later row)
        cand = np.flatnonzero(held & target)
        order = np.lexsort((cand, g.position[cand], g.users[cand]))
        last = cand[order][np.r_[g.users[cand][order][1:] != g.users[cand][order][:-1], True]]
        out = np.zeros(len(g.users), dtype=bool)
        out[last] = True
        # the same (user, item) pair earlier in the sequence is not training data either
        key = g.users * g.shape[1] + g.items
        out |= np.isin(key, key[last])
        # nor is anything at or after the test item's position in the other scene (URLLM's sequences end with one
        # target per scene at the same position: the concurrent Arts target is not history of the Office one)
        last_pos = np.full(g.shape[0], np.iinfo(np.int64).max)
        last_pos[g.users[last]] = g.position[last]
        drop = held & ~out & (g.position >= last_pos[g.users])
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    r = role[g.users]
    keep = ~out & ~drop
    return Split(
        train=CSR.from_pairs(g.users[keep], g.items[keep], g.shape),
        valid=CSR.from_pairs(g.users[out & (r == 1)], g.items[out & (r == 1)], g.shape),
        test=CSR.from_pairs(g.users[out & (r == 2)], g.items[out & (r == 2)], g.shape),
        train_rows=np.flatnonzero(keep),
    )


def restrict(m: CSR, items: np.ndarray) -> CSR:
    """``m`` with only the columns in ``items`` kept (same shape)."""
    keep = np.zeros(m.shape[1], dtype=bool)
    keep[items] = True
    return m.keep_columns(keep)


ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def metrics_of(score: ScoreFn, split: Split, candidates: np.ndarray, which: str = "test") -> dict[str, float]:
    return evaluate_scores(score, split.train, getattr(split, which), ks=KS, candidate_items=candidates)


def pick_on_valid(options: Iterable[tuple[Any, ScoreFn]], split: Split, candidates: np.ndarray) -> dict[str, Any]:
    """The ``(params, score)`` option with the best validation NDCG@10 (the first on ties), and its test metrics."""
    best: tuple[float, Any, ScoreFn] | None = None
    for params, score in options:
        valid = metrics_of(score, split, candidates, "valid")["ndcg@10"]
        if best is None or valid > best[0]:
            best = (valid, params, score)
    assert best is not None
    return {"test": metrics_of(best[2], split, candidates), "valid_ndcg@10": best[0], "params": best[1]}


# --------------------------------------------------------------------------------------------------- baselines
def run_pop(g: Graph, split: Split, candidates: np.ndarray, seed: int) -> dict[str, Any]:
    counts = torch.as_tensor(np.bincount(split.train.indices, minlength=g.shape[1]), dtype=torch.float32)
    return {"test": metrics_of(lambda u: counts.expand(len(u), -1), split, candidates), "seconds": 0.0}


def run_als(g: Graph, split: Split, candidates: np.ndarray, seed: int, joint: bool, threads: int) -> dict[str, Any]:
    """implicit's ALS, factors / regularization / alpha chosen by validation NDCG@10 (:func:`peers.als_options`)."""
    from peers import ALS_GRID, als_available, als_options

    missing = als_available()
    if missing is not None:
        return {"skipped": missing}
    train = split.train if joint else restrict(split.train, candidates)
    t0 = time.perf_counter()
    options = als_options(train, seed=seed, threads=threads)
    best = pick_on_valid(options, split, candidates)
    best["params"] = {k: v for k, v in best["params"].items() if k != "seconds"}
    n_fits = int(np.prod([len(v) for v in ALS_GRID.values()]))
    return {**best, "seconds": (time.perf_counter() - t0) / n_fits}


def run_itemknn(g: Graph, split: Split, candidates: np.ndarray, joint: bool) -> dict[str, Any]:
    """Item-based kNN: ``score(u, j) = sum_{i in history} cos(i, j) + lam * log(1 + count_j)`` with the cosine of the
    binary user x item columns (all training users), ``j`` over the target items; the history is the user's target
    items (``itemknn-target``) or all of them (``itemknn-joint``); ``lam`` chosen by validation NDCG@10."""

    t0 = time.perf_counter()
    n_items = g.shape[1]
    history, sim, prior = itemknn_parts(g, split, candidates, joint)

    def score(u: torch.Tensor, lam: float) -> torch.Tensor:
        out = np.zeros((len(u), n_items), dtype=np.float32)
        out[:, candidates] = np.asarray((history[u.numpy()] @ sim).todense()) + lam * prior[None, :]
        return torch.from_numpy(out)

    options = (({"lam": lam}, partial(score, lam=lam)) for lam in (0.0, 0.05, 0.1, 0.2, 0.4))
    return {**pick_on_valid(options, split, candidates), "seconds": time.perf_counter() - t0}


def itemknn_parts(g: Graph, split: Split, candidates: np.ndarray, joint: bool) -> tuple[Any, Any, np.ndarray]:
    """(history (U, I) sparse, item -> target-item cosine (I, |candidates|) sparse, log-popularity prior)."""
    import scipy.sparse as sp

    train = split.train
    n_users, n_items = g.shape
    x = sp.csr_matrix((np.ones(train.nnz, dtype=np.float32), train.indices, train.indptr), shape=(n_users, n_items))
    count = np.asarray(x.sum(0)).ravel()
    norm = 1.0 / np.sqrt(np.maximum(count, 1.0))
    sim = (sp.diags(norm) @ (x.T @ x[:, candidates]) @ sp.diags(norm[candidates])).tocsr()
    sim = sim - sp.csr_matrix(
        (sim[candidates, np.arange(len(candidates))].A1, (candidates, np.arange(len(candidates)))), shape=sim.shape
    )
    keep = np.ones(n_items, dtype=np.float32)
    if not joint:
        keep[:] = 0.0
        keep[candidates] = 1.0
    history = x @ sp.diags(keep)
    prior = np.log1p(count[candidates]).astype(np.float32)
    return history, sim, prior


class SASRec(torch.nn.Module):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018): causal self-attention over the last
    ``max_len`` items of a user's sequence; the last position's state scores the ``out_items`` (the target scene) by
    a dot product with their input embeddings (tied). Trained with a softmax over ``out_items`` (the cross-entropy form
    of Klenitskiy & Vasilev, 2023, stronger than the original BCE), full or over sampled negatives
    (:func:`sampled_softmax`)."""

    def __init__(
        self, n_items: int, out_items: np.ndarray, *, max_len: int, dim: int, layers: int, heads: int, dropout: float
    ) -> None:
        super().__init__()
        self.item = torch.nn.Embedding(n_items + 1, dim, padding_idx=0)  # item i is row i + 1; 0 pads
        self.pos = torch.nn.Embedding(max_len, dim)
        layer = torch.nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=dim, dropout=dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(dim)
        self.drop = torch.nn.Dropout(dropout)
        self.register_buffer("out_rows", torch.as_tensor(out_items, dtype=torch.long) + 1)
        self.register_buffer("causal", torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), 1))
        torch.nn.init.normal_(self.item.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item.weight[0] = 0.0

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """States (B, L, d) of right-padded item rows ``seq`` (B, L); position t sees positions <= t only, so the
        padding after a sequence's end never reaches its states."""
        n = seq.shape[1]
        h = self.item(seq) * self.item.embedding_dim**0.5 + self.pos.weight[:n]
        return self.norm(self.encoder(self.drop(h), mask=self.causal[:n, :n], is_causal=True))

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.item.weight[self.out_rows].t()


def sampled_softmax(model: SASRec, states: torch.Tensor, target: torch.Tensor, negatives: int) -> torch.Tensor:
    """Cross-entropy of each target against ``negatives`` output items drawn uniformly (shared by the batch; a draw
    equal to the row's target is masked), or against all output items when ``negatives`` is 0."""
    n_out = len(model.out_rows)
    if negatives <= 0 or negatives >= n_out:
        return torch.nn.functional.cross_entropy(model.logits(states), target)
    neg = torch.randint(n_out, (negatives,))
    pos_w = model.item.weight[model.out_rows[target]]
    neg_w = model.item.weight[model.out_rows[neg]]
    logits = torch.cat([(states * pos_w).sum(-1, keepdim=True), states @ neg_w.t()], dim=1)
    logits[:, 1:] = logits[:, 1:].masked_fill(neg[None, :] == target[:, None], float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(target), dtype=torch.long))


def user_sequences(g: Graph, split: Split, items: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's training items among ``items`` in time order (ties: the stored order), the last ``max_len``,
    as (users, max_len) right-padded rows (item + 1, 0 pads) and the lengths."""
    rows = split.train_rows[np.isin(g.items[split.train_rows], items)]
    rows = rows[np.lexsort((rows, g.position[rows], g.users[rows]))]
    users, items_ = g.users[rows], g.items[rows]
    n_users = g.shape[0]
    counts = np.bincount(users, minlength=n_users)
    start = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.arange(len(rows)) - start[users]  # position within the user's sequence
    keep = rank >= counts[users] - max_len  # the last max_len
    lengths = np.minimum(counts, max_len)
    col = rank[keep] - (counts[users[keep]] - lengths[users[keep]])
    seqs = np.zeros((n_users, max_len), dtype=np.int64)
    seqs[users[keep], col] = items_[keep] + 1
    return seqs, lengths


def run_sasrec(
    g: Graph, split: Split, candidates: np.ndarray, seed: int, joint: bool, args: argparse.Namespace
) -> dict[str, Any]:
    """SASRec on the user's Office sequence (``sasrec-target``) or the mixed Arts + Office sequence
    (``sasrec-joint``), trained to predict each next Office item; early stopping on the validation users."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    max_len, n_items = args.sasrec_len, g.shape[1]
    inputs = np.arange(n_items) if joint else candidates
    seqs, _ = user_sequences(g, split, inputs, max_len + 1)
    is_target = np.zeros(n_items + 1, dtype=bool)
    is_target[candidates + 1] = True
    out_index = np.full(n_items + 1, -1, dtype=np.int64)
    out_index[candidates + 1] = np.arange(len(candidates))
    # training rows: users with at least one next target item inside their window
    x, y = seqs[:, :-1], seqs[:, 1:]
    y_out = np.where(is_target[y], out_index[y], -100)  # right padding: a real next item has a real input
    train_users = np.flatnonzero((y_out >= 0).any(1))
    model = SASRec(
        n_items, candidates, max_len=max_len, dim=args.sasrec_dim, layers=2, heads=1, dropout=args.sasrec_dropout
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    # scoring: the last max_len items of each user (the window above dropped the oldest one to make pairs)
    score_seqs, score_len = user_sequences(g, split, inputs, max_len)
    popularity = torch.as_tensor(np.log1p(np.bincount(split.train.indices, minlength=n_items)[candidates]))
    cand_t = torch.as_tensor(candidates)

    def score(u: torch.Tensor) -> torch.Tensor:
        model.eval()
        un = u.numpy()
        out = torch.zeros(len(u), n_items)
        with torch.no_grad():
            states = model(torch.from_numpy(score_seqs[un]))
            last = torch.as_tensor(np.maximum(score_len[un] - 1, 0))
            s = model.logits(states[torch.arange(len(u)), last]).float()
        s[torch.as_tensor(score_len[un] == 0)] = popularity.float()  # no history: popularity
        out[:, cand_t] = s
        return out

    t0 = time.perf_counter()
    best: tuple[float, int, dict[str, Any]] = (-1.0, 0, {})
    for epoch in range(1, args.sasrec_epochs + 1):
        model.train()
        order = rng.permutation(train_users)
        total = 0.0
        for i in range(0, len(order), 128):
            b = order[i : i + 128]
            xb, yb = torch.from_numpy(x[b]), torch.from_numpy(y_out[b])
            states = model(xb)
            sel = yb >= 0
            loss = sampled_softmax(model, states[sel], yb[sel], args.sasrec_negatives)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        valid = metrics_of(score, split, candidates, "valid")["ndcg@10"]
        if args.verbose:
            print(
                f"    sasrec epoch {epoch} loss {total / len(order):.4f} valid {valid:.4f} {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
        if valid > best[0]:
            best = (valid, epoch, {k: v.clone() for k, v in model.state_dict().items()})
        elif epoch - best[1] >= args.patience:
            break
    model.load_state_dict(best[2])
    return {
        "test": metrics_of(score, split, candidates),
        "valid_ndcg@10": best[0],
        "best_epoch": best[1],
        "seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------------------------------- scenerec
#: The scenerec variants (the ablations), all :class:`CrossSceneGNN` with SceneGNN's defaults except the ones set
#: here: (train on the target scene only, follow the SAME_AS item links, the gate).
VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    "target-only": (True, False, False),
    "shared-users": (False, False, False),
    "+alignment": (False, True, False),
    "+gate": (False, True, True),
    "gate-no-align": (False, False, True),
}


def run_scenegnn(
    g: Graph, split: Split, candidates: np.ndarray, seed: int, variant: str, args: argparse.Namespace
) -> dict[str, Any]:
    target_only, use_links, gate = VARIANTS[variant]
    train = restrict(split.train, candidates) if target_only else split.train
    inputs = GraphInputs.from_hetero(g.data, train)
    if use_links:
        inputs = dataclasses.replace(inputs, item_links=g.links)
    settings = {
        **CROSSSCENE_KW,
        "gate": gate,
        "view_dropout": args.view_dropout if gate else 0.0,
        "item_bias": args.item_bias,
        "cold_dropout": args.cold_dropout if gate else 0.0,
        "item_ids": args.item_ids,
        "dim": args.dim,
        "item_item": args.item_item != "none",
        "item_item_kind": CROSSSCENE_KW["item_item_kind"] if args.item_item == "none" else args.item_item,
    }
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-2,
        weight_decay=0.0,
        patience=args.patience,
        seed=seed,
        threads=args.threads,
        loss="softmax",
    )
    verbose = args.verbose

    def show(rec: dict[str, Any]) -> None:
        if verbose and "epoch" in rec:  # the epochs, not the item-item channel's progress
            print(f"    {variant} seed={seed} {rec}")

    # the library's training (fit("crossscene") without the store): the model, then its item-item channel fitted
    # and weighted per scene on the validation users (nothing to fit when the channel is off)
    model, result, tuned = train_recommender(
        "crossscene",
        inputs,
        {"train": train, "valid": split.valid},
        cfg,
        options=settings,
        progress=show,
        candidate_items=candidates,
        item_item_cache_bytes=args.item_item_cache_bytes,
    )
    channel: dict[Any, Any] | None = None
    if args.item_item != "none":
        channel = {**tuned.scenes, "seconds": round(tuned.seconds, 1)}
    with torch.no_grad():
        user_emb, item_emb = model()
        test = metrics_of(lambda u: model.score(u, user_emb, item_emb), split, candidates)
    fused = None
    if args.fuse_itemknn:  # a probe: the model's scores plus the joint item kNN, weights chosen on validation
        history, sim, prior = itemknn_parts(g, split, candidates, joint=not target_only)
        best: tuple[float, dict[str, float], ScoreFn] | None = None
        for weight in (0.25, 0.5, 1.0, 2.0, 4.0):
            for lam in (0.0, 0.1, 0.2):

                def score(u: torch.Tensor, weight: float = weight, lam: float = lam) -> torch.Tensor:
                    with torch.no_grad():
                        out = model.score(u, user_emb, item_emb).clone()
                    knn = np.asarray((history[u.numpy()] @ sim).todense()) + lam * prior[None, :]
                    out[:, torch.from_numpy(candidates)] += weight * torch.from_numpy(knn.astype(np.float32))
                    return out

                valid = metrics_of(score, split, candidates, "valid")["ndcg@10"]
                if best is None or valid > best[0]:
                    best = (valid, {"weight": weight, "lam": lam}, score)
        assert best is not None
        fused = {"test": metrics_of(best[2], split, candidates), "valid_ndcg@10": best[0], "params": best[1]}
    return {
        "item_item": channel,
        "fused_itemknn": fused,
        "test": test,
        "valid_ndcg@10": result.best_valid["ndcg@10"],
        "best_epoch": result.best_epoch,
        "seconds": result.seconds_to_best,
    }


MODELS = (
    "pop",
    "als-target",
    "als-joint",
    "itemknn-target",
    "itemknn-joint",
    "sasrec-target",
    "sasrec-joint",
    *VARIANTS,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", nargs="+", default=["warm", "cold"], choices=["warm", "cold"])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--seeds", type=int, default=1, help="runs per trained model (seeds --seed, --seed + 1, ...)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--cold-target-only", action="store_true", help="run the target-only models on cold users too")
    ap.add_argument("--batch-size", type=int, default=1024, help="(user, scene) rows per training step")
    ap.add_argument("--dim", type=int, default=128, help="SceneGNN's representation size")
    ap.add_argument("--epochs", type=int, default=60, help="cap on training epochs (early stopping, patience 10)")
    ap.add_argument("--patience", type=int, default=10, help="early stopping: evaluations without improvement")
    ap.add_argument("--item-ids", default=CROSSSCENE_KW["item_ids"], help="item_ids: missing, all or none")
    ap.add_argument(
        "--item-bias",
        action=argparse.BooleanOptionalAction,
        default=CROSSSCENE_KW["item_bias"],
        help="CrossSceneGNN's item_bias",
    )
    ap.add_argument(
        "--view-dropout", type=float, default=CROSSSCENE_KW["view_dropout"], help="CrossSceneGNN's view_dropout"
    )
    ap.add_argument(
        "--cold-dropout",
        type=float,
        default=CROSSSCENE_KW.get("cold_dropout", 0.0),
        help="CrossSceneGNN's cold_dropout (the newcomer form; 0: off)",
    )
    ap.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data", help="data"
    )
    ap.add_argument("--store", type=Path, default=Path("/tmp/scenerec-bench/arts_office"))
    ap.add_argument(
        "--item-item",
        default="none",
        choices=["none", "ease", "knn"],
        help="SceneGNN's item-item channel (knn: item kNN across scenes), weighted per scene on validation",
    )
    ap.add_argument(
        "--item-item-cache-bytes",
        type=int,
        default=1 << 30,
        help="tune_item_item's cache of validation scores (0: rescore every fusion weight, for timing)",
    )
    ap.add_argument("--sasrec-len", type=int, default=50, help="SASRec: the last items of a sequence it reads")
    ap.add_argument("--sasrec-dim", type=int, default=64, help="SASRec: representation size")
    ap.add_argument("--sasrec-epochs", type=int, default=200, help="SASRec: cap on epochs (early stopping)")
    ap.add_argument(
        "--sasrec-negatives", type=int, default=2048, help="SASRec: sampled negatives per step (0: full softmax)"
    )
    ap.add_argument("--sasrec-dropout", type=float, default=0.5, help="SASRec: dropout")
    ap.add_argument(
        "--fuse-itemknn",
        action="store_true",
        help="also report each scenerec model's scores plus the item kNN (weights chosen on validation)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(args.threads)
    g = load_graph(args.store, args.shared)
    candidates = g.target_items()
    table: list[tuple[str, str, float, float, str]] = []
    for protocol in args.protocols:
        split = make_split(g, protocol)
        print(
            f"{protocol}: train {split.train.nnz}, valid {split.valid.nnz} ({len(g.valid_users)} users), "
            f"test {split.test.nnz} ({len(g.test_users)} users), ranking over {len(candidates)} {TARGET} items"
        )
        for name in args.models:
            runs = []
            if (
                protocol == "cold"
                and name in ("target-only", "als-target", "itemknn-target", "sasrec-target")
                and not args.cold_target_only
            ):
                print(f"  {name}: skipped on cold users (no target-scene history to rank by; --cold-target-only)")
                continue
            for seed in range(args.seed, args.seed + (1 if name == "pop" else args.seeds)):
                if name == "pop":
                    out = run_pop(g, split, candidates, seed)
                elif name.startswith("als"):
                    out = run_als(g, split, candidates, seed, joint=name == "als-joint", threads=args.threads)
                elif name.startswith("itemknn"):
                    out = run_itemknn(g, split, candidates, joint=name == "itemknn-joint")
                elif name.startswith("sasrec"):
                    out = run_sasrec(g, split, candidates, seed, joint=name == "sasrec-joint", args=args)
                else:
                    out = run_scenegnn(g, split, candidates, seed, name, args)
                if "skipped" in out:
                    print(f"  {name}: skipped, {out['skipped']}")
                    break
                extra = {k: v for k, v in out.items() if k != "test"}
                print(
                    f"  {protocol} {name} seed={seed}: NDCG@10 {out['test']['ndcg@10']:.4f} "
                    f"R@10 {out['test']['recall@10']:.4f} {extra}",
                    flush=True,
                )
                runs.append(out)
            if runs:
                runs.sort(key=lambda r: r["test"]["ndcg@10"])
                med = runs[len(runs) // 2]["test"]
                table.append((protocol, name, med["ndcg@10"], med["recall@10"], f"{len(runs)}"))
    print()
    print(f"{'protocol':<9}{'model':<16}{'NDCG@10':>9}{'R@10':>9}{'runs':>6}")
    for protocol, name, ndcg, rec, n in table:
        print(f"{protocol:<9}{name:<16}{ndcg:>9.4f}{rec:>9.4f}{n:>6}")


if __name__ == "__main__":
    main()
