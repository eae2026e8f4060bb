"""scenerec's main recommender: :class:`SceneGNN`, a text-initialised, relation-aware, scene-adapted graph model.

Representations (d-dimensional), every part behind a switch for ablations:

1. **Ego embeddings.** Users: a learnt table. Items: a learnt linear projection of the item's LLM text embedding
   (``use_text``), so that an item with text but no interactions still has a representation, plus a learnt id
   embedding for the items ``item_ids`` names: ``"missing"`` (default) only the items without text, ``"all"``
   every item, ``"none"`` no item (what each choice gives on real data: ``benchmarks/README.md``).
2. **Relation-aware knowledge.** (``use_kg``, off by default; its cost and effect are measured in
   ``benchmarks/README.md``: measure it on your data with the ablation) Each item adds the mean, over its knowledge-graph facts ``(item, r,
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

The item-item channel that scenerec fuses with it after training is not part of the model: it is fitted outside
gradient descent and lives in :class:`scenerec.gnn.fusion.ItemItemFusion`, which wraps a trained model.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from scenerec.gnn.data import GraphInputs, KGEdges
from scenerec.gnn.models import Recommender, _l2_of_batch, deepcopy_with_sparse
from scenerec.gnn.propagation import propagate

__all__ = ["ITEM_IDS", "GraphInputs", "KGEdges", "SceneGNN"]  # GraphInputs, KGEdges: from scenerec.gnn.data

#: Values of :class:`SceneGNN`'s ``item_ids``: which items get a free id embedding.
ITEM_IDS = ("missing", "all", "none")

log = logging.getLogger(__name__)


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
        kg_min_items: use only the entities linked to at least this many distinct items (an entity of one item
            is one more free vector of that item, which overfits like an id embedding; default 2).
        item_item, item_item_nnz, item_item_kind: deprecated and ignored: the item-item channel moved out of the
            model, to :class:`scenerec.gnn.fusion.ItemItemFusion` (wrap the model with it).

    :meth:`hyperparameters` records the constructor arguments as used: ``use_text`` and ``use_kg`` are false when
    the inputs lacked what they need.
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
        kg_min_items: int = 2,
        item_item: bool | None = None,
        item_item_nnz: int | None = None,
        item_item_kind: str | None = None,
    ) -> None:
        super().__init__(inputs.num_users, inputs.num_items)
        if (item_item, item_item_nnz, item_item_kind) != (None, None, None):
            warnings.warn(
                "SceneGNN's item_item, item_item_nnz and item_item_kind are ignored: the item-item channel moved to "
                "scenerec.gnn.ItemItemFusion (wrap the model: ItemItemFusion(model, inputs, kind=...))",
                DeprecationWarning,
                stacklevel=2,
            )
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
        self._train = inputs.train
        self._hparams = {
            "dim": self.dim,
            "num_layers": self.num_layers,
            "temperature": self.temperature,
            "item_ids": item_ids,
            "use_text": use_text,
            "use_kg": use_kg,
            "scene_film": bool(scene_film),
            "kg_min_items": self.kg_min_items,
        }
        self.reset_parameters()

    @classmethod
    def from_inputs(cls, inputs: GraphInputs, **hparams: Any) -> SceneGNN:
        """``cls(inputs, **hparams)``."""
        return cls(inputs, **hparams)

    # ------------------------------------------------------------------ parameters
    def reset_parameters(self) -> None:
        """Embeddings ``normal(0, 0.1)``; projections PyTorch's default; relation gates 1; FiLM the identity."""
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

    @property
    def encodes_text(self) -> bool:
        """Whether :meth:`encode_new_items` can represent an item from its text (trained with ``use_text``)."""
        return self.text_proj is not None

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
    def score_histories(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """New users: the unit mean of their history's unit item vectors as the user vector."""
        return self.history_vectors(histories, user_emb, item_emb) @ item_emb.t()

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
        return deepcopy_with_sparse(self, memo, [self.adj])

    def extra_repr(self) -> str:
        return (
            f"users={self.num_users}, items={self.num_items}, dim={self.dim}, layers={self.num_layers}, "
            f"temperature={self.temperature}, item_ids={self.item_ids}, text={self.use_text}, kg={self.use_kg}, "
            f"film={self.scene_film}"
        )


def _shared_facts(kg: KGEdges, min_items: int) -> KGEdges:
    """The facts whose entity is linked to at least ``min_items`` distinct items (all of them for ``min_items <= 1``)."""
    if min_items <= 1 or kg.item.numel() == 0:
        return kg
    pairs = torch.unique(torch.stack([kg.entity, kg.item]), dim=1)
    items_per_entity = torch.bincount(pairs[0], minlength=kg.num_entities)
    keep = items_per_entity[kg.entity] >= min_items
    return KGEdges(kg.item[keep], kg.entity[keep], kg.relation[keep], kg.num_entities, kg.num_relations)
