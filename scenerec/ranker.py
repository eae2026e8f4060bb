"""Serving the trained model: the :class:`Ranker` service of an engine (``engine.ranker``): recommendations for a
known user, for a history of items and for a new item's audience, similar items, explanations, and the write-back
of every user's recommendations into the graph. Every ranking is :func:`scenerec.ranking.top_k`'s."""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scenerec.config import AnnConfig
from scenerec.errors import ConfigError, MissingExtraError, UnknownIdError
from scenerec.ranking import check_k, top_positions
from scenerec.trained import SPLITS_FILE, TrainedModel

if TYPE_CHECKING:
    from scenerec.ann import SceneIndex
    from scenerec.engine import Engine
    from scenerec.kg import GraphStore, UpdateReport

__all__ = ["Ranker"]

log = logging.getLogger(__name__)


class Ranker:
    """Rankings of an engine's served model (:meth:`Trainer.load <scenerec.trainer.Trainer.load>`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ids: dict[str, tuple[tuple[str, int, int], np.ndarray]] = {}  # see _id_array
        # per scene index: (the served model it was built for, the settings, the index or None), see _scene_index_of
        self._indexes: dict[int, tuple[weakref.ref[TrainedModel], AnnConfig, SceneIndex | None]] = {}

    def _scene_items(self, trained: TrainedModel, scene: str) -> np.ndarray:
        """Item indices of ``scene`` (checked to exist), ascending."""
        return trained.scene_items(self._engine._scene_index(scene))

    def _id_array(self, kind: str) -> np.ndarray:
        """The ids of ``kind`` as a numpy object array in index order, kept while the engine's id map is unchanged
        (do not modify)."""
        idmap = self._engine.idmap
        key = (kind, id(idmap), idmap.size(kind))
        cached = self._ids.get(kind)
        if cached is None or cached[0] != key:
            ids = np.asarray(idmap.ids(kind), dtype=object)
            ids.flags.writeable = False
            self._ids[kind] = cached = (key, ids)
        return cached[1]

    def _user_indices(self, user_ids: Sequence[str]) -> np.ndarray:
        """The user indices of ``user_ids`` (in order); :class:`UnknownIdError` for the first unknown one."""
        idmap = self._engine.idmap
        for user_id in user_ids:
            if ("user", user_id) not in idmap:
                raise UnknownIdError("user", user_id)
        return idmap.indices("user", user_ids).astype(np.int64)

    def _scene_top_k(
        self, trained: TrainedModel, users: np.ndarray, scene: int, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The top-``k`` items of scene index ``scene`` for the user indices ``users`` (one block), the users'
        training items left out: ``(row, item, score, rank)`` per chosen pair, rows ascending, ranks ascending
        within a row (``row``: position in ``users``; ``score`` float64). Exact (:meth:`TrainedModel.scene_top_k`),
        or among the candidates of the scene's index when it has one (:meth:`_scene_index_of`,
        :func:`scenerec.ann.ann_scene_top_k`)."""
        index = self._scene_index_of(trained, scene)
        if index is None:
            return trained.scene_top_k(users, scene, k)
        from scenerec.ann import ann_scene_top_k

        return ann_scene_top_k(trained, index, users, scene, k, self._engine.ann.candidates)

    def ann_index(self, scene: str) -> SceneIndex | None:
        """The approximate nearest-neighbour index that serves ``scene`` (:mod:`scenerec.ann`), built now when
        it is not yet, or None when the scene is ranked exactly (see :class:`~scenerec.config.AnnConfig`: by
        default only scenes of more than 100,000 items get one). Building ahead of the first request keeps its
        time (seconds per 100k items) out of that request. Raises :class:`UnknownIdError` for an unknown scene,
        :class:`ConfigError` when no model is trained, :class:`MissingExtraError` when the index is asked for
        (``ann=True``) and faiss is not installed."""
        trained = self._engine.trainer.load()
        return self._scene_index_of(trained, self._engine._scene_index(scene))

    def _scene_index_of(self, trained: TrainedModel, scene: int) -> SceneIndex | None:
        """The index of scene index ``scene`` for the served model ``trained`` under the engine's
        :attr:`~scenerec.engine.Engine.ann` settings: kept while both are the same (a new model, e.g. after
        ``reopen`` or ``update``, or new settings build it again), None for an exactly ranked scene. With the
        default settings (``enabled=None``) a scene large enough is ranked exactly, with a warning, when faiss is
        not installed."""
        config = self._engine.ann
        kept = self._indexes.get(scene)
        if kept is not None and kept[0]() is trained and kept[1] == config:
            return kept[2]
        items = trained.scene_items(scene)
        item_emb = trained.embeddings[1]
        index: SceneIndex | None = None
        if len(items) and item_emb.shape[1] >= 2 and config.wants(len(items)):  # a 1-d score needs no index
            from scenerec.ann import SceneIndex

            try:
                index = SceneIndex(item_emb.detach().cpu().numpy()[items], config)
            except MissingExtraError as exc:
                if config.enabled:
                    raise
                log.warning("scene %d (%d items) is ranked exactly: %s", scene, len(items), exc)
        self._indexes[scene] = (weakref.ref(trained), config, index)
        return index

    # ---------------------------------------------------------------- one user
    def recommend(
        self, user_id: str, scene: str, k: int = 10, *, explain: bool = False, max_paths: int = 3
    ) -> pd.DataFrame:
        """The ``k`` items of ``scene`` the trained model scores highest for ``user_id``, the user's training items
        left out. Columns ``item_id``, ``scene``, ``score``, ``rank`` (1 = best); ties go to the lower item index.
        With ``explain=True`` also ``explanation``: each row's :meth:`explain` paths (at most ``max_paths``).

        Raises :class:`UnknownIdError` for an unknown user or scene, :class:`ConfigError` when no model is trained.
        """
        check_k(k)
        if explain:
            check_k(max_paths, "max_paths")
        engine = self._engine
        trained = engine.trainer.load()
        scene_index = engine._scene_index(scene)
        users = self._user_indices([user_id])
        _, items, scores, ranks = self._scene_top_k(trained, users, scene_index, k)
        recs = _frame(
            {"item_id": self._id_array("item")[items], "scene": np.full(len(items), scene, dtype=object)},
            score=scores,
            rank=ranks,
        )
        return self._with_explanations(recs, user_id, max_paths) if explain else recs

    def recommend_many(self, user_ids: Sequence[str], scene: str, k: int = 10, batch_size: int = 1024) -> pd.DataFrame:
        """:meth:`recommend` for many users at once: the users are scored ``batch_size`` at a time and ranked by
        :func:`~scenerec.ranking.top_k` per block, the same ranking as :meth:`recommend` of each user.

        Columns ``user_id``, ``item_id``, ``scene``, ``score``, ``rank``: the users in the order given (a repeated
        user is repeated), each one's items best first. Raises :class:`UnknownIdError` for an unknown user or scene,
        :class:`ConfigError` when no model is trained, ``ValueError`` for a bad ``k`` or ``batch_size``.
        """
        check_k(k)
        check_k(batch_size, "batch_size")
        if isinstance(user_ids, str):
            raise ValueError("user_ids must be a list of user ids, not one string: use recommend for one user")
        engine = self._engine
        trained = engine.trainer.load()
        scene_index = engine._scene_index(scene)
        users = self._user_indices([str(u) for u in user_ids])
        parts = list(self._top_k_blocks(trained, users, scene_index, k, batch_size))
        user_of = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        items = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        return _frame(
            {
                "user_id": self._id_array("user")[user_of],
                "item_id": self._id_array("item")[items],
                "scene": np.full(len(items), scene, dtype=object),
            },
            score=np.concatenate([p[2] for p in parts]) if parts else np.zeros(0),
            rank=np.concatenate([p[3] for p in parts]) if parts else np.zeros(0, dtype=np.int64),
        )

    def _top_k_blocks(
        self, trained: TrainedModel, users: np.ndarray, scene: int, k: int, batch_size: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`_scene_top_k` of ``users`` in blocks of at most ``batch_size`` users (fewer for a large scene,
        so that a block holds at most 4M scores): ``(user, item, score, rank)`` per block, ``user`` the user index."""
        step = max(1, min(batch_size, 4_000_000 // max(len(trained.scene_items(scene)), 1)))
        for start in range(0, len(users), step):
            block = users[start : start + step]
            row, items, scores, ranks = self._scene_top_k(trained, block, scene, k)
            yield block[row], items, scores, ranks

    def explain(self, user_id: str, item_id: str, max_paths: int = 3) -> list[dict[str, Any]]:
        """The ``max_paths`` graph paths that best connect ``user_id`` to ``item_id``, best first: shared entities,
        items that users share, ``SAME_AS`` links across scenes (the kinds of
        :meth:`GraphStore.explanation_paths <scenerec.kg.GraphStore.explanation_paths>`, found with parameterised
        Cypher), each scored by the cosine of its items to ``item_id`` in :meth:`item_vectors` times the scores of
        its ``SAME_AS`` hops (:mod:`scenerec.explain`).

        Each path is ``{"kind", "score", "nodes": [{"label", "id", "name"}, ...], "relations": [...]}``; an empty
        list when the graph holds none. Raises :class:`UnknownIdError` for an unknown user or item,
        :class:`ConfigError` when there are no item vectors, ``ValueError`` for a bad ``max_paths``.
        """
        from scenerec.explain import explain as explain_paths

        check_k(max_paths, "max_paths")
        vectors, _ = self.item_vectors()
        return explain_paths(self._engine.store, self._engine.idmap, vectors, user_id, item_id, max_paths)

    def _with_explanations(self, recs: pd.DataFrame, user_id: str, max_paths: int) -> pd.DataFrame:
        """``recs`` with an ``explanation`` column: the :meth:`explain` paths of each row's item."""
        from scenerec.explain import explain as explain_paths

        engine = self._engine
        vectors = self.item_vectors()[0] if len(recs) else np.zeros((0, 1), dtype=np.float32)
        paths = [
            explain_paths(engine.store, engine.idmap, vectors, user_id, item, max_paths) for item in recs["item_id"]
        ]
        return recs.assign(explanation=pd.Series(paths, index=recs.index, dtype=object))

    # ---------------------------------------------------------------- new users and items
    def _ranked(self, scores: np.ndarray, candidates: np.ndarray, k: int, scene: str | None) -> pd.DataFrame:
        """The ``k`` best of ``candidates`` (ascending item indices) by ``scores`` (over all items): columns
        ``item_id``, ``scene`` (``scene``, else each item's own), ``score``, ``rank``."""
        engine = self._engine
        top = top_positions(scores.astype(np.float64), k, candidates)
        item_ids = engine.idmap.ids("item")
        scenes = [scene] * len(top) if scene is not None else engine.items()["scene"].to_numpy()[top].tolist()
        return pd.DataFrame(
            {
                "item_id": pd.Series([item_ids[i] for i in top], dtype=object),
                "scene": pd.Series(scenes, dtype=object),
                "score": scores[top].astype(np.float64),
                "rank": np.arange(1, len(top) + 1, dtype=np.int64),
            }
        )

    def _item_indices(self, item_ids: Sequence[str] | str) -> np.ndarray:
        """Sorted unique item indices of ``item_ids`` (a single id is one item); errors for none or unknown ids."""
        idmap = self._engine.idmap
        ids = [item_ids] if isinstance(item_ids, str) else [str(i) for i in item_ids]
        if not ids:
            raise ValueError("no item ids given: name at least one item the user interacted with")
        for ident in ids:
            if ("item", ident) not in idmap:
                raise UnknownIdError("item", ident)
        return np.unique(idmap.indices("item", ids))

    def recommend_for_items(self, item_ids: Sequence[str], scene: str, k: int = 10) -> pd.DataFrame:
        """The ``k`` items of ``scene`` the trained model scores highest for a user it has never seen, given only
        the items that user interacted with (inductive: :meth:`Recommender.score_histories`, no retraining).

        The given items are left out; columns ``item_id``, ``scene``, ``score``, ``rank`` (1 = best); ties go to
        the lower item index, as in :meth:`recommend`. Raises :class:`UnknownIdError` for an unknown item or scene,
        ``ValueError`` for an empty list, :class:`ConfigError` when no model is trained.
        """
        import torch

        check_k(k)
        trained = self._engine.trainer.load()
        candidates = self._scene_items(trained, scene)
        history = self._item_indices(item_ids)
        with torch.no_grad():
            scores = trained.recommender.score_histories([torch.from_numpy(history)], *trained.embeddings)[0]
        return self._ranked(
            scores.detach().cpu().numpy().astype(np.float64),
            np.setdiff1d(candidates, history, assume_unique=True),
            k,
            scene,
        )

    def new_item_audience(
        self,
        title: str,
        scene: str,
        *,
        description: str = "",
        attributes: dict[str, Any] | None = None,
        k: int = 10,
    ) -> pd.DataFrame:
        """The ``k`` users a NEW item (not in the store) suits best, from its text alone, without retraining: the
        item's text is embedded with the store's encoder (the default item template) and mapped by the trained
        model (:meth:`SceneGNN.encode_new_items <scenerec.gnn.SceneGNN.encode_new_items>`, as if the item had been
        in the graph without edges).

        Columns ``user_id``, ``score`` and ``rank``: where the new item would rank in that user's list of the
        scene's items (the user's training items left out; 1 = the user's top recommendation). Raises
        :class:`UnknownIdError` for an unknown scene, :class:`ConfigError` when the trained model cannot embed new
        items (no text features, or a baseline), ``ValueError`` for an empty title or a bad ``k``.
        """
        import torch

        from scenerec.llm.templates import TextTemplates

        check_k(k)
        if not title or not title.strip():
            raise ValueError("a new item needs a title")
        engine = self._engine
        trained = engine.trainer.load()
        candidates = self._scene_items(trained, scene)
        model = trained.recommender
        if not model.encodes_text:
            raise ConfigError(
                f"the trained model ({trained.name}) cannot represent an item from its text alone; "
                "fit scenegnn or crossscene on a store with text embeddings"
            )
        text = TextTemplates().item_text(title, description, json.dumps(attributes or {}), scene)
        vector = torch.from_numpy(np.asarray(engine.encoder.encode([text]), dtype=np.float32))
        user_emb = trained.embeddings[0]
        with torch.no_grad():
            item = model.encode_new_items(vector, torch.tensor([engine.idmap.index("scene", scene)]))[0]
            scores = (user_emb @ item).cpu().numpy().astype(np.float64)
        top = top_positions(scores, k)
        with torch.no_grad():
            existing = trained.scores(torch.as_tensor(top, dtype=torch.long)).cpu().numpy()[:, candidates]
        ranks = []
        for row, user in enumerate(top):
            seen = np.isin(candidates, trained.train_items(user))
            ranks.append(1 + int(((existing[row] > scores[user]) & ~seen).sum()))
        users = np.asarray(engine.idmap.ids("user"), dtype=object)[top]
        return pd.DataFrame({"user_id": users, "score": scores[top], "rank": ranks})

    # ---------------------------------------------------------------- items
    def item_vectors(self) -> tuple[np.ndarray, str]:
        """Item representations in id-map order and where they come from: the trained model's (its name) when one
        is trained or saved, else the text embeddings (``"text"``). The popularity model has none of its own."""
        from scenerec.gnn import MostPopular

        engine = self._engine
        if engine._trained is not None or (engine.model_dir / SPLITS_FILE).is_file():
            trained = engine.trainer.load()
            if not isinstance(trained.recommender, MostPopular):
                import torch

                with torch.no_grad():  # a shared space where the scoring vectors are per-scene blocks
                    shared = trained.recommender.item_representations()
                item_emb = trained.embeddings[1] if shared is None else shared
                return item_emb.detach().cpu().numpy().astype(np.float32), trained.name
        vectors = engine.features.get("item")
        if vectors is None:
            raise ConfigError(
                f"{engine.path}: no item representations to compare: train a model (`scenerec fit --store "
                f"{engine.path} --model lightgcn`) or rebuild the store with text embeddings"
            )
        return vectors, "text"

    def similar_items(self, item_id: str, k: int = 10, scene: str | None = None) -> pd.DataFrame:
        """The ``k`` items most similar to ``item_id``: cosine similarity of the trained model's item
        representations when a model is trained or saved, else of the text embeddings (:meth:`item_vectors`).

        ``scene`` None: items of every scene. The item itself is left out; ties go to the lower item index.
        Columns ``item_id``, ``scene``, ``score`` (cosine), ``rank``; ``attrs["source"]`` names the
        representation. Raises :class:`UnknownIdError` for an unknown item or scene, :class:`ConfigError` when
        there are no representations.
        """
        check_k(k)
        engine = self._engine
        engine._check_scene(scene)
        if ("item", item_id) not in engine.idmap:
            raise UnknownIdError("item", item_id)
        vectors, source = self.item_vectors()
        norms = np.linalg.norm(vectors, axis=1)
        unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]
        index = engine.idmap.index("item", item_id)
        scores = (unit.astype(np.float64) @ unit[index].astype(np.float64)).astype(np.float64)
        if scene is None:
            candidates = np.arange(len(scores))
        else:
            candidates = np.flatnonzero(engine.items()["scene"].to_numpy() == scene)
        out = self._ranked(scores, candidates[candidates != index], k, None)
        out.attrs["source"] = source
        return out

    # ---------------------------------------------------------------- into the graph
    def write_back(self, k: int = 10, scenes: Sequence[str] | None = None, batch_size: int = 1024) -> dict[str, Any]:
        """Write the trained model's results into the graph, for queries in plain Cypher:

        * for every user and every scene of ``scenes`` (default: every scene the model has items of), its top-``k``
          items as ``(:User)-[:RECOMMENDED {score, rank, model}]->(:Item)``, training items left out, the same
          ranking as :meth:`recommend`; these replace all earlier ``RECOMMENDED`` relationships;
        * the learnt user and item representations as the ``gnn_embedding`` float-array property
          (:data:`scenerec.kg.schema.MODEL_EMBEDDING`), replacing earlier ones.

        Needs ``Engine.open(path, read_only=False)``. The write goes to a new generation, a copy of the served one,
        that becomes live when it is complete (see :class:`~scenerec.engine.Engine`). Returns what was written:
        ``model``, ``k``, ``scenes``, ``edges``, ``users``, ``items``, ``dim``, ``property``, ``seconds``.
        """
        check_k(k)
        engine = self._engine
        engine._require_writable("write back")
        engine.trainer.load()
        with engine._writing("write-back") as (_, graph):
            return self.write_back_into(graph, k, scenes, batch_size)

    def write_back_into(
        self, graph: GraphStore, k: int, scenes: Sequence[str] | None = None, batch_size: int = 1024
    ) -> dict[str, Any]:
        """:meth:`write_back` of the served model into ``graph`` (a staged generation's, open for writing)."""
        from scenerec.kg.schema import MODEL_EMBEDDING

        t0 = time.perf_counter()
        engine = self._engine
        trained = engine.trainer.load()
        item_emb = trained.embeddings[1]
        scenes = self._written_scenes(trained, scenes)
        n_users, n_items = engine.idmap.size("user"), engine.idmap.size("item")
        frame = self.top_k_frame(np.arange(n_users), scenes, k, batch_size)
        edges = graph.write_recommendations(frame)
        self._write_embeddings(graph, trained)
        return {
            "model": trained.name,
            "k": k,
            "scenes": scenes,
            "edges": edges,
            "users": n_users,
            "items": n_items,
            "dim": int(item_emb.shape[1]),
            "property": MODEL_EMBEDDING,
            "seconds": time.perf_counter() - t0,
        }

    def _write_embeddings(self, graph: GraphStore, trained: TrainedModel) -> None:
        """The served model's user and item representations into ``graph`` (``gnn_embedding``)."""
        idmap = self._engine.idmap
        user_emb, item_emb = trained.embeddings
        graph.set_model_embeddings("User", idmap.ids("user"), user_emb.detach().cpu().numpy())
        graph.set_model_embeddings("Item", idmap.ids("item"), item_emb.detach().cpu().numpy())

    def _written_scenes(self, trained: TrainedModel, scenes: Sequence[str] | str | None) -> list[str]:
        """``scenes`` as a list; ``None``: every scene the served model has items of."""
        if scenes is None:
            covered = set(trained.item_scene[trained.item_scene >= 0].tolist())
            return [s for n, s in enumerate(self._engine.idmap.ids("scene")) if n in covered]
        return [scenes] if isinstance(scenes, str) else list(scenes)

    def top_k_frame(self, users_all: np.ndarray, scenes: list[str], k: int, batch_size: int = 1024) -> pd.DataFrame:
        """Columns ``user``, ``item``, ``score``, ``rank``, ``model``: the top-``k`` items of every scene of
        ``scenes`` for the user indices ``users_all``, their training items left out (the ranking of
        :meth:`recommend`), scored ``batch_size`` users at a time."""
        engine = self._engine
        trained = engine.trainer.load()
        user_ids, item_ids = self._id_array("user"), self._id_array("item")
        users_all = np.asarray(users_all, dtype=np.int64)
        # the blocks' index arrays are joined first and turned into ids once: a small frame of string ids per block
        # costs far more than its size (pandas' Arrow-backed strings: 11 GB of RSS for Food–Kitchen's 1M rows)
        blocks = [
            block
            for scene in scenes
            for block in self._top_k_blocks(trained, users_all, engine._scene_index(scene), k, batch_size)
        ]
        empty = np.zeros(0, dtype=np.int64)
        users, items, scores, ranks = (
            (np.concatenate(c) for c in zip(*blocks, strict=True)) if blocks else (empty, empty, np.zeros(0), empty)
        )
        frame = pd.DataFrame({"user": user_ids[users], "item": item_ids[items], "score": scores, "rank": ranks})
        frame["model"] = trained.name
        return frame

    def refresh(self, report: UpdateReport, k: int) -> dict[str, Any]:
        """After an update (the engine serving its staged generation): extend the trained model to the new nodes
        and rewrite the ``RECOMMENDED`` edges (top ``k``) of the users the update affected (the new ones and those
        with new interactions) and every ``gnn_embedding`` vector. Returns ``refreshed_users``, ``recommended``
        (edges written) and ``model``; the seconds go to ``report.seconds["refresh"]``."""
        t0 = time.perf_counter()
        engine = self._engine
        trained = engine.trainer.load()
        affected = list(dict.fromkeys(report.new_ids.get("user", []) + report.users_with_new_interactions))
        users = engine.idmap.indices("user", affected)
        frame = self.top_k_frame(users, self._written_scenes(trained, None), k)
        written = engine.store.write_recommendations(frame, users=affected)
        self._write_embeddings(engine.store, trained)
        report.seconds["refresh"] = round(time.perf_counter() - t0, 3)
        return {"refreshed_users": len(affected), "recommended": written, "model": trained.name}


def _frame(ids: dict[str, np.ndarray], score: np.ndarray, rank: np.ndarray) -> pd.DataFrame:
    """A frame of the id columns ``ids`` (object arrays of strings; pandas' string columns also when empty), then
    ``score`` (float64) and ``rank`` (int64)."""
    frame = pd.DataFrame({**ids, "score": score, "rank": rank}, copy=False)
    return frame.astype(dict.fromkeys(ids, str)) if len(frame) == 0 else frame
