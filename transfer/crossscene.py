"""Knowledge transfer into recommendation: :class:`CrossSceneGNN`, SceneGNN trained on the joint graph of all scenes
with a learnt per-scene gate that fuses what a user did in every scene.

Knowledge crosses scenes three ways, each behind a switch for the ablations (see ``benchmarks/transfer.py``):

1. **Shared users.** A user is one node whatever the scene, so LightGCN propagation over the joint user-item graph
   (:class:`~scenerec.gnn.SceneGNN`) mixes the scenes already; training on one scene only is the ``target only``
   ablation.
2. **Entity alignment.** Items of two scenes that are the same thing under different ids (``SAME_AS`` links found by
   :func:`scenerec.transfer.align`) are joined by item-item edges that propagation follows
   (:attr:`GraphInputs.item_links <scenerec.gnn.GraphInputs>`, weighted by the alignment score).
3. **The gate.** For every scene ``s`` a user has a *scene view* ``k_s``: the mean of the propagated vectors of the
   user's training items in ``s`` (zero when the user has none). The user's vector for target scene ``t`` is

       u_t = h_u + sum_s W_{t<-s} k_s          (two scenes: u_t = h_u + W_t k_t + W_s k_s)

   with ``h_u`` the shared (propagated) user vector, normalised to unit length, and one learnt d x d matrix per (target, source) pair, initialised
   to zero, so training starts from the shared-users model. A user known only from a source scene still gets
   ``u_t = h_u + W_{t<-s} k_s`` for the target.

   ``view_dropout`` hides the target's own view ``k_t`` of a random share of the users at every training step, so
   that ``W_{t<-s}`` learns to predict a scene from the other scenes alone: the situation of a user who is new to
   the target scene.

``cold_dropout`` trains a separate form for users new to a scene: at every training step a random share of the users
is treated as new to the target scene (its own view and its shared vector hidden), and scores it with

    u_t = p_t + sum_{s != t} W_{t<-s} k_s

where ``p_t`` is a learnt per-scene vector (what a newcomer to ``t`` likes before any evidence). At inference every
user without training items in ``t`` gets this form, so users known only from other scenes are scored the way the
model was trained to score them (rather than through a shared vector fitted on other scenes' items alone).

``item_bias`` adds a learnt per-item bias to the scores: with cosine scores bounded by ``1 / temperature``,
popularity (what a user with little history in the target scene falls back on) is hard to express otherwise.

Scores stay dot products of one user and one item vector (the :class:`~scenerec.gnn.models.Recommender` contract):
:meth:`CrossSceneGNN.forward` returns users as ``[u_1 | ... | u_S]`` (U, S*d) and places each item's vector in the
block of its scene (I, S*d), so ``user @ item`` is ``cos(u_scene(i), v_i) / temperature``. Items without a scene
use block 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from scenerec.gnn import GraphInputs, SceneGNN
from scenerec.gnn.evaluate import CSR
from scenerec.gnn.models import deepcopy_with_sparse
from scenerec.gnn.propagation import spmm

__all__ = ["CrossSceneGNN", "scene_views"]


def scene_views(train: CSR, item_scene: np.ndarray, num_scenes: int) -> tuple[Tensor, Tensor]:
    """The row-normalised scene-view matrix (S*U, I) as sparse CSR and its transpose: row ``s*U + u`` averages the
    training items of user ``u`` in scene ``s`` (an empty row where the user has none). Items without a scene count
    as scene 0."""
    n_users, n_items = train.shape
    rows, cols = train.rows(), train.indices
    scene = np.clip(np.asarray(item_scene, dtype=np.int64), 0, None)[cols]
    view_rows = scene * n_users + rows
    counts = np.bincount(view_rows, minlength=num_scenes * n_users).astype(np.float32)
    values = torch.from_numpy(1.0 / counts[view_rows])
    index = torch.from_numpy(np.stack([view_rows, cols]).astype(np.int64))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        coo = torch.sparse_coo_tensor(index, values, (num_scenes * n_users, n_items), check_invariants=True).coalesce()
        return coo.to_sparse_csr(), coo.t().coalesce().to_sparse_csr()


class CrossSceneGNN(SceneGNN):
    """:class:`~scenerec.gnn.SceneGNN` with the per-scene gate (see the module docstring).

    Args:
        inputs: the joint graph (:class:`~scenerec.gnn.GraphInputs`; ``item_links`` carries the alignments).
        gate: learn the per-scene gate ``W_{t<-s}``; without it the model scores like a SceneGNN (with block
            vectors).
        view_dropout: training-time probability of hiding a user's own view of the target scene.
        item_bias: add a learnt bias per item to its scores (popularity the cosine cannot express; a new item gets
            :meth:`new_item_bias`).
        cold_dropout: training-time probability of treating a user as new to the target scene (the newcomer form
            above, which users without items in a scene then get at inference); 0 turns the form off.
        **kwargs: SceneGNN's hyper-parameters (``dim``, ``num_layers``, ``temperature``, ``item_ids``, ...).
    """

    view: Tensor
    view_t: Tensor
    scene_block: Tensor
    has_view: Tensor

    def __init__(
        self,
        inputs: GraphInputs,
        *,
        gate: bool = True,
        view_dropout: float = 0.0,
        item_bias: bool = False,
        cold_dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(inputs, **kwargs)
        if not 0.0 <= view_dropout < 1.0:
            raise ValueError(f"view_dropout must be in [0, 1), got {view_dropout}")
        if not 0.0 <= cold_dropout < 1.0:
            raise ValueError(f"cold_dropout must be in [0, 1), got {cold_dropout}")
        if cold_dropout > 0 and not gate:
            raise ValueError("cold_dropout needs the gate (the newcomer form is p_t + sum_s W[t<-s] k_s)")
        self.gate, self.view_dropout, self.cold_dropout = bool(gate), float(view_dropout), float(cold_dropout)
        self._hparams.update(
            gate=self.gate, view_dropout=self.view_dropout, item_bias=bool(item_bias), cold_dropout=self.cold_dropout
        )
        s, d = self.num_scenes, self.dim
        view, view_t = scene_views(inputs.train, inputs.item_scene, s)
        self.register_buffer("view", view, persistent=False)
        self.register_buffer("view_t", view_t, persistent=False)
        block = F.one_hot(torch.as_tensor(inputs.item_scene, dtype=torch.long).clamp_min(0), s).float()
        self.register_buffer("scene_block", block, persistent=False)
        self.gate_weight = torch.nn.Parameter(torch.zeros(s, s, d, d)) if gate else None
        self.item_bias = bool(item_bias)
        self.bias = torch.nn.Parameter(torch.zeros(self.num_items)) if item_bias else None
        self.cold_proto = torch.nn.Parameter(0.1 * torch.randn(s, d)) if cold_dropout > 0 else None
        has_view = torch.from_numpy(np.diff(view.crow_indices().numpy()) > 0).view(s, -1, 1)
        self.register_buffer("has_view", has_view, persistent=False)

    def reset_parameters(self) -> None:
        """SceneGNN's initialisation; the gate starts at zero (the shared-users model)."""
        super().reset_parameters()
        for name in ("gate_weight", "bias"):
            param = getattr(self, name, None)
            if param is not None:
                torch.nn.init.zeros_(param)
        proto = getattr(self, "cold_proto", None)
        if proto is not None:
            torch.nn.init.normal_(proto, std=0.1)

    # ------------------------------------------------------------------ forward
    def gated_users(self, shared: Tensor, views: Tensor, keep_own: Tensor | None = None) -> Tensor:
        """``u_t = h + sum_s W_{t<-s} k_s`` for every scene t: ``shared`` (b, d), ``views`` (S, b, d) -> (S, b, d).

        ``keep_own`` (S, b, 1) multiplies each user's own view of scene t in the sum for t (view dropout)."""
        if self.gate_weight is None:
            return shared.unsqueeze(0).expand(self.num_scenes, -1, -1)
        # mixed[t, b] = sum_s W[t, s] @ views[s, b]
        mixed = torch.einsum("tsed,sbd->tbe", self.gate_weight, views)
        if keep_own is not None:
            own = torch.einsum("ted,tbd->tbe", torch.diagonal(self.gate_weight, dim1=0, dim2=1).permute(2, 0, 1), views)
            mixed = mixed - own * (1.0 - keep_own)
        return shared.unsqueeze(0) + mixed

    def _blocks(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """Unit per-scene user vectors (S, U, d) -> (U, S*d); items (I, d) -> their scene's block of (I, S*d)."""
        user_out = F.normalize(users, dim=-1).permute(1, 0, 2).reshape(users.shape[1], -1)
        unit = F.normalize(items, dim=-1) / self.temperature
        item_out = (self.scene_block.unsqueeze(2) * unit.unsqueeze(1)).reshape(items.shape[0], -1)
        if self.bias is not None:  # a constant user coordinate times the item's bias
            user_out = torch.cat([user_out, user_out.new_ones(user_out.shape[0], 1)], dim=1)
            item_out = torch.cat([item_out, self.bias.unsqueeze(1)], dim=1)
        return user_out, item_out

    def forward(self) -> tuple[Tensor, Tensor]:
        """Block user vectors (U, S*d) and block item vectors (I, S*d); see the module docstring."""
        shared, items = self.propagated()
        shared = F.normalize(shared, dim=-1)  # as for new users (score_histories): a unit shared vector
        views = spmm(self.view, items, self.view_t).view(self.num_scenes, self.num_users, self.dim)
        keep = None
        if self.training and self.view_dropout > 0 and self.gate_weight is not None:
            keep = (torch.rand(self.num_scenes, self.num_users, 1, device=items.device) >= self.view_dropout).float()
        users = self.gated_users(shared, views, keep)
        if self.cold_proto is not None:
            if self.training:
                cold = torch.rand(self.num_scenes, self.num_users, 1, device=items.device) < self.cold_dropout
            else:
                cold = ~self.has_view
            users = torch.where(cold, self.newcomers(views), users)
        return self._blocks(users, items)

    def newcomers(self, views: Tensor) -> Tensor:
        """The newcomer form (S, b, d) for every scene t: ``p_t + sum_{s != t} W_{t<-s} k_s`` from ``views``
        (S, b, d): the user's own view of t and its shared vector left out (see the module docstring)."""
        assert self.cold_proto is not None and self.gate_weight is not None
        mixed = torch.einsum("tsed,sbd->tbe", self.gate_weight, views)
        own = torch.einsum("ted,tbd->tbe", torch.diagonal(self.gate_weight, dim1=0, dim2=1).permute(2, 0, 1), views)
        return self.cold_proto.unsqueeze(1) + mixed - own

    def item_representations(self) -> Tensor:
        """Unit item vectors (I, d) in one space for all scenes (item-item similarity across scenes)."""
        return F.normalize(self.propagated()[1], dim=-1)

    def encode_new_items(self, text: Tensor, scene: Tensor) -> Tensor:
        """SceneGNN's vectors of new items (from text, no retraining), placed in their scene's block (n, S*d)."""
        unit = super().encode_new_items(text, scene)
        block = F.one_hot(torch.as_tensor(scene, dtype=torch.long).clamp_min(0), self.num_scenes).to(unit)
        out = (block.unsqueeze(2) * unit.unsqueeze(1)).reshape(unit.shape[0], -1)
        if self.bias is not None:
            scene_t = torch.as_tensor(scene, dtype=torch.long).clamp_min(0)
            prior = {s: self.new_item_bias(s) for s in set(scene_t.tolist())}  # once per scene
            column = torch.stack([prior[s] for s in scene_t.tolist()]) if len(scene_t) else out.new_zeros(0)
            out = torch.cat([out, column.unsqueeze(1).to(out)], dim=1)
        return out

    def new_item_bias(self, scene: int) -> Tensor:
        """The bias a new item of ``scene`` gets: the mean bias of the scene's items without a training
        interaction (what the model learnt for an unchosen item), else the scene's lowest bias."""
        assert self.bias is not None
        counts = torch.from_numpy(np.bincount(self._train.indices, minlength=self.num_items)).to(self.bias.device)
        in_scene = self.item_scene_t.clamp_min(0) == scene
        unchosen = in_scene & (counts == 0)
        return self.bias[unchosen].mean() if bool(unchosen.any()) else self.bias[in_scene].min()

    # ------------------------------------------------------------------ scoring
    def score_histories(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """New users from their item histories (no retraining): the shared vector is the unit mean of the history's
        unit item vectors (as in SceneGNN) and the scene views are the history's per-scene means, through the same
        gate; a history in one scene only is a user new to every other scene."""
        if not histories:
            return item_emb.new_zeros(0, self.num_items)
        return self.history_vectors(histories, user_emb, item_emb) @ item_emb.t()

    def history_vectors(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """New users' block vectors (b, S*d [+1]), see :meth:`score_histories`."""
        with torch.no_grad():
            _, items = self.propagated()
        unit = F.normalize(items, dim=-1)
        scene = self.item_scene_t.clamp_min(0)
        shared_rows, view_rows = [], []
        for hist in histories:
            hist = hist.to(unit.device).long()
            shared_rows.append(unit[hist].mean(0) if hist.numel() else unit.new_zeros(self.dim))
            v = unit.new_zeros(self.num_scenes, self.dim)
            if hist.numel():
                counts = torch.bincount(scene[hist], minlength=self.num_scenes).clamp_min(1).unsqueeze(1)
                v = v.index_add(0, scene[hist], items[hist]) / counts
            view_rows.append(v)
        if not histories:
            return user_emb.new_zeros(0, user_emb.shape[1])
        shared = F.normalize(torch.stack(shared_rows), dim=-1)
        views = torch.stack(view_rows, dim=1)  # (S, b, d)
        gated = self.gated_users(shared, views)
        if self.cold_proto is not None:
            empty = views.abs().sum(-1, keepdim=True) == 0  # (S, b, 1): no history item in that scene
            gated = torch.where(empty, self.newcomers(views), gated)
        users, _ = self._blocks(gated, items)
        return users

    def __deepcopy__(self, memo: dict[int, Any]) -> CrossSceneGNN:
        return deepcopy_with_sparse(self, memo, [self.adj, self.view, self.view_t])

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, gate={self.gate}, view_dropout={self.view_dropout}, bias={self.item_bias}, "
            f"cold_dropout={self.cold_dropout}"
        )
