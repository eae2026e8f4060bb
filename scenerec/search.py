"""Text over an engine's store: the :class:`Search` service (``engine.search``): the item table, semantic search by
the stored text embeddings, and scenes for items that have none (:meth:`Search.classify_scenes`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scenerec.errors import ConfigError, StoreError
from scenerec.ranking import check_k, top_positions

if TYPE_CHECKING:
    from scenerec.engine import Engine

__all__ = ["SceneClassification", "Search"]


@dataclass
class SceneClassification:
    """Result of :meth:`Search.classify_scenes`: held-out quality, and one row per item that had no scene
    (``id``, ``scene``, ``title``, ``confidence``, ``assigned``)."""

    report: Any  # scenerec.llm.scenes.SceneReport
    assignments: pd.DataFrame
    written: int


class Search:
    """The items of an engine's served generation and search over their text."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._items: tuple[Path, pd.DataFrame] | None = None  # (generation folder, its items)

    def items(self) -> pd.DataFrame:
        """Items in id-map order: ``item_id``, ``scene``, ``title``, ``attributes`` (read once per generation)."""
        engine = self._engine
        if self._items is None or self._items[0] != engine._gen:
            df = engine.store.query(
                "MATCH (i:Item) RETURN i.id AS item_id, i.scene AS scene, i.title AS title, i.attributes AS attributes"
            )
            order = engine.idmap.indices("item", df["item_id"].astype(str))
            df = df.iloc[np.argsort(order)].reset_index(drop=True)
            if len(df) != engine.idmap.size("item"):
                raise StoreError(
                    f"{engine.path}: the graph holds {len(df)} items, the id map {engine.idmap.size('item')}"
                )
            self._items = (engine._gen, df.fillna({"scene": "", "title": "", "attributes": ""}))
        return self._items[1]

    def _item_vectors(self) -> np.ndarray:
        vectors = self._engine.features.get("item")
        if vectors is None:
            raise ConfigError(f"{self._engine.path}: the store has no item embeddings (it was rebuilt with --no-embed)")
        return vectors

    def search_items(self, text: str, scene: str | None = None, k: int = 10) -> pd.DataFrame:
        """The ``k`` items whose text embedding is nearest to ``text`` (cosine), optionally within ``scene``.

        Exact: one matrix product over all (normalised) item vectors. Columns ``item_id``, ``scene``, ``title``,
        ``score``, best first; ties go to the lower item index.
        """
        check_k(k)
        if not text or not text.strip():
            raise ValueError("search text is empty")
        engine = self._engine
        engine._check_scene(scene)
        vectors = self._item_vectors()
        query = engine.encoder.encode([text])[0]
        items = self.items()
        scores = vectors @ query
        candidates = np.flatnonzero(items["scene"].to_numpy() == scene) if scene is not None else None
        top = top_positions(scores, k, candidates)
        if len(top) == 0:
            return pd.DataFrame(columns=["item_id", "scene", "title", "score"])
        out = items.iloc[top][["item_id", "scene", "title"]].reset_index(drop=True)
        out["score"] = scores[top].astype(float)
        return out

    def classify_scenes(
        self,
        *,
        min_confidence: float = 0.8,
        test_fraction: float = 0.2,
        seed: int = 0,
        write: bool = True,
    ) -> SceneClassification:
        """Learn the scenes of items from their text embedding and attributes, and give a scene to items that have
        none.

        A classifier (:class:`scenerec.llm.scenes.SceneClassifier`) is evaluated on a held-out ``test_fraction`` of
        the items whose scene is known, then fitted on all of them and applied to the items without a scene.
        Predictions with a confidence of at least ``min_confidence`` are assigned (and, with ``write``, stored:
        ``scene``, ``scene_confidence`` and an ``IN_SCENE`` link; open the engine with ``read_only=False``); the
        others are returned unassigned.
        """
        from scenerec.llm.scenes import SceneClassifier, assign_scenes, evaluate, item_features

        engine = self._engine
        if write:
            engine._require_writable("assign scenes, or pass write=False")
        vectors = self._item_vectors()
        items = self.items()
        X = item_features(vectors, items["attributes"].astype(str).tolist())
        known = items["scene"].to_numpy() != ""
        scenes = items.loc[known, "scene"].astype(str).tolist()
        report = evaluate(X[known], scenes, test_fraction=test_fraction, seed=seed)
        clf = SceneClassifier(seed=seed).fit(X[known], scenes)
        unknown = ~known
        assignments = assign_scenes(
            clf, X[unknown], items.loc[unknown, "item_id"].astype(str).tolist(), min_confidence=min_confidence
        )
        assignments.insert(2, "title", items.loc[unknown, "title"].to_numpy())
        written = 0
        if write and assignments["assigned"].any():
            with engine._writing("classify-scenes") as (_, graph):
                written = graph.assign_item_scenes(assignments[assignments["assigned"]])
        return SceneClassification(report=report, assignments=assignments, written=written)
