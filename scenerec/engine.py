"""The public API over a built store: :class:`Engine`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from scenerec.config import EmbedConfig
from scenerec.errors import ConfigError, StoreError, UnknownIdError
from scenerec.ids import IdMap
from scenerec.kg import GraphStore, load_features, load_idmap, open_store, read_manifest
from scenerec.llm import DEFAULT_MODEL, TextEncoder


@dataclass
class SceneClassification:
    """Result of :meth:`Engine.classify_scenes`: held-out quality, and one row per item that had no scene
    (``id``, ``scene``, ``title``, ``confidence``, ``assigned``)."""

    report: Any  # scenerec.llm.scenes.SceneReport
    assignments: pd.DataFrame
    written: int


class Engine:
    """A built store opened for use: queries, semantic search (more to come: fit, recommend, explain).

    >>> with Engine.open("demo-store") as engine:                 # doctest: +SKIP
    ...     engine.search_items("blue gel pens", scene="office", k=5)
    """

    def __init__(
        self,
        path: Path,
        store: GraphStore,
        manifest: dict[str, Any],
        idmap: IdMap,
        features: dict[str, np.ndarray],
        encoder: TextEncoder | None = None,
    ) -> None:
        self.path = path
        self.store = store
        self.manifest = manifest
        self.idmap = idmap
        self.features = features
        self._encoder = encoder
        self._items: pd.DataFrame | None = None

    @classmethod
    def open(cls, store: str | Path, *, encoder: TextEncoder | None = None, read_only: bool = True) -> Engine:
        """Open the live generation of the store folder ``store`` (read-only unless asked otherwise)."""
        path = Path(store)
        manifest = read_manifest(path)
        graph = open_store(path, read_only=read_only)
        return cls(path, graph, manifest, load_idmap(path), load_features(path), encoder)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---------------------------------------------------------------- text
    @property
    def encoder(self) -> TextEncoder:
        """The text encoder the store was embedded with (loaded on first use)."""
        info = self.manifest.get("features") or {}
        if not info:
            raise ConfigError(f"{self.path}: the store has no text embeddings (it was rebuilt with --no-embed)")
        if self._encoder is None:
            from scenerec.pipeline import make_encoder

            model = info.get("model")
            self._encoder = make_encoder(EmbedConfig(model=None if model == DEFAULT_MODEL else model))
        if self._encoder.identity != info.get("identity"):
            raise ConfigError(
                f"{self.path} was embedded with {info.get('identity')!r}, not with {self._encoder.identity!r}; "
                "search with that model or rebuild the store"
            )
        return self._encoder

    def items(self) -> pd.DataFrame:
        """Items in id-map order: ``item_id``, ``scene``, ``title``."""
        if self._items is None:
            df = self.store.query(
                "MATCH (i:Item) RETURN i.id AS item_id, i.scene AS scene, i.title AS title, i.attributes AS attributes"
            )
            order = self.idmap.indices("item", df["item_id"].astype(str))
            df = df.iloc[np.argsort(order)].reset_index(drop=True)
            if len(df) != self.idmap.size("item"):
                raise StoreError(f"{self.path}: the graph holds {len(df)} items, the id map {self.idmap.size('item')}")
            self._items = df.fillna({"scene": "", "title": "", "attributes": ""})
        return self._items

    def _check_scene(self, scene: str | None) -> None:
        if scene is not None and ("scene", scene) not in self.idmap:
            raise UnknownIdError("scene", scene, hint=f"known scenes: {', '.join(self.idmap.ids('scene'))}")

    def search_items(self, text: str, scene: str | None = None, k: int = 10) -> pd.DataFrame:
        """The ``k`` items whose text embedding is nearest to ``text`` (cosine), optionally within ``scene``.

        Exact: one matrix product over all (normalised) item vectors. Columns ``item_id``, ``scene``, ``title``,
        ``score``, best first.
        """
        if not isinstance(k, int) or k < 1:
            raise ValueError("k must be a positive integer")
        if not text or not text.strip():
            raise ValueError("search text is empty")
        self._check_scene(scene)
        vectors = self.features.get("item")
        if vectors is None:
            raise ConfigError(f"{self.path}: the store has no item embeddings (it was rebuilt with --no-embed)")
        query = self.encoder.encode([text])[0]
        items = self.items()
        scores = vectors @ query
        candidates = np.flatnonzero(items["scene"].to_numpy() == scene) if scene is not None else np.arange(len(scores))
        k = min(k, len(candidates))
        if k == 0:
            return pd.DataFrame(columns=["item_id", "scene", "title", "score"])
        part = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        top = part[np.lexsort((part, -scores[part]))]
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

        vectors = self.features.get("item")
        if vectors is None:
            raise ConfigError(f"{self.path}: the store has no item embeddings (it was rebuilt with --no-embed)")
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
            written = self.store.assign_item_scenes(assignments[assignments["assigned"]])
            self._items = None
        return SceneClassification(report=report, assignments=assignments, written=written)
