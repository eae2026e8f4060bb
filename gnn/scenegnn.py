"""scenerec's main recommender: :class:`SceneGNN`, a text-initialised, relation-aware, scene-adapted graph model,
optionally fused with a closed-form item-item channel (:class:`ItemItem`).

Representations (d-dimensional), every part behind a switch for ablations:

1. **Ego embeddings.** Users: a learnt table. Items: a learnt linear projection of the item's LLM text embedding
   (``use_text``), so that an item with text but no interactions still has a representation, plus a learnt id
   embedding for the items ``item_ids`` names: ``"missing"`` (default) only the items without text, ``"all"``
   every item, ``"none"`` no item. On MovieLens-100K, items as a pure function of their text generalise better
   than items with free id vectors (see ``benchmarks/movielens100k.py``).
2. **Relation-aware knowledge.** (``use_kg``, off by default: on MovieLens-100K's Freebase KG it cost twice the
   training time and did not improve the test NDCG, as for the peers' KG models in ``shared/data/BASELINES.md``;
   measure it on your data with the ablation) Each item adds the mean, over its knowledge-graph facts ``(item, r,
   entity)``, of ``z_entity * rho_r``: a learnt entity vector (id table, plus the projected entity text where the
   entity has one) gated element-wise by a learnt vector of the relation (KGIN-style relational messages).
3. **Propagation.** LightGCN over the user-item training graph with the pre-normalised symmetric CSR adjacency
   (:mod:`scenerec.gnn.propagation`); the layer outputs are averaged.
4. **Scene adaptation.** (``scene_film``) Parameters 1-3 are shared by all scenes; each scene ``s`` has its own FiLM
   ``gamma_s * v + beta_s`` (initialised to the identity) applied to the items of that scene. Scoring only ever
   ranks items of one scene, so a scene transform on the item side is as expressive as one on the user side.
5. **Scores** are cosine similarities divided by a temperature (``temperature``): :meth:`forward` returns unit user
   vectors and item vectors of norm ``1 / temperature``, so the base class's dot product is ``cos / temperature``.
   The model is trained with the in-scene softmax loss (:func:`scenerec.gnn.train.fit` with ``loss="softmax"``).

The optional item-item channel adds ``lambda_s * (x_u @ B)`` to the scores of the items of scene ``s``, where ``x_u``
is the user's training row and ``B`` the closed-form EASE weights (Steck, 2019) of the scene, pruned to the
``top_k`` largest entries per item; ``lambda_s`` is chosen per scene on validation data after training
(:func:`scenerec.gnn.train.tune_item_item`), 0 when the channel does not help.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from scenerec.gnn.evaluate import CSR
from scenerec.gnn.models import Recommender, _l2_of_batch, deepcopy_with_sparse
from scenerec.gnn.propagation import normalized_adjacency, propagate

__all__ = ["ITEM_IDS", "GraphInputs", "ItemItem", "KGEdges", "SceneGNN"]

#: Values of :class:`SceneGNN`'s ``item_ids``: which items get a free id embedding.
ITEM_IDS = ("missing", "all", "none")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KGEdges:
    """Item-entity knowledge-graph facts as index tensors, each of shape (F,): ``item``, ``entity``, ``relation``
    (codes ``0 .. num_relations - 1``; a fact stored as (entity, r, item) counts as (item, r, entity))."""

    item: Tensor
    entity: Tensor
    relation: Tensor
    num_entities: int
    num_relations: int

    def __post_init__(self) -> None:
        n = self.item.numel()
        if self.entity.numel() != n or self.relation.numel() != n:
            raise ValueError("KGEdges: item, entity and relation must have one length")
        if n and (int(self.entity.max()) >= self.num_entities or int(self.relation.max()) >= self.num_relations):
            raise ValueError("KGEdges: an entity or relation index is out of range")


@dataclass(frozen=True)
class GraphInputs:
    """Everything a :class:`SceneGNN` is built from, besides its hyper-parameters.

    ``train``: the training interactions (users x items); ``item_scene``: (I,) scene index per item (-1: none);
    ``num_scenes``; ``item_text``: (I, t) LLM embeddings (zero rows where an item has none) or None;
    ``entity_text``: (n_entities, t) or None; ``kg``: item-entity facts or None; ``item_links``: undirected
    item-item links ``(edges (2, L), weights (L,))`` that propagation follows besides the user-item pairs (the
    ``SAME_AS`` alignments between scenes, :mod:`scenerec.transfer`), or None.
    """

    train: CSR
    item_scene: np.ndarray
    num_scenes: int
    item_text: Tensor | None = None
    entity_text: Tensor | None = None
    kg: KGEdges | None = None
    item_links: tuple[Tensor, Tensor] | None = None

    @property
    def num_users(self) -> int:
        return self.train.shape[0]

    @property
    def num_items(self) -> int:
        return self.train.shape[1]

    def adjacency(self) -> Tensor:
        """The normalised symmetric adjacency of the training pairs and the item links (CSR)."""
        edge_index = torch.from_numpy(np.stack([self.train.rows(), self.train.indices]).astype(np.int64))
        links, weights = self.item_links if self.item_links is not None else (None, None)
        return normalized_adjacency(
            edge_index, self.num_users, self.num_items, item_edges=links, item_edge_weight=weights
        )

    @classmethod
    def from_hetero(cls, data: Any, train: CSR) -> GraphInputs:
        """Inputs from the graph's ``HeteroData`` (:func:`scenerec.gnn.build_hetero`) and the training pairs."""
        n_items = int(data["item"].num_nodes)
        n_entities = int(data["entity"].num_nodes)
        item_text = getattr(data["item"], "x", None)
        entity_text = getattr(data["entity"], "x", None)
        parts: list[tuple[Tensor, Tensor, Tensor]] = []
        if ("item", "related", "entity") in data.edge_types:
            s = data["item", "related", "entity"]
            parts.append((s.edge_index[0], s.edge_index[1], s.relation))
        if ("entity", "related", "item") in data.edge_types:
            s = data["entity", "related", "item"]
            parts.append((s.edge_index[1], s.edge_index[0], s.relation))
        kg = None
        if parts and n_entities:
            kg = KGEdges(
                item=torch.cat([p[0] for p in parts]),
                entity=torch.cat([p[1] for p in parts]),
                relation=torch.cat([p[2] for p in parts]),
                num_entities=n_entities,
                num_relations=max(len(data.relations), 1),
            )
        scene = data["item"].scene.numpy().astype(np.int64)
        if scene.shape != (n_items,):
            raise ValueError("item scene array does not match the number of items")
        return cls(
            train=train,
            item_scene=scene,
            num_scenes=int(data["scene"].num_nodes),
            item_text=item_text,
            entity_text=entity_text,
            kg=kg,
        )


class ItemItem(torch.nn.Module):
    """Closed-form item-item weights per scene (EASE: ``B = I - P diag(1 / diag(P))``, ``P = (X^T X + reg I)^-1``,
    diagonal zeroed), pruned to the ``top_k`` largest weights per item and held as index/value buffers.

    Scores of users with training rows ``X_b`` (b, I) are ``X_b @ B``; EASE weights only connect items of one scene
    (:meth:`fit`), item-kNN weights (:meth:`fit_knn`) connect items of any scene to each item.
    Scenes with more than ``max_items`` items get no weights (a dense inverse of that size would not fit the time or
    memory budget of a CPU run); they are listed in :attr:`skipped_scenes`.
    """

    rows: Tensor
    cols: Tensor
    vals: Tensor

    def __init__(self, num_items: int, nnz: int = 0) -> None:
        super().__init__()
        self.num_items = int(num_items)
        self.register_buffer("rows", torch.zeros(nnz, dtype=torch.long))
        self.register_buffer("cols", torch.zeros(nnz, dtype=torch.long))
        self.register_buffer("vals", torch.zeros(nnz))
        self.skipped_scenes: list[int] = []
        self._matrix_t: Tensor | None = None

    @property
    def nnz(self) -> int:
        return int(self.vals.numel())

    @staticmethod
    def ease(x: np.ndarray, reg: float) -> np.ndarray:
        """The EASE weight matrix (n, n) of a dense user x item 0/1 matrix ``x`` (m, n), float64."""
        gram = x.T @ x
        gram[np.diag_indices_from(gram)] += reg
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        return b

    def fit(
        self,
        train: CSR,
        item_scene: np.ndarray,
        reg: float | Sequence[float],
        *,
        top_k: int = 256,
        max_items: int = 20_000,
    ) -> None:
        """Compute the weights from the training pairs; ``reg`` per scene (a sequence indexed by scene) or one."""
        rows, cols, vals = [], [], []
        self.skipped_scenes = []
        scenes = np.unique(item_scene)
        user_rows = train.rows()
        for s in scenes:
            items = np.flatnonzero(item_scene == s)
            if len(items) > max_items:
                self.skipped_scenes.append(int(s))
                log.warning(
                    "item-item channel: scene %d has %d items > max_items=%d, skipped", s, len(items), max_items
                )
                continue
            local = np.full(self.num_items, -1, dtype=np.int64)
            local[items] = np.arange(len(items))
            keep = local[train.indices] >= 0
            x = np.zeros((train.shape[0], len(items)))
            x[user_rows[keep], local[train.indices[keep]]] = 1.0
            r = reg if isinstance(reg, int | float) else reg[int(s)] if s >= 0 else reg[0]
            b = self.ease(x, float(r))
            k = min(top_k, len(items))
            if k < len(items):
                # keep the k largest |weights| of each column j (the weights that score item j)
                part = np.argpartition(-np.abs(b), k - 1, axis=0)[:k]
                src = part.reshape(-1)
                dst = np.tile(np.arange(len(items)), k)
            else:
                src, dst = (a.reshape(-1) for a in np.indices(b.shape))
            w = b[src, dst]
            nz = w != 0
            rows.append(items[src[nz]])
            cols.append(items[dst[nz]])
            vals.append(w[nz])
        self._set_weights(rows, cols, vals)

    def fit_knn(
        self,
        train: CSR,
        item_scene: np.ndarray,
        *,
        top_k: int = 256,
        alpha: float | Sequence[float] = 0.5,
        beta: float | Sequence[float] = 0.5,
    ) -> None:
        """Item-kNN weights instead of EASE: ``B[i, j] = |U_i & U_j| / (|U_i|^alpha |U_j|^beta)`` over the binary
        item columns of the training pairs (the diagonal left out), the ``top_k`` largest per target item ``j``, then
        divided by the largest weight into the target item's scene (the fusion weight sets the scale).

        ``alpha = beta = 0.5`` is the cosine; ``alpha > beta`` the asymmetric cosine (Aiolli, 2013): a smaller
        ``beta`` normalises popular target items less, so popularity enters the scores, which is what users
        with little history in the scene need; ``alpha = beta = 0`` counts co-occurrences. ``alpha`` and ``beta``
        are one value or a sequence indexed by the target item's scene (like :meth:`fit`'s ``reg``).
        Unlike EASE the weights connect items of any scene to ``j`` (so a history in one scene scores another), and
        no scene is too large: the work is one sparse product per scene."""
        import scipy.sparse as sp

        n_users, n_items = train.shape
        x = sp.csr_matrix((np.ones(train.nnz, dtype=np.float32), train.indices, train.indptr), shape=(n_users, n_items))
        x.data[:] = 1.0
        x.sum_duplicates()
        x.data[:] = 1.0
        count = np.maximum(np.asarray(x.sum(0)).ravel().astype(np.float64), 1.0)
        xt = x.T.tocsr()
        rows, cols, vals = [], [], []
        self.skipped_scenes = []
        for s in np.unique(item_scene):
            a, b = (float(e if isinstance(e, int | float) else e[max(int(s), 0)]) for e in (alpha, beta))
            items = np.flatnonzero(item_scene == s)
            c = (xt @ x[:, items]).tocoo()
            r, j, v = c.row.astype(np.int64), c.col.astype(np.int64), c.data.astype(np.float64)
            keep = r != items[j]
            r, j, v = r[keep], j[keep], v[keep] * count[r[keep]] ** -a * count[items[j[keep]]] ** -b
            order = np.lexsort((r, -v, j))  # per target column: largest weight first, ties to the lower item
            r, j, v = r[order], j[order], v[order]
            starts = np.r_[0, np.flatnonzero(np.diff(j)) + 1] if len(j) else np.zeros(0, dtype=np.int64)
            rank = np.arange(len(j)) - np.repeat(starts, np.diff(np.r_[starts, len(j)]))
            sel = rank < top_k
            rows.append(r[sel])
            cols.append(items[j[sel]])
            vals.append(v[sel] / v[sel].max() if sel.any() else v[sel])
        self._set_weights(rows, cols, vals)

    def _set_weights(self, rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray]) -> None:
        """Replace the weight buffers by the concatenated (row, column, value) parts."""
        self.rows = torch.from_numpy(np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)).long()
        self.cols = torch.from_numpy(np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)).long()
        self.vals = torch.from_numpy(np.concatenate(vals) if vals else np.zeros(0)).float()
        self._matrix_t = None

    def scores(self, x: Tensor) -> Tensor:
        """``x @ B`` for dense user rows ``x`` (b, I) -> (b, I)."""
        if self.nnz == 0:
            return x.new_zeros(x.shape)
        # (B^T x^T)^T: sparse CSR @ dense is the fast direction.
        return (self.transposed() @ x.t()).t()

    def transposed(self) -> Tensor:
        """``B^T`` as a sparse CSR tensor (I, I), cached until the weights change."""
        cached = self._matrix_t
        if cached is None or cached.device != self.vals.device or cached.values().numel() != self.nnz:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                coo = torch.sparse_coo_tensor(
                    torch.stack([self.cols, self.rows]),
                    self.vals,
                    (self.num_items, self.num_items),
                    check_invariants=False,
                ).coalesce()
                cached = coo.to_sparse_csr()
            self._matrix_t = cached
        return cached


class SceneGNN(Recommender):
    """Scene-aware graph recommender (see the module docstring).

    Args:
        inputs: the graph (:class:`GraphInputs`); the training adjacency is built from ``inputs.train``.
        dim: representation size d.
        num_layers: LightGCN propagation steps.
        temperature: the softmax temperature the scores are divided by.
        item_ids: which items get a free id embedding: ``"missing"`` (those without text), ``"all"``, ``"none"``.
        use_text, use_kg, scene_film: ablation switches (see the module docstring). ``use_text`` needs
            ``inputs.item_text``, ``use_kg`` needs ``inputs.kg``; when they are missing the switch is turned off with
            a log message, so one configuration runs on every dataset.
        item_item: reserve the item-item channel (fitted by :func:`scenerec.gnn.train.tune_item_item`).
        item_item_nnz: size of its weight buffers (set when loading a saved model).
        kg_min_items: use only the entities linked to at least this many distinct items (an entity of one item
            is one more free vector of that item, which overfits like an id embedding; default 2).
    """

    adj: Tensor
    item_scene_t: Tensor
    id_mask: Tensor
    item_text: Tensor
    entity_text: Tensor
    kg_item: Tensor
    kg_entity: Tensor
    kg_relation: Tensor
    kg_norm: Tensor
    fusion: Tensor

    def __init__(
        self,
        inputs: GraphInputs,
        *,
        dim: int = 128,
        num_layers: int = 2,
        temperature: float = 0.2,
        item_ids: str = "missing",
        use_text: bool = True,
        use_kg: bool = False,
        scene_film: bool = True,
        item_item: bool = True,
        item_item_nnz: int = 0,
        kg_min_items: int = 2,
        item_item_kind: str = "ease",
    ) -> None:
        super().__init__(inputs.num_users, inputs.num_items)
        if item_item_kind not in ("ease", "knn"):
            raise ValueError(f"item_item_kind must be 'ease' or 'knn', not {item_item_kind!r}")
        self.item_item_kind = item_item_kind
        if dim < 1 or num_layers < 0 or not temperature > 0:
            raise ValueError(f"invalid SceneGNN sizes: dim={dim}, num_layers={num_layers}, temperature={temperature}")
        if use_text and (inputs.item_text is None or not bool(inputs.item_text.abs().sum() > 0)):
            log.info("SceneGNN: no item text features, use_text turned off")
            use_text = False
        kg = _shared_facts(inputs.kg, kg_min_items) if use_kg and inputs.kg is not None else None
        if use_kg and (kg is None or kg.item.numel() == 0):
            log.info("SceneGNN: no knowledge-graph facts (on entities of >= %d items), use_kg turned off", kg_min_items)
            use_kg = False
        if item_ids not in ITEM_IDS:
            raise ValueError(f"item_ids must be one of {', '.join(ITEM_IDS)}, got {item_ids!r}")
        if use_text:
            assert inputs.item_text is not None
            without_text = inputs.item_text.abs().sum(dim=1) == 0
        else:
            without_text = torch.ones(inputs.num_items, dtype=torch.bool)
        id_mask = {
            "all": torch.ones_like(without_text),
            "missing": without_text,
            "none": torch.zeros_like(without_text),
        }
        mask = id_mask[item_ids]
        if not (bool(mask.any()) or use_text or use_kg):
            raise ValueError("SceneGNN needs at least one item input: item ids, text or knowledge-graph facts")
        self.dim, self.num_layers, self.temperature = int(dim), int(num_layers), float(temperature)
        self.item_ids, self.use_text, self.use_kg, self.scene_film = item_ids, use_text, use_kg, scene_film
        self.num_scenes = max(int(inputs.num_scenes), 1)
        self.register_buffer("adj", inputs.adjacency(), persistent=False)
        scene = torch.as_tensor(inputs.item_scene, dtype=torch.long)
        self.register_buffer("item_scene_t", scene, persistent=False)
        self.user_embedding = torch.nn.Embedding(self.num_users, dim)
        self.item_embedding = torch.nn.Embedding(self.num_items, dim) if bool(mask.any()) else None
        self.register_buffer("id_mask", mask.float().unsqueeze(1), persistent=False)
        self.text_proj: torch.nn.Linear | None = None
        if use_text:
            assert inputs.item_text is not None
            self.register_buffer("item_text", inputs.item_text.float(), persistent=False)
            self.text_proj = torch.nn.Linear(inputs.item_text.shape[1], dim)
        self.entity_embedding: torch.nn.Embedding | None = None
        self.relation_embedding: torch.nn.Embedding | None = None
        self.entity_proj: torch.nn.Linear | None = None
        self.num_entities = self.num_relations = 0
        self.kg_min_items = int(kg_min_items)
        if use_kg:
            assert kg is not None
            self.num_entities, self.num_relations = kg.num_entities, kg.num_relations
            self.register_buffer("kg_item", kg.item.long(), persistent=False)
            self.register_buffer("kg_entity", kg.entity.long(), persistent=False)
            self.register_buffer("kg_relation", kg.relation.long(), persistent=False)
            deg = torch.bincount(kg.item.long(), minlength=self.num_items).float().clamp_min(1.0)
            self.register_buffer("kg_norm", (1.0 / deg).unsqueeze(1), persistent=False)
            self.entity_embedding = torch.nn.Embedding(kg.num_entities, dim)
            self.relation_embedding = torch.nn.Embedding(kg.num_relations, dim)
            et = inputs.entity_text
            if et is not None and bool(et.abs().sum() > 0):
                self.register_buffer("entity_text", et.float(), persistent=False)
                self.entity_proj = torch.nn.Linear(et.shape[1], dim)
        self.scene_gamma = torch.nn.Parameter(torch.ones(self.num_scenes, dim)) if scene_film else None
        self.scene_beta = torch.nn.Parameter(torch.zeros(self.num_scenes, dim)) if scene_film else None
        self.item_item_channel = ItemItem(self.num_items, item_item_nnz) if item_item else None
        self.register_buffer("fusion", torch.zeros(self.num_scenes))
        self._train = inputs.train
        self.reset_parameters()

    # ------------------------------------------------------------------ parameters
    def reset_parameters(self) -> None:
        """Embeddings ``normal(0, 0.1)``; projections PyTorch's default; relation gates 1; FiLM the identity;
        the item-item fusion weights 0."""
        for emb in (self.user_embedding, self.item_embedding, self.entity_embedding):
            if emb is not None:
                torch.nn.init.normal_(emb.weight, std=0.1)
        for lin in (self.text_proj, self.entity_proj):
            if lin is not None:
                lin.reset_parameters()
        if self.relation_embedding is not None:
            torch.nn.init.ones_(self.relation_embedding.weight)
        if self.scene_gamma is not None and self.scene_beta is not None:
            torch.nn.init.ones_(self.scene_gamma)
            torch.nn.init.zeros_(self.scene_beta)
        self.fusion.zero_()

    # ------------------------------------------------------------------ forward
    def item_inputs(self) -> Tensor:
        """Layer-0 item representations (I, d): id + projected text + relation-aware KG messages."""
        parts: list[Tensor] = []
        if self.item_embedding is not None:
            parts.append(self.item_embedding.weight * self.id_mask)
        if self.text_proj is not None:
            parts.append(self.text_proj(self.item_text))
        if self.entity_embedding is not None and self.relation_embedding is not None:
            ent = self.entity_embedding.weight
            if self.entity_proj is not None:
                ent = ent + self.entity_proj(self.entity_text)
            msg = ent[self.kg_entity] * self.relation_embedding(self.kg_relation)
            agg = torch.zeros(self.num_items, self.dim, device=msg.device, dtype=msg.dtype)
            parts.append(agg.index_add_(0, self.kg_item, msg) * self.kg_norm)
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out

    def _film(self, items: Tensor) -> Tensor:
        if self.scene_gamma is None or self.scene_beta is None:
            return items
        scene = self.item_scene_t.clamp_min(0)
        adapted = self.scene_gamma[scene] * items + self.scene_beta[scene]
        return torch.where((self.item_scene_t >= 0).unsqueeze(1), adapted, items)

    def propagated(self) -> tuple[Tensor, Tensor]:
        """User vectors (U, d) and scene-adapted item vectors (I, d) after propagation, before normalisation."""
        x = torch.cat([self.user_embedding.weight, self.item_inputs()])
        out = x
        for _ in range(self.num_layers):
            x = propagate(self.adj, x)
            out = out + x
        out = out / (self.num_layers + 1)
        users, items = torch.split(out, [self.num_users, self.num_items])
        return users, self._film(items)

    def forward(self) -> tuple[Tensor, Tensor]:
        """Unit user vectors (U, d) and item vectors of norm ``1 / temperature`` (I, d)."""
        users, items = self.propagated()
        return F.normalize(users, dim=-1), F.normalize(items, dim=-1) / self.temperature

    def encode_new_items(self, text: Tensor, scene: Tensor) -> Tensor:
        """Scoring vectors (n, d) of items added after training, from their text embeddings ``text`` (n, t) and
        scene indices ``scene`` (n,; -1: none), without retraining: exactly the vectors :meth:`forward` gives an item
        with that text and no edge (layer 0 from the text alone; propagation adds nothing; the scene's FiLM)."""
        if self.text_proj is None:
            raise ValueError("this model was trained without item text (use_text=False): a new item needs its id")
        x = self.text_proj(text.to(self.text_proj.weight.dtype)) / (self.num_layers + 1)
        scene = torch.as_tensor(scene, dtype=torch.long, device=x.device)
        if self.scene_gamma is not None and self.scene_beta is not None:
            s = scene.clamp_min(0)
            x = torch.where((scene >= 0).unsqueeze(1), self.scene_gamma[s] * x + self.scene_beta[s], x)
        return F.normalize(x, dim=-1) / self.temperature

    # ------------------------------------------------------------------ scoring
    def _history_rows(self, histories: Sequence[Tensor], device: torch.device) -> Tensor:
        x = torch.zeros(len(histories), self.num_items, device=device)
        for j, items in enumerate(histories):
            if items.numel():
                x[j, items.to(device).long()] = 1.0
        return x

    def train_rows(self, users: Tensor, device: torch.device | None = None) -> Tensor:
        """Dense 0/1 rows (b, I) of the training items of ``users`` (b,): the item-item channel's input."""
        device = device or users.device
        local, cols = self._train.select(users.cpu().numpy())
        x = torch.zeros(users.numel(), self.num_items, device=device)
        x[torch.from_numpy(local).to(device), torch.from_numpy(cols).to(device)] = 1.0
        return x

    def item_item_scores(self, x: Tensor) -> Tensor:
        """The fused item-item term ``lambda_{scene(i)} * (x @ B)[:, i]`` for dense history rows ``x`` (b, I)."""
        ch = self.item_item_channel
        if ch is None or ch.nnz == 0 or not bool((self.fusion != 0).any()):
            return x.new_zeros(x.shape)
        weight = torch.where(self.item_scene_t >= 0, self.fusion[self.item_scene_t.clamp_min(0)], self.fusion[0])
        return ch.scores(x) * weight.unsqueeze(0)

    def score(self, users: Tensor, user_emb: Tensor | None = None, item_emb: Tensor | None = None) -> Tensor:
        """``cos / temperature`` plus the fused item-item term of the users' training rows; (b, I)."""
        if user_emb is None or item_emb is None:
            user_emb, item_emb = self.forward()
        base = user_emb[users] @ item_emb.t()
        if self.item_item_channel is None or not bool((self.fusion != 0).any()):
            return base
        return base + self.item_item_scores(self.train_rows(users, base.device))

    def score_histories(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """New users: the unit mean of their history's unit item vectors as the user vector, plus the item-item term."""
        base = self.history_vectors(histories, user_emb, item_emb) @ item_emb.t()
        return base + self.item_item_scores(self._history_rows(histories, base.device))

    def history_vectors(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """New users' vectors (b, d): the unit mean of their history's unit item vectors."""
        rows = []
        unit = F.normalize(item_emb, dim=-1)
        for items in histories:
            items = items.to(unit.device).long()
            rows.append(unit[items].mean(0) if items.numel() else unit.new_zeros(unit.shape[1]))
        return F.normalize(torch.stack(rows), dim=-1) if rows else unit.new_zeros(0, unit.shape[1])

    def regularized(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        """L2 penalty of the batch's user embeddings and item id embeddings (where it has them)."""
        if self.item_embedding is None:
            e_u = self.user_embedding(users)
            return 0.5 * e_u.pow(2).sum() / max(users.numel(), 1)
        return _l2_of_batch(self.user_embedding, self.item_embedding, users, pos, neg)

    def __deepcopy__(self, memo: dict[int, Any]) -> SceneGNN:
        """A deep copy (sparse CSR tensors cannot be deep-copied by ``copy.deepcopy`` itself)."""
        channel = self.item_item_channel
        cached = channel._matrix_t if channel is not None else None
        return deepcopy_with_sparse(self, memo, [self.adj] + ([cached] if cached is not None else []))

    def extra_repr(self) -> str:
        return (
            f"users={self.num_users}, items={self.num_items}, dim={self.dim}, layers={self.num_layers}, "
            f"temperature={self.temperature}, item_ids={self.item_ids}, text={self.use_text}, kg={self.use_kg}, "
            f"film={self.scene_film}, item_item={self.item_item_channel is not None}"
        )


def _shared_facts(kg: KGEdges, min_items: int) -> KGEdges:
    """The facts whose entity is linked to at least ``min_items`` distinct items (all of them for ``min_items <= 1``)."""
    if min_items <= 1 or kg.item.numel() == 0:
        return kg
    pairs = torch.unique(torch.stack([kg.entity, kg.item]), dim=1)
    items_per_entity = torch.bincount(pairs[0], minlength=kg.num_entities)
    keep = items_per_entity[kg.entity] >= min_items
    return KGEdges(kg.item[keep], kg.entity[keep], kg.relation[keep], kg.num_entities, kg.num_relations)
