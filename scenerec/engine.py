"""The public API over a built store: :class:`Engine`, a facade over services.

The engine opens and closes a store, serves one of its generations and runs the staged writes; the work is done by
the services it exposes as properties, each holding the engine: :attr:`Engine.trainer` (:mod:`scenerec.trainer`:
fit, load, evaluate), :attr:`Engine.ranker` (:mod:`scenerec.ranker`: recommendations, similar items, explanations,
write-back), :attr:`Engine.aligner` (:mod:`scenerec.aligner`) and :attr:`Engine.search` (:mod:`scenerec.search`).
Its methods of the same names (``engine.fit(...)``, ``engine.recommend(...)``, ...) delegate to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scenerec.aligner import Aligner, SceneAlignment
from scenerec.config import AnnConfig
from scenerec.errors import ConfigError, GenerationChangedError, StoreError, StoreFileError, UnknownIdError
from scenerec.ids import NODE_KINDS, IdMap
from scenerec.kg import (
    EdgeIndex,
    GraphStore,
    LadybugStore,
    current_generation,
    load_features,
    load_idmap,
    open_store,
    read_manifest,
)
from scenerec.kg.lock import StagedGeneration, StoreLock
from scenerec.kg.rebuild import GRAPH_FILE
from scenerec.llm import TextEncoder
from scenerec.ranker import Ranker
from scenerec.ranking import check_k
from scenerec.registry import DEFAULT_RECOMMENDER, MODELS, ModelSpec
from scenerec.search import SceneClassification, Search
from scenerec.storefiles import rebuild_hint
from scenerec.trained import MODEL_DIR, SPLITS_FILE, TrainedModel
from scenerec.trainer import Trainer

if TYPE_CHECKING:
    from scenerec.gnn import FitResult, TrainConfig
    from scenerec.kg import UpdateReport
    from scenerec.loaders import LoadOptions

__all__ = [
    "CROSSSCENE_KW",
    "DEFAULT_RECOMMENDER",
    "MODELS",
    "MODEL_DIR",
    "MODEL_OPTIONS",
    "SPLITS_FILE",
    "Engine",
    "ModelSpec",
    "SceneAlignment",
    "SceneClassification",
    "check_model_options",
]

#: Former names, kept for callers: ``crossscene``'s preset and each model's options (:data:`scenerec.registry.MODELS`).
CROSSSCENE_KW = MODELS["crossscene"].preset
MODEL_OPTIONS = {name: dict(spec.options) for name, spec in MODELS.items() if spec.options}


def check_model_options(model: str, options: dict[str, Any] | None) -> None:
    """:class:`ConfigError` naming an unknown model, or the first of ``options`` the model does not take or whose
    value is of the wrong type or out of range (:meth:`scenerec.registry.ModelSpec.check_options`)."""
    MODELS[model].check_options(options)


class Engine:
    """A built store opened for use: queries, semantic search, recommenders (fit, recommend, evaluate).

    >>> with Engine.open("demo-store") as engine:                 # doctest: +SKIP
    ...     engine.search_items("blue gel pens", scene="office", k=5)
    ...     engine.fit("lightgcn")
    ...     engine.recommend("A1B2C3", scene="office", k=10)

    An engine serves the generation of the store that was live when it was opened (:attr:`generation`), also while
    other processes write the store. Its writing methods (``fit``, ``write_back``, ``update``, ``align`` and
    ``classify_scenes`` with writing) need ``Engine.open(path, read_only=False)``; each takes the store's writer lock
    (:class:`scenerec.kg.lock.StoreLock`, waiting ``wait`` seconds for another writer), writes a copy of the
    generation and makes the copy live only when all of its work is done; the engine then serves the new one. A
    writing method refuses (:class:`GenerationChangedError`) when another writer switched the store since the engine
    read it, so that nothing computed on an old graph is saved into a newer one.

    The work is done by the services :attr:`trainer`, :attr:`ranker`, :attr:`aligner` and :attr:`search`; the
    served model is one :class:`~scenerec.trained.TrainedModel` (:attr:`model`).
    """

    def __init__(
        self,
        path: Path,
        store: GraphStore,
        manifest: dict[str, Any],
        idmap: IdMap,
        features: dict[str, np.ndarray],
        encoder: TextEncoder | None = None,
        *,
        generation: Path | None = None,
        writable: bool = False,
        wait: float = 0.0,
        ann: AnnConfig | bool | None = None,
    ) -> None:
        self.path = path
        self.store = store
        self.manifest = manifest
        self.idmap = idmap
        self.features = features
        self._encoder = encoder
        self._gen = generation if generation is not None else current_generation(path)
        self._writable = writable
        self._unsafe = bool(getattr(store, "unsafe", False))  # kept when the engine moves to a new generation
        self.wait = wait
        self._trained: TrainedModel | None = None  # the served model, once trained or loaded (Trainer.load)
        self._ann = AnnConfig.of(ann)

    @classmethod
    def open(
        cls,
        store: str | Path,
        *,
        encoder: TextEncoder | None = None,
        read_only: bool = True,
        wait: float = 0.0,
        unsafe: bool = False,
        ann: AnnConfig | bool | None = None,
    ) -> Engine:
        """Open the live generation of the store folder ``store``.

        ``read_only=False`` allows the writing methods; ``wait``: seconds they wait for another writer of the store
        (0: fail at once, naming it). The graph itself is always opened for reading: writes go to a new generation.
        ``engine.store.query`` runs only graph reads unless ``unsafe=True`` (see :meth:`GraphStore.query`).
        ``ann``: the approximate nearest-neighbour index of recommendations (:class:`~scenerec.config.AnnConfig`;
        ``None``: its defaults, an index for scenes of more than 100,000 items when faiss is installed; ``True`` /
        ``False``: for every scene / none), also settable later as :attr:`ann`.
        """
        path = Path(store)
        for attempt in range(3):
            gen = current_generation(path)
            try:
                manifest = read_manifest(path, generation=gen.name)
                idmap, features = load_idmap(path, generation=gen.name), load_features(path, generation=gen.name)
                _check_features(path, manifest, idmap, features)
                graph = open_store(path, read_only=True, generation=gen.name, unsafe=unsafe)
            except (StoreError, OSError):
                if gen.is_dir() or attempt == 2:
                    raise
                continue  # the generation was pruned by a writer between reading CURRENT and opening it
            break
        return cls(
            path, graph, manifest, idmap, features, encoder, generation=gen, writable=not read_only, wait=wait, ann=ann
        )

    @property
    def ann(self) -> AnnConfig:
        """The settings of the approximate nearest-neighbour index of recommendations (:mod:`scenerec.ann`); set
        an :class:`~scenerec.config.AnnConfig`, ``True``, ``False`` or ``None`` (the defaults). A scene's index is
        built on its first recommendation (or :meth:`Ranker.ann_index <scenerec.ranker.Ranker.ann_index>`), again
        when the served model or these settings change."""
        return self._ann

    @ann.setter
    def ann(self, value: AnnConfig | bool | None) -> None:
        self._ann = AnnConfig.of(value)

    @property
    def generation(self) -> str:
        """The name of the store generation this engine serves (``gen-<time>-<pid>``)."""
        return self._gen.name

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---------------------------------------------------------------- services
    @cached_property
    def trainer(self) -> Trainer:
        """Training, the served model's lifecycle and evaluation (:class:`scenerec.trainer.Trainer`)."""
        return Trainer(self)

    @cached_property
    def ranker(self) -> Ranker:
        """Recommendations, similar items, explanations and the write-back (:class:`scenerec.ranker.Ranker`)."""
        return Ranker(self)

    @cached_property
    def aligner(self) -> Aligner:
        """Entity alignment between two scenes (:class:`scenerec.aligner.Aligner`)."""
        return Aligner(self)

    @cached_property
    def search(self) -> Search:
        """The item table, text search and scene classification (:class:`scenerec.search.Search`)."""
        return Search(self)

    @property
    def model(self) -> TrainedModel:
        """The served model (:meth:`Trainer.load <scenerec.trainer.Trainer.load>`: trained here, else loaded)."""
        return self.trainer.load()

    @property
    def encoder(self) -> TextEncoder:
        """The text encoder the store was embedded with (loaded on first use)."""
        info = self.manifest.get("features") or {}
        if not info:
            raise ConfigError(f"{self.path}: the store has no text embeddings (it was rebuilt with --no-embed)")
        if self._encoder is None:
            from scenerec.pipeline import make_encoder, store_embed_config

            # a model named by the store is loaded from a local folder or cache only, never downloaded: pass
            # Engine.open(..., encoder=HFTextEncoder(name)) to fetch it on purpose
            self._encoder = make_encoder(store_embed_config(info))
        if self._encoder.identity != info.get("identity"):
            raise ConfigError(
                f"{self.path} was embedded with {info.get('identity')!r}, not with {self._encoder.identity!r}; "
                "search with that model or rebuild the store"
            )
        return self._encoder

    @property
    def model_dir(self) -> Path:
        """Where the served generation keeps its trained recommender: ``<generation>/model``."""
        return self._gen / MODEL_DIR

    @property
    def last_write_back(self) -> dict[str, Any] | None:
        """What the write-back of the last :meth:`fit` wrote (:attr:`Trainer.last_write_back
        <scenerec.trainer.Trainer.last_write_back>`)."""
        return self.trainer.last_write_back

    # ---------------------------------------------------------------- delegations
    def items(self) -> pd.DataFrame:
        """Items in id-map order: :meth:`Search.items <scenerec.search.Search.items>`."""
        return self.search.items()

    def search_items(self, text: str, scene: str | None = None, k: int = 10) -> pd.DataFrame:
        """:meth:`Search.search_items <scenerec.search.Search.search_items>`."""
        return self.search.search_items(text, scene, k)

    def classify_scenes(
        self, *, min_confidence: float = 0.8, test_fraction: float = 0.2, seed: int = 0, write: bool = True
    ) -> SceneClassification:
        """:meth:`Search.classify_scenes <scenerec.search.Search.classify_scenes>`."""
        return self.search.classify_scenes(
            min_confidence=min_confidence, test_fraction=test_fraction, seed=seed, write=write
        )

    def fit(
        self,
        model: str = DEFAULT_RECOMMENDER,
        *,
        config: TrainConfig | None = None,
        seed: int | None = None,
        epochs: int | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        scenes: Sequence[str] | None = None,
        alignment: bool | None = None,
        options: dict[str, Any] | None = None,
        write_back: int | None = None,
    ) -> FitResult:
        """Train and save the recommender ``model``: :meth:`Trainer.fit <scenerec.trainer.Trainer.fit>`."""
        return self.trainer.fit(
            model,
            config=config,
            seed=seed,
            epochs=epochs,
            progress=progress,
            scenes=scenes,
            alignment=alignment,
            options=options,
            write_back=write_back,
        )

    def evaluate(self, scene: str, ks: Sequence[int] = (10, 20)) -> dict[str, Any]:
        """:meth:`Trainer.evaluate <scenerec.trainer.Trainer.evaluate>`."""
        return self.trainer.evaluate(scene, ks)

    def recommend(
        self, user_id: str, scene: str, k: int = 10, *, explain: bool = False, max_paths: int = 3
    ) -> pd.DataFrame:
        """:meth:`Ranker.recommend <scenerec.ranker.Ranker.recommend>`."""
        return self.ranker.recommend(user_id, scene, k, explain=explain, max_paths=max_paths)

    def recommend_many(self, user_ids: Sequence[str], scene: str, k: int = 10, batch_size: int = 1024) -> pd.DataFrame:
        """:meth:`Ranker.recommend_many <scenerec.ranker.Ranker.recommend_many>`."""
        return self.ranker.recommend_many(user_ids, scene, k, batch_size)

    def explain(self, user_id: str, item_id: str, max_paths: int = 3) -> list[dict[str, Any]]:
        """:meth:`Ranker.explain <scenerec.ranker.Ranker.explain>`."""
        return self.ranker.explain(user_id, item_id, max_paths)

    def recommend_for_items(self, item_ids: Sequence[str], scene: str, k: int = 10) -> pd.DataFrame:
        """:meth:`Ranker.recommend_for_items <scenerec.ranker.Ranker.recommend_for_items>`."""
        return self.ranker.recommend_for_items(item_ids, scene, k)

    def new_item_audience(
        self,
        title: str,
        scene: str,
        *,
        description: str = "",
        attributes: dict[str, Any] | None = None,
        k: int = 10,
    ) -> pd.DataFrame:
        """:meth:`Ranker.new_item_audience <scenerec.ranker.Ranker.new_item_audience>`."""
        return self.ranker.new_item_audience(title, scene, description=description, attributes=attributes, k=k)

    def item_vectors(self) -> tuple[np.ndarray, str]:
        """:meth:`Ranker.item_vectors <scenerec.ranker.Ranker.item_vectors>`."""
        return self.ranker.item_vectors()

    def similar_items(self, item_id: str, k: int = 10, scene: str | None = None) -> pd.DataFrame:
        """:meth:`Ranker.similar_items <scenerec.ranker.Ranker.similar_items>`."""
        return self.ranker.similar_items(item_id, k, scene)

    def write_back(self, k: int = 10, scenes: Sequence[str] | None = None, batch_size: int = 1024) -> dict[str, Any]:
        """:meth:`Ranker.write_back <scenerec.ranker.Ranker.write_back>`."""
        return self.ranker.write_back(k, scenes, batch_size)

    def align(
        self,
        left: str,
        right: str,
        *,
        seed_fraction: float = 0.3,
        seed: int = 0,
        threshold: float = 0.5,
        method: str = "gcn",
        write: bool = True,
    ) -> SceneAlignment:
        """:meth:`Aligner.align <scenerec.aligner.Aligner.align>`."""
        return self.aligner.align(
            left, right, seed_fraction=seed_fraction, seed=seed, threshold=threshold, method=method, write=write
        )

    # ---------------------------------------------------------------- incremental update
    def update(
        self,
        dataset: str | Path,
        *,
        format: str | None = None,
        options: LoadOptions | None = None,
        k: int = 10,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Add ``dataset``'s new users, items, interactions and facts to the store without a rebuild or a
        retraining (:func:`scenerec.pipeline.update`: only new texts are embedded), then serve them with the trained
        model (:class:`scenerec.gnn.ExtendedRecommender`: new items from their text, new users from their
        histories) and refresh the ``RECOMMENDED`` edges (top ``k`` per scene) and ``gnn_embedding`` vectors of the
        affected users: the new ones and those with new interactions (:meth:`Ranker.refresh
        <scenerec.ranker.Ranker.refresh>`). The engine then serves the new generation.

        Needs ``Engine.open(path, read_only=False)``. The refresh is done in the new generation before it goes live
        (:func:`scenerec.kg.update` ``finish``), so readers see the new graph with its refreshed recommendations;
        a failed or killed update leaves the old generation live. Returns the update's
        :meth:`UpdateReport.summary` plus ``refreshed_users``, ``recommended`` (edges written) and ``model``
        (``None`` when no model is trained: nothing is refreshed).
        """
        from scenerec.pipeline import update as update_store

        check_k(k)
        self._require_writable("update it")
        encoder = self.encoder if self.features else None
        refreshed: dict[str, Any] = {"refreshed_users": 0, "recommended": 0, "model": None}

        def finish(folder: Path, report: UpdateReport) -> None:
            if not (folder / MODEL_DIR / SPLITS_FILE).is_file():
                return
            graph = self._graph_of(folder)
            try:
                self._serve(folder, graph=graph)
                refreshed.update(self.ranker.refresh(report, k))
            finally:
                graph.close()  # before the folder is renamed into a generation

        with StoreLock(self.path, "update", wait=self.wait):
            self.store.close()
            try:
                report = update_store(
                    dataset,
                    self.path,
                    format=format,
                    options=options,
                    embed=None,
                    encoder=encoder,
                    progress=progress,
                    wait=self.wait,
                    finish=finish,
                )
            finally:
                self._serve(current_generation(self.path))  # the new generation, or the old one after a failure
        out = report.summary()
        out.update(refreshed)
        return out

    # ---------------------------------------------------------------- the served generation
    def reopen(self, *, keep_model: bool = False) -> None:
        """Serve the store's live generation now (e.g. one another process made live). The loaded model is kept
        only with ``keep_model``, for a generation with the same nodes (a copy written by a writer that added
        none); otherwise the new generation's model is loaded on first use."""
        self._serve(current_generation(self.path), keep_model=keep_model)

    def _serve(self, folder: Path, *, keep_model: bool = False, graph: GraphStore | None = None) -> None:
        """Serve the generation folder ``folder`` (its graph open for reading, or ``graph``); the loaded model is
        kept only with ``keep_model`` (same nodes)."""
        if graph is not self.store:
            self.store.close()
        name = folder.name
        self.store = (
            graph if graph is not None else open_store(self.path, read_only=True, generation=name, unsafe=self._unsafe)
        )
        self._gen = folder
        self.manifest = read_manifest(self.path, generation=name)
        if keep_model:
            return
        self.idmap = load_idmap(self.path, generation=name)
        self.features = load_features(self.path, generation=name)
        self._trained = None

    def _require_writable(self, what: str) -> None:
        if not self._writable:
            raise ConfigError(
                f"{self.path}: the store is open read-only; open it with Engine.open(path, read_only=False) to {what}"
            )

    def _graph_of(self, folder: Path) -> GraphStore:
        """The graph of the generation folder ``folder``, open for writing (Neo4j: the server, :attr:`store`)."""
        if self.manifest.get("backend", "ladybug") == "ladybug":
            return LadybugStore(folder / GRAPH_FILE)
        return self.store

    @contextmanager
    def _writing(self, command: str) -> Iterator[tuple[Path, GraphStore]]:
        """Take the store's writer lock, check that the store still serves this engine's generation, and yield a
        copy of it (folder, graph open for writing) that becomes the live generation when the block succeeds; the
        engine then serves it. On an exception the copy is dropped and nothing changed."""
        with StoreLock(self.path, command, wait=self.wait):
            live = current_generation(self.path)
            if live.name != self._gen.name:
                raise GenerationChangedError(
                    f"{self.path}: another writer made generation {live.name} live since this engine read "
                    f"{self._gen.name}; nothing was written (open the store again and repeat the {command})"
                )
            with StagedGeneration(self.path, base=self._gen) as staged:
                graph = self._graph_of(staged.path)
                try:
                    yield staged.path, graph
                finally:
                    if graph is not self.store:
                        graph.close()
            self._serve(self.path / staged.name, keep_model=True)

    def _edge_index(self) -> EdgeIndex:
        """The store's typed edges, indexed by the store's id map (checked to cover every node)."""
        index = self.store.edge_index(IdMap.from_dict(self.idmap.to_dict()))
        if index.idmap != self.idmap:
            raise StoreError(f"{self.path}: the graph holds nodes that its id map does not; rebuild the store")
        return index

    def _scene_index(self, scene: str) -> int:
        """The index of scene ``scene``; :class:`UnknownIdError` listing the known scenes."""
        if ("scene", scene) not in self.idmap:
            raise UnknownIdError("scene", scene, hint=f"known scenes: {', '.join(self.idmap.ids('scene'))}")
        return self.idmap.index("scene", scene)

    def _check_scene(self, scene: str | None) -> None:
        if scene is not None:
            self._scene_index(scene)


def _check_features(path: Path, manifest: dict[str, Any], idmap: IdMap, features: dict[str, np.ndarray]) -> None:
    """``features.npz`` is there when the manifest lists text embeddings, with one finite row per node of the id
    map; a :class:`StoreFileError` naming it otherwise (never vectors silently shifted onto other nodes)."""
    from scenerec.kg.rebuild import FEATURES

    file = current_generation(path) / FEATURES
    if manifest.get("features") and not features:
        raise StoreFileError(file, "missing (the manifest lists text embeddings)", rebuild_hint(path))
    for kind, x in features.items():
        if kind not in NODE_KINDS:
            raise StoreFileError(file, f"holds vectors of an unknown node kind {kind!r}", rebuild_hint(path))
        if x.ndim != 2 or x.shape[0] != idmap.size(kind) or not np.issubdtype(x.dtype, np.floating):
            raise StoreFileError(
                file,
                f"{kind} vectors have shape {x.shape} ({x.dtype}), expected ({idmap.size(kind)}, dim) floats",
                rebuild_hint(path),
            )
