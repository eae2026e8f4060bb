"""Serving users and items that arrived after training, without retraining (inductive inference).

After an incremental update (:func:`scenerec.kg.update`) the store holds nodes the trained model has never seen;
the id map only grew, so every trained index keeps its meaning and the new nodes come after the old ones.
:class:`ExtendedRecommender` wraps the trained model and gives them representations from what it learnt:

* a new item: the model's vector of an item with its text and scene but no edges
  (:meth:`SceneGNN.encode_new_items <scenerec.gnn.SceneGNN.encode_new_items>`), or a zero vector for models
  without text (the baselines: such an item scores 0);
* a new user: the model's own new-user vector from the history (:meth:`Recommender.history_vectors`), over the
  history's items that the model knows, and its scores of those items through
  :meth:`Recommender.score_histories` (so models with an item-item channel keep it).

Old users keep their trained scores of old items; every user's score of a new item is the dot product of the
user's vector and the item's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from scenerec.gnn.models import ModelWrapper, Recommender


class ExtendedRecommender(ModelWrapper):
    """``base`` (trained on ``base.num_users`` x ``base.num_items``) serving ``len(new_user_histories)`` more users
    and ``new_items.shape[0]`` more items.

    Args:
        base: the trained model.
        new_items: (n, D) vectors of the new items in the space of ``base.forward()``'s item output.
        new_user_histories: per new user, the indices (old or new items) of its history.
    """

    new_items: Tensor

    def __init__(self, base: Recommender, new_items: Tensor, new_user_histories: Sequence[Tensor]) -> None:
        super().__init__(base, base.num_users + len(new_user_histories), base.num_items + new_items.shape[0])
        self.old_users, self.old_items = base.num_users, base.num_items
        self.register_buffer("new_items", new_items.detach().clone(), persistent=False)
        self.histories = [torch.as_tensor(h, dtype=torch.long) for h in new_user_histories]

    def _known(self, histories: Sequence[Tensor]) -> list[Tensor]:
        return [h[h < self.old_items] for h in histories]

    def forward(self) -> tuple[Tensor, Tensor]:
        """Users (U_old + U_new, D) and items (I_old + I_new, D): the trained ones, then the new ones."""
        user_emb, item_emb = self.base.forward()
        new_users = self.base.history_vectors(self._known(self.histories), user_emb, item_emb)
        users = torch.cat([user_emb, new_users.to(user_emb)], dim=0)
        items = torch.cat([item_emb, self.new_items.to(item_emb)], dim=0)
        return users, items

    def score(self, users: Tensor, user_emb: Tensor | None = None, item_emb: Tensor | None = None) -> Tensor:
        """Scores (b, I_old + I_new): old users through the trained model, new users through its new-user
        scoring; new items by the dot product with the user's vector."""
        if user_emb is None or item_emb is None:
            user_emb, item_emb = self.forward()
        old_u, old_i = user_emb[: self.old_users], item_emb[: self.old_items]
        new_cols = user_emb[users] @ item_emb[self.old_items :].t()
        out = item_emb.new_zeros(users.numel(), self.old_items)
        is_old = users < self.old_users
        if bool(is_old.any()):
            out[is_old] = self.base.score(users[is_old], old_u, old_i).to(out)
        if bool((~is_old).any()):
            hist = [self.histories[int(u) - self.old_users] for u in users[~is_old]]
            out[~is_old] = self.base.score_histories(self._known(hist), old_u, old_i).to(out)
        return torch.cat([out, new_cols], dim=1)

    def extra_candidates(self, users: Tensor) -> tuple[np.ndarray, np.ndarray] | None:
        """The base model's extra candidates of the old users and, from their histories, of the new ones (both
        among the old items: the new items are scored by the dot product alone)."""
        is_old = (users < self.old_users).cpu().numpy()
        positions = np.arange(users.numel(), dtype=np.int64)
        old_rows, new_rows = positions[is_old], positions[~is_old]
        parts = []
        if len(old_rows):
            parts.append((old_rows, self.base.extra_candidates(users[torch.from_numpy(old_rows)])))
        if len(new_rows):
            hist = [self.histories[int(users[int(r)]) - self.old_users] for r in new_rows]
            parts.append((new_rows, self.base.history_extra_candidates(self._known(hist))))
        found = [(rows[pairs[0]], pairs[1]) for rows, pairs in parts if pairs is not None]
        if not found:
            return None
        return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])

    def history_extra_candidates(self, histories: Sequence[Tensor]) -> tuple[np.ndarray, np.ndarray] | None:
        return self.base.history_extra_candidates(self._known(histories))

    def score_histories(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """New users given by their histories (old or new items): the trained model's scores of the old items, the
        dot product for the new ones."""
        old_u, old_i = user_emb[: self.old_users], item_emb[: self.old_items]
        known = self._known(histories)
        vectors = self.base.history_vectors(known, old_u, old_i)
        old = self.base.score_histories(known, old_u, old_i)
        return torch.cat([old, vectors.to(old) @ item_emb[self.old_items :].t().to(old)], dim=1)

    def history_vectors(self, histories: Sequence[Tensor], user_emb: Tensor, item_emb: Tensor) -> Tensor:
        return self.base.history_vectors(self._known(histories), user_emb[: self.old_users], item_emb[: self.old_items])

    def item_representations(self) -> Tensor | None:
        """The base model's shared item space (when it has one: None otherwise), with the new items' vectors mapped
        into it."""
        old = self.base.item_representations()
        if old is None:
            return None
        d = old.shape[1]
        new = self.new_items
        if new.shape[1] != d:  # block vectors (one block per scene, + a bias column): sum the blocks
            blocks = new[:, : (new.shape[1] // d) * d].reshape(new.shape[0], -1, d)
            new = blocks.sum(1)
        return torch.cat([old, torch.nn.functional.normalize(new.to(old), dim=-1)], dim=0)
