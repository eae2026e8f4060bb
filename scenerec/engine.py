"""The public API over a built store: :class:`Engine`."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scenerec.config import EmbedConfig
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
from scenerec.llm import DEFAULT_MODEL, TextEncoder
from scenerec.ranking import check_k, top_k, top_positions
from scenerec.storefiles import fit_hint, read_npz_file, rebuild_hint

if TYPE_CHECKING:
    import torch

    from scenerec.gnn import CSR, FitResult, GraphInputs, Recommender, TrainConfig
    from scenerec.kg import UpdateReport
    from scenerec.loaders import LoadOptions

#: Folder of the trained recommender inside the live generation; :data:`SPLITS_FILE` inside it holds the
#: train/valid/test pairs and the item -> scene map the model was trained with.
MODEL_DIR = "model"
SPLITS_FILE = "splits.npz"


def _adjacency(train: CSR) -> torch.Tensor:
    """The normalised user-item adjacency of the training pairs (for LightGCN)."""
    import torch

    from scenerec.gnn import normalized_adjacency

    edge_index = torch.from_numpy(np.stack([train.rows(), train.indices]).astype(np.int64))
    return normalized_adjacency(edge_index, train.shape[0], train.shape[1])


def _most_popular(inputs: GraphInputs) -> Recommender:
    import torch

    from scenerec.gnn import MostPopular

    train = inputs.train
    counts = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)
    return MostPopular(torch.from_numpy(counts), num_users=train.shape[0])


def _bprmf(inputs: GraphInputs) -> Recommender:
    from scenerec.gnn import BPRMF

    return BPRMF(inputs.num_users, inputs.num_items, dim=64)


def _lightgcn(inputs: GraphInputs) -> Recommender:
    from scenerec.gnn import LightGCN

    return LightGCN(inputs.num_users, inputs.num_items, _adjacency(inputs.train), dim=64, num_layers=2)


def _scenegnn(inputs: GraphInputs, **options: Any) -> Recommender:
    from scenerec.gnn import SceneGNN

    return SceneGNN(inputs, **options)


def _crossscene(inputs: GraphInputs, **options: Any) -> Recommender:
    from scenerec.transfer import CrossSceneGNN

    return CrossSceneGNN(inputs, **{**CROSSSCENE_KW, **options})


#: :class:`~scenerec.transfer.CrossSceneGNN`'s settings for ``fit("crossscene")``, the ones
#: ``benchmarks/transfer.py`` measures; the item-item channel is item kNN across scenes (``--item-item knn`` there),
#: so that a history in one scene scores another's items (weighted per scene on the validation split).
CROSSSCENE_KW: dict[str, Any] = {
    "gate": True,
    "view_dropout": 0.5,
    "item_bias": True,
    "item_ids": "all",
    "item_item_kind": "knn",
}


#: The ``options`` :meth:`Engine.fit` accepts per model: name -> (type, accepts(value), the accepted range in words).
_OptionSpec = tuple[type, Callable[[Any], bool], str]
_BOOL: _OptionSpec = (bool, lambda v: True, "true or false")


def _choice(*names: str) -> _OptionSpec:
    return (str, lambda v: v in names, "one of " + ", ".join(names))


_SCENEGNN_OPTIONS: dict[str, _OptionSpec] = {
    "dim": (int, lambda v: v >= 1, "an integer >= 1"),
    "num_layers": (int, lambda v: v >= 0, "an integer >= 0"),
    "temperature": (float, lambda v: v > 0, "a number > 0"),
    "item_ids": _choice("all", "missing", "none"),
    "use_text": _BOOL,
    "use_kg": _BOOL,
    "scene_film": _BOOL,
    "item_item": _BOOL,
    "item_item_nnz": (int, lambda v: v >= 0, "an integer >= 0"),
    "kg_min_items": (int, lambda v: v >= 1, "an integer >= 1"),
    "item_item_kind": _choice("ease", "knn"),
}
MODEL_OPTIONS: dict[str, dict[str, _OptionSpec]] = {
    "scenegnn": _SCENEGNN_OPTIONS,
    "crossscene": {
        **_SCENEGNN_OPTIONS,
        "gate": _BOOL,
        "view_dropout": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "item_bias": _BOOL,
        "cold_dropout": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    },
}


def _of_type(value: Any, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def check_model_options(model: str, options: dict[str, Any] | None) -> None:
    """:class:`ConfigError` naming the first option of ``fit(model, options=...)`` that the model does not take or
    whose value is of the wrong type or out of range (with the accepted range)."""
    if not options:
        return
    accepted = MODEL_OPTIONS.get(model)
    if accepted is None:
        raise ConfigError(f"model {model!r} takes no options (got {', '.join(options)})")
    for key, value in options.items():
        if key not in accepted:
            raise ConfigError(f"model {model!r} has no option {key!r}; its options: {', '.join(sorted(accepted))}")
        kind, accepts, wanted = accepted[key]
        if not (_of_type(value, kind) and accepts(value)):
            raise ConfigError(f"model option {key}={json.dumps(value)}: expected {wanted}")


def _bpr_config() -> TrainConfig:
    from scenerec.gnn import TrainConfig

    return TrainConfig()


def _softmax_config() -> TrainConfig:
    from scenerec.gnn import TrainConfig

    return TrainConfig(loss="softmax", lr=1e-2, batch_size=256, weight_decay=0.0, patience=20)


def _run_label(
    model: str,
    scenes: Sequence[str] | None,
    alignment: bool | None,
    default_alignment: bool,
    options: dict[str, Any] | None,
) -> str:
    """A readable name of a trained variant: the model name, plus what differs from its defaults, e.g.
    ``crossscene [scenes=office, gate=False, alignment=off]`` (the run log's and the report's ``label``)."""
    parts = []
    if scenes is not None and not isinstance(scenes, str):
        parts.append("scenes=" + "+".join(map(str, scenes)))
    parts += [f"{key}={value}" for key, value in sorted((options or {}).items())]
    if alignment is not None and alignment != default_alignment:
        parts.append(f"alignment={'on' if alignment else 'off'}")
    return f"{model} [{', '.join(parts)}]" if parts else model


@dataclass(frozen=True)
class ModelSpec:
    """A recommender :meth:`Engine.fit` can train: ``factory(inputs, **options) -> untrained model`` (``options``:
    constructor arguments, where the model takes any) and its default :class:`~scenerec.gnn.TrainConfig`
    (``config()``)."""

    factory: Callable[..., Recommender]
    config: Callable[[], TrainConfig]
    description: str
    alignment: bool = False
    """Whether the model follows the stored ``SAME_AS`` item links by default (``fit(alignment=None)``)."""


#: The recommenders :meth:`Engine.fit` can train, by name.
MODELS: dict[str, ModelSpec] = {
    "scenegnn": ModelSpec(
        _scenegnn,
        _softmax_config,
        "scenerec's main model: text-initialised, relation-aware, scene-adapted GNN + item-item channel",
    ),
    "crossscene": ModelSpec(
        _crossscene,
        _softmax_config,
        "cross-scene transfer: SceneGNN on the joint graph + SAME_AS item links + the per-scene gate",
        alignment=True,
    ),
    "lightgcn": ModelSpec(_lightgcn, _bpr_config, "LightGCN, 2 layers, 64-d, BPR"),
    "bpr": ModelSpec(_bprmf, _bpr_config, "BPR matrix factorisation, 64-d"),
    "pop": ModelSpec(_most_popular, _bpr_config, "most popular items of the scene (no training)"),
}

#: The model :meth:`Engine.fit` trains when none is named.
DEFAULT_RECOMMENDER = "scenegnn"


@dataclass
class SceneClassification:
    """Result of :meth:`Engine.classify_scenes`: held-out quality, and one row per item that had no scene
    (``id``, ``scene``, ``title``, ``confidence``, ``assigned``)."""

    report: Any  # scenerec.llm.scenes.SceneReport
    assignments: pd.DataFrame
    written: int


@dataclass
class SceneAlignment:
    """Result of :meth:`Engine.align`: ``summary`` (JSON-serialisable: counts, metrics on the held-out gold pairs,
    seconds), and in node ids ``pairs`` (accepted pairs, the seeds first with method ``seed``), ``review`` (mutual
    nearest pairs below the threshold, best first), ``seeds`` and ``held_out`` (the gold pairs given to the aligner
    and those it was measured on). Pair frames have ``left``, ``right``, ``kind_left``, ``kind_right``,
    ``name_left``, ``name_right``, ``score``, ``csls``, ``method``. ``result["hits@1"]`` reads the summary."""

    summary: dict[str, Any]
    pairs: pd.DataFrame
    review: pd.DataFrame
    seeds: pd.DataFrame
    held_out: pd.DataFrame

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def __contains__(self, key: object) -> bool:
        return key in self.summary


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
        self.last_write_back: dict[str, Any] | None = None
        self._items: pd.DataFrame | None = None
        self._model: Recommender | None = None
        self._model_name = ""
        self._model_label = ""
        self._splits: dict[str, CSR] = {}
        self._item_scene = np.zeros(0, dtype=np.int64)
        self._embeddings: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def open(
        cls,
        store: str | Path,
        *,
        encoder: TextEncoder | None = None,
        read_only: bool = True,
        wait: float = 0.0,
        unsafe: bool = False,
    ) -> Engine:
        """Open the live generation of the store folder ``store``.

        ``read_only=False`` allows the writing methods; ``wait``: seconds they wait for another writer of the store
        (0: fail at once, naming it). The graph itself is always opened for reading: writes go to a new generation.
        ``engine.store.query`` runs only graph reads unless ``unsafe=True`` (see :meth:`GraphStore.query`).
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
        return cls(path, graph, manifest, idmap, features, encoder, generation=gen, writable=not read_only, wait=wait)

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
            # a model named by the store is loaded from a local folder or cache only, never downloaded: pass
            # Engine.open(..., encoder=HFTextEncoder(name)) to fetch it on purpose
            self._encoder = make_encoder(EmbedConfig(model=None if model == DEFAULT_MODEL else model, download=False))
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
        check_k(k)
        if not text or not text.strip():
            raise ValueError("search text is empty")
        self._check_scene(scene)
        vectors = self.features.get("item")
        if vectors is None:
            raise ConfigError(f"{self.path}: the store has no item embeddings (it was rebuilt with --no-embed)")
        query = self.encoder.encode([text])[0]
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

        if write:
            self._require_writable("assign scenes, or pass write=False")
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
            with self._writing("classify-scenes") as (_, graph):
                written = graph.assign_item_scenes(assignments[assignments["assigned"]])
        return SceneClassification(report=report, assignments=assignments, written=written)

    # ---------------------------------------------------------------- recommenders
    @property
    def model_dir(self) -> Path:
        """Where the served generation keeps its trained recommender: ``<generation>/model``."""
        return self._gen / MODEL_DIR

    # ---------------------------------------------------------------- writing
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
        self._items = None
        if keep_model:
            return
        self.idmap = load_idmap(self.path, generation=name)
        self.features = load_features(self.path, generation=name)
        self._model = None
        self._model_name = ""
        self._splits = {}
        self._item_scene = np.zeros(0, dtype=np.int64)
        self._embeddings = None

    def _edge_index(self) -> EdgeIndex:
        """The store's typed edges, indexed by the store's id map (checked to cover every node)."""
        from scenerec.ids import IdMap

        index = self.store.edge_index(IdMap.from_dict(self.idmap.to_dict()))
        if index.idmap != self.idmap:
            raise StoreError(f"{self.path}: the graph holds nodes that its id map does not; rebuild the store")
        return index

    def _interaction_splits(self, seed: int | None) -> tuple[dict[str, CSR], EdgeIndex, bool]:
        """Train/valid/test :class:`CSR` of the stored interactions, the store's edges and whether the splits were
        assigned here (``random_per_user`` with ``seed``, default 2020, when any interaction has none)."""
        from scenerec.gnn import Interactions, random_per_user

        index = self._edge_index()
        edges = index.edges.get(("user", "INTERACTED", "item"))
        if edges is None or edges.empty:
            raise ConfigError(f"{self.path}: the store has no interactions to train on")
        users, items = self.idmap.ids("user"), self.idmap.ids("item")
        split = edges["split"].astype("string").fillna("") if "split" in edges else pd.Series("", index=edges.index)
        frame = pd.DataFrame(
            {
                "user": np.asarray(users, dtype=object)[edges["src"].to_numpy()],
                "item": np.asarray(items, dtype=object)[edges["dst"].to_numpy()],
                "split": split.to_numpy(dtype=object),
            }
        )
        assigned = bool((frame["split"] == "").any())
        if assigned:
            frame = random_per_user(frame, seed=2020 if seed is None else seed)
        return Interactions.from_frame(frame, self.idmap), index, assigned

    def _graph_inputs(
        self,
        index: EdgeIndex,
        train: CSR,
        links: tuple[np.ndarray, np.ndarray] | None = None,
        features: dict[str, np.ndarray] | None = None,
    ) -> GraphInputs:
        """The model inputs: training pairs, scenes, the stored text features (or ``features``) and the
        knowledge-graph facts, plus the item-item ``links`` (edges (2, L), weights (L,)) when given."""
        import torch

        from scenerec.gnn import GraphInputs, build_hetero

        feats = self.features if features is None else features
        inputs = GraphInputs.from_hetero(build_hetero(index, feats), train)
        if links is not None and links[0].shape[1]:
            inputs = replace(inputs, item_links=(torch.from_numpy(links[0]), torch.from_numpy(links[1])))
        return inputs

    @staticmethod
    def _item_links(index: EdgeIndex) -> tuple[np.ndarray, np.ndarray]:
        """The stored ``SAME_AS`` links between items as (edges (2, L) int64, weights (L,) float32): the link's
        score clipped to [0, 1], 1 where it has none (gold pairs)."""
        df = index.edges.get(("item", "SAME_AS", "item"))
        if df is None or df.empty:
            return np.zeros((2, 0), dtype=np.int64), np.zeros(0, dtype=np.float32)
        score = pd.to_numeric(df["score"], errors="coerce") if "score" in df else pd.Series(1.0, index=df.index)
        weight = score.fillna(1.0).clip(0.0, 1.0).to_numpy(np.float32)
        return np.stack([df["src"].to_numpy(np.int64), df["dst"].to_numpy(np.int64)]), weight

    def _set_model(self, name: str, model: Recommender, splits: dict[str, CSR], item_scene: np.ndarray) -> None:
        import torch

        model.eval()
        with torch.no_grad():
            user_emb, item_emb = model()
        self._model, self._model_name, self._splits, self._item_scene = model, name, splits, item_scene
        self._embeddings = (user_emb.detach(), item_emb.detach())

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
        """Train the recommender ``model`` (a name of :data:`MODELS`) on the store's interactions and save it.

        Transfer between scenes (the ablations of ``benchmarks/transfer.py``): ``scenes`` trains on the
        interactions of those scenes only (training and validation pairs; ``["office"]``: the target scene only);
        ``alignment`` makes propagation follow the stored ``SAME_AS`` item links (``scenerec align``; default: the
        model's :attr:`ModelSpec.alignment`, on for ``crossscene``; True with no stored link is an error);
        ``crossscene`` adds the per-scene gate to SceneGNN (:class:`scenerec.transfer.CrossSceneGNN`).
        ``options``: constructor arguments of ``scenegnn`` / ``crossscene`` (e.g. ``{"gate": False}``,
        ``{"use_kg": True, "dim": 64}``); :class:`ConfigError` names an unknown one.

        The splits stored on the interactions are used (``random_per_user`` over all of them when any has none);
        negatives come from the positive item's scene; early stopping watches validation NDCG. ``config``: the
        training configuration (default: the model's own, :attr:`ModelSpec.config`); ``seed`` and ``epochs``
        override it (``seed`` also seeds the split, when one is assigned). ``progress`` gets every epoch's record,
        then ``{"item_item": (done, total)}`` while the item-item channel is fitted.
        For ``scenegnn`` the item-item channel is fitted and its fusion weights chosen on the validation split
        afterwards (:func:`scenerec.gnn.tune_item_item`). The artifact (:func:`scenerec.gnn.save_artifact`, plus the
        splits) goes to the ``model`` folder of a new generation, a copy of the one the engine read, replacing any
        earlier model; with ``write_back=k`` the top ``k`` of every user are written there too (:meth:`write_back`).
        The new generation goes live only when all of it is written (the fit refuses with
        :class:`GenerationChangedError` when another writer changed the store during training), so readers never
        see the new model without its recommendations. The model stays
        loaded for :meth:`recommend`; :attr:`last_write_back` holds what the write-back wrote (``write_back`` needs
        ``Engine.open(path, read_only=False)``).
        """
        from scenerec.gnn import fit, save_artifact, tune_item_item

        if write_back is not None:
            if not isinstance(write_back, int) or write_back < 1:
                raise ValueError("write_back must be a positive integer (the k of the write-back) or None")
            self._require_writable("write back")
        spec = MODELS.get(model)
        if spec is None:
            raise ConfigError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")
        check_model_options(model, options)
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise ConfigError(f"epochs must be an integer >= 1, not {epochs!r} (an untrained model would be saved)")
        cfg = config if config is not None else spec.config()
        if seed is not None:
            cfg = replace(cfg, seed=seed)
        if epochs is not None:
            cfg = replace(cfg, epochs=epochs)
        splits, index, assigned = self._interaction_splits(cfg.seed)
        item_scene = index.item_scene
        label = _run_label(model, scenes, None if alignment is None else bool(alignment), spec.alignment, options)
        if scenes is not None:
            splits = self._restrict_to_scenes(splits, item_scene, scenes)
        use_links = spec.alignment if alignment is None else bool(alignment)
        links = self._item_links(index) if use_links else None
        if alignment and links is not None and links[0].shape[1] == 0:
            raise ConfigError(f"{self.path}: no SAME_AS links between items; run `scenerec align` first")
        inputs = self._graph_inputs(index, splits["train"], links)
        if options and model not in ("scenegnn", "crossscene"):
            raise ConfigError(f"model {model!r} takes no options (got {', '.join(options)})")
        try:
            recommender = spec.factory(inputs, **(options or {}))
        except TypeError as exc:  # an unknown constructor argument
            raise ConfigError(f"model {model!r}: {exc}") from None
        result = fit(recommender, splits["train"], splits["valid"], cfg, item_scene=item_scene, progress=progress)
        report = tune_item_item(
            recommender,
            splits["train"],
            splits["valid"],
            item_scene,
            progress=None if progress is None else lambda done, total: progress({"item_item": (done, total)}),
        )
        extra = {
            "generation": self.generation,
            "splits": "random_per_user" if assigned else "stored",
            "item_item": {str(k): v for k, v in report.scenes.items()},
            "scenes": list(scenes) if scenes is not None else None,
            "alignment": int(links[0].shape[1]) if links is not None else None,
            "label": label,
        }
        arrays = {"item_scene": item_scene}
        for name, csr in splits.items():
            arrays[f"{name}_users"], arrays[f"{name}_items"] = csr.rows(), csr.indices
        if links is not None:
            arrays["links"], arrays["link_weights"] = links
        record = {
            "model": model,
            "label": label,
            "seed": result.seed,
            "scenes": list(scenes) if scenes else None,
            "alignment": extra["alignment"],
            "options": options or {},
            "best_epoch": result.best_epoch,
            "seconds_total": result.seconds_total,
            "valid": result.best_valid,
            "history": result.history,
        }
        self.last_write_back = None
        try:
            self._set_model(model, recommender, splits, item_scene)
            self._model_label = label
            with self._writing("fit") as (folder, graph):
                target = folder / MODEL_DIR
                shutil.rmtree(target, ignore_errors=True)
                save_artifact(target, model, recommender, cfg, result, self.idmap, extra=extra)
                np.savez(target / SPLITS_FILE, **arrays)  # type: ignore[arg-type]  # numpy stubs read ** as allow_pickle
                written = None if write_back is None else self._write_back(graph, write_back, None, 1024)
                self._log_run("fit", record, folder=folder)
        except BaseException:
            self._model = None  # the served generation keeps its own model, loaded again on use
            self._embeddings = None
            raise
        self.last_write_back = written
        return result

    def _log_run(self, kind: str, record: dict[str, Any], folder: Path | None = None) -> None:
        """Append ``record`` to the run log (:class:`scenerec.runlog.RunLog`, read by ``scenerec report``) of the
        served generation, or of the generation folder ``folder``; a log that cannot be written is warned about,
        never fatal to the run."""
        from scenerec.runlog import RUNS_FILE, RunLog

        try:
            RunLog((folder or self._gen) / RUNS_FILE).append(kind, record)
        except OSError as exc:
            warnings.warn(f"{self.path}: run not logged ({exc})", RuntimeWarning, stacklevel=3)

    def _load_model(self) -> Recommender:
        """The model trained by :meth:`fit` in this process, else the one saved in :attr:`model_dir`."""
        if self._model is not None:
            return self._model
        import scenerec.transfer  # noqa: F401  (registers CrossSceneGNN with build_model)
        from scenerec.gnn import build_model, load_artifact
        from scenerec.gnn.train import MODEL_CLASSES

        folder = self.model_dir
        if not folder.is_dir():
            raise ConfigError(f"{self.path}: no trained model; run `scenerec fit --store {self.path}` first")
        fix = fit_hint(self.path)
        state, meta = load_artifact(folder, fix)
        trained: IdMap = meta["idmap"]
        grown = trained != self.idmap
        if grown and not _is_prefix(trained, self.idmap):
            raise ConfigError(f"{folder}: the model was trained on other nodes than the store holds; run fit again")
        splits, item_scene, links = _read_splits(folder / SPLITS_FILE, trained, fix)
        cls = meta["hyperparameters"]["class"]
        adj = _adjacency(splits["train"]) if cls == "LightGCN" else None
        index = self._edge_index()
        inputs = None
        if cls in MODEL_CLASSES:
            old_index = _restrict_index(index, trained) if grown else index
            old_features = {k: v[: trained.size(k)] for k, v in self.features.items()}
            inputs = self._graph_inputs(old_index, splits["train"], links, features=old_features)
        if inputs is not None and not np.array_equal(inputs.item_scene, item_scene):
            raise ConfigError(f"{folder}: item scenes changed since the model was trained; run fit again")
        try:
            model = build_model(meta, state, adj=adj, inputs=inputs)
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:  # weights of another model, sizes that differ
            reason = " ".join(str(exc).split())[:160]
            raise StoreFileError(folder / "weights.pt", f"does not match meta.json ({reason})", fix) from None
        if grown:
            model, splits, item_scene = self._extend(model, trained, splits, index)
        self._set_model(str(meta["model"]), model, splits, item_scene)
        self._model_label = str((meta.get("extra") or {}).get("label") or meta["model"])
        return model

    def _extend(
        self, model: Recommender, trained: IdMap, splits: dict[str, CSR], index: EdgeIndex
    ) -> tuple[Recommender, dict[str, CSR], np.ndarray]:
        """Serve the nodes an update added after training (:class:`scenerec.gnn.ExtendedRecommender`): new items
        from their text and scene, new users from their histories. The splits grow to the store's size; the new
        interactions join the split they are stored with (none: ``train``, i.e. known history, not test)."""
        import torch

        from scenerec.gnn import CSR, ExtendedRecommender

        n_users, n_items = self.idmap.size("user"), self.idmap.size("item")
        old_users, old_items = trained.size("user"), trained.size("item")
        model.eval()
        with torch.no_grad():
            new = np.arange(old_items, n_items)
            encode = getattr(model, "encode_new_items", None)
            text = self.features.get("item")
            if len(new) and encode is not None and getattr(model, "text_proj", None) is not None and text is not None:
                vectors = encode(torch.from_numpy(text[new]), torch.from_numpy(index.item_scene[new]))
            else:  # no text representation (or no new item): zero vectors of the model's item size
                item_emb = model()[1]
                vectors = item_emb.new_zeros(len(new), item_emb.shape[1])
        edges = index.edges.get(("user", "INTERACTED", "item"))
        users = edges["src"].to_numpy(np.int64) if edges is not None else np.zeros(0, np.int64)
        items = edges["dst"].to_numpy(np.int64) if edges is not None else np.zeros(0, np.int64)
        label = edges["split"].fillna("").astype(str).to_numpy() if edges is not None else np.zeros(0, str)
        known = np.zeros(len(users), dtype=bool)
        in_old = (users < old_users) & (items < old_items)
        key = users * n_items + items
        for csr in splits.values():
            old_keys = csr.rows() * n_items + csr.indices
            known |= in_old & np.isin(key, old_keys)
        grown = {}
        for name, csr in splits.items():
            wanted = (label == name) if name != "train" else ~np.isin(label, ["valid", "test"])
            add = ~known & wanted
            grown[name] = CSR.from_pairs(
                np.concatenate([csr.rows(), users[add]]), np.concatenate([csr.indices, items[add]]), (n_users, n_items)
            )
        history = grown["train"]
        histories = [
            torch.from_numpy(history.indices[history.indptr[u] : history.indptr[u + 1]].astype(np.int64))
            for u in range(old_users, n_users)
        ]
        return ExtendedRecommender(model, vectors, histories), grown, index.item_scene.astype(np.int64)

    def _restrict_to_scenes(
        self, splits: dict[str, CSR], item_scene: np.ndarray, scenes: Sequence[str]
    ) -> dict[str, CSR]:
        """``splits`` with the training and validation pairs of other scenes' items dropped (test kept whole)."""
        if isinstance(scenes, str) or not scenes:
            raise ValueError("scenes must be a non-empty list of scene ids")
        for scene in scenes:
            self._check_scene(scene)
        keep_items = np.isin(item_scene, [self.idmap.index("scene", s) for s in scenes])
        out = dict(splits)
        for name in ("train", "valid"):
            out[name] = splits[name].keep_columns(keep_items)
        if out["train"].nnz == 0:
            raise ConfigError(f"{self.path}: no training interactions in scenes {', '.join(scenes)}")
        return out

    def _scene_items(self, scene: str) -> np.ndarray:
        """Item indices of ``scene`` (checked to exist), ascending."""
        if ("scene", scene) not in self.idmap:
            raise UnknownIdError("scene", scene, hint=f"known scenes: {', '.join(self.idmap.ids('scene'))}")
        return np.flatnonzero(self._item_scene == self.idmap.index("scene", scene))

    def _scores(self, users: torch.Tensor) -> torch.Tensor:
        """Scores (b, n_items) of the loaded model for ``users`` (b,)."""
        model = self._load_model()
        assert self._embeddings is not None
        return model.score(users, *self._embeddings).detach()

    def recommend(
        self, user_id: str, scene: str, k: int = 10, *, explain: bool = False, max_paths: int = 3
    ) -> pd.DataFrame:
        """The ``k`` items of ``scene`` the trained model scores highest for ``user_id``, the user's training items
        left out. Columns ``item_id``, ``scene``, ``score``, ``rank`` (1 = best); ties go to the lower item index.
        With ``explain=True`` also ``explanation``: each row's :meth:`explain` paths (at most ``max_paths``).

        Raises :class:`UnknownIdError` for an unknown user or scene, :class:`ConfigError` when no model is trained.
        """
        import torch

        check_k(k)
        if explain:
            check_k(max_paths, "max_paths")
        self._load_model()
        candidates = self._scene_items(scene)
        if ("user", user_id) not in self.idmap:
            raise UnknownIdError("user", user_id)
        user = self.idmap.index("user", user_id)
        scores = self._scores(torch.tensor([user], dtype=torch.long))[0].cpu().numpy().astype(np.float64)
        train = self._splits["train"]
        seen = train.indices[train.indptr[user] : train.indptr[user + 1]]
        top = top_positions(scores, k, np.setdiff1d(candidates, seen, assume_unique=True))
        if len(top) == 0:
            empty = pd.DataFrame({"item_id": [], "scene": [], "score": [], "rank": []}).astype(
                {"item_id": str, "scene": str, "score": float, "rank": int}
            )
            return self._with_explanations(empty, user_id, max_paths) if explain else empty
        item_ids = self.idmap.ids("item")
        recs = pd.DataFrame(
            {
                "item_id": [item_ids[i] for i in top],
                "scene": scene,
                "score": scores[top],
                "rank": np.arange(1, len(top) + 1, dtype=np.int64),
            }
        )
        return self._with_explanations(recs, user_id, max_paths) if explain else recs

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
        return explain_paths(self.store, self.idmap, vectors, user_id, item_id, max_paths)

    def _with_explanations(self, recs: pd.DataFrame, user_id: str, max_paths: int) -> pd.DataFrame:
        """``recs`` with an ``explanation`` column: the :meth:`explain` paths of each row's item."""
        from scenerec.explain import explain as explain_paths

        vectors = self.item_vectors()[0] if len(recs) else np.zeros((0, 1), dtype=np.float32)
        paths = [explain_paths(self.store, self.idmap, vectors, user_id, item, max_paths) for item in recs["item_id"]]
        return recs.assign(explanation=pd.Series(paths, index=recs.index, dtype=object))

    def evaluate(self, scene: str, ks: Sequence[int] = (10, 20)) -> dict[str, Any]:
        """Test-split quality of the trained model within ``scene``: full ranking over the scene's items, each
        user's train and valid items excluded, users without a test item in the scene skipped.

        Returns ``{"scene": scene, "recall@10": ..., "ndcg@10": ..., ... (every metric of
        :func:`scenerec.gnn.metrics.summarize` at every k), "users": number of users evaluated}``.
        """
        from scenerec.gnn import evaluate_scores

        ks = tuple(int(k) for k in ks)
        if not ks or min(ks) < 1:
            raise ValueError("ks must be positive integers")
        self._load_model()
        candidates = self._scene_items(scene)
        if len(candidates) == 0:
            raise ConfigError(f"scene {scene!r} has no items to rank")
        test = self._splits["test"]
        users = len(np.unique(test.rows()[np.isin(test.indices, candidates)]))
        metrics = evaluate_scores(
            self._scores, self._splits["train"], test, exclude=self._splits["valid"], ks=ks, candidate_items=candidates
        )
        out = {"scene": scene, **metrics, "users": users}
        self._log_run(
            "evaluate", {"model": self._model_name, "label": self._model_label, "scene": scene, "metrics": out}
        )
        return out

    # ---------------------------------------------------------------- serving
    def _ranked(self, scores: np.ndarray, candidates: np.ndarray, k: int, scene: str | None) -> pd.DataFrame:
        """The ``k`` best of ``candidates`` (item indices) by ``scores`` (over all items), ties to the lower index:
        columns ``item_id``, ``scene`` (``scene``, else each item's own), ``score``, ``rank``."""
        top = top_positions(scores.astype(np.float64), k, candidates)
        item_ids = self.idmap.ids("item")
        scenes = [scene] * len(top) if scene is not None else self.items()["scene"].to_numpy()[top].tolist()
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
        ids = [item_ids] if isinstance(item_ids, str) else [str(i) for i in item_ids]
        if not ids:
            raise ValueError("no item ids given: name at least one item the user interacted with")
        for ident in ids:
            if ("item", ident) not in self.idmap:
                raise UnknownIdError("item", ident)
        return np.unique(self.idmap.indices("item", ids))

    def recommend_for_items(self, item_ids: Sequence[str], scene: str, k: int = 10) -> pd.DataFrame:
        """The ``k`` items of ``scene`` the trained model scores highest for a user it has never seen, given only
        the items that user interacted with (inductive: :meth:`Recommender.score_histories`, no retraining).

        The given items are left out; columns ``item_id``, ``scene``, ``score``, ``rank`` (1 = best); ties go to
        the lower item index, as in :meth:`recommend`. Raises :class:`UnknownIdError` for an unknown item or scene,
        ``ValueError`` for an empty list, :class:`ConfigError` when no model is trained.
        """
        import torch

        check_k(k)
        model = self._load_model()
        candidates = self._scene_items(scene)
        history = self._item_indices(item_ids)
        assert self._embeddings is not None
        with torch.no_grad():
            scores = model.score_histories([torch.from_numpy(history)], *self._embeddings)[0]
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
        import json

        import torch

        from scenerec.llm.templates import TextTemplates

        check_k(k)
        if not title or not title.strip():
            raise ValueError("a new item needs a title")
        model = self._load_model()
        candidates = self._scene_items(scene)
        encode = getattr(model, "encode_new_items", None)
        if encode is None or getattr(model, "text_proj", None) is None:
            raise ConfigError(
                f"the trained model ({self._model_name}) cannot represent an item from its text alone; "
                "fit scenegnn or crossscene on a store with text embeddings"
            )
        text = TextTemplates().item_text(title, description, json.dumps(attributes or {}), scene)
        vector = torch.from_numpy(np.asarray(self.encoder.encode([text]), dtype=np.float32))
        assert self._embeddings is not None
        user_emb = self._embeddings[0]
        with torch.no_grad():
            item = encode(vector, torch.tensor([self.idmap.index("scene", scene)]))[0]
            scores = (user_emb @ item).cpu().numpy().astype(np.float64)
        top = top_positions(scores, k)
        with torch.no_grad():
            existing = self._scores(torch.as_tensor(top, dtype=torch.long)).cpu().numpy()[:, candidates]
        train = self._splits["train"]
        ranks = []
        for row, user in enumerate(top):
            seen = np.isin(candidates, train.indices[train.indptr[user] : train.indptr[user + 1]])
            ranks.append(1 + int(((existing[row] > scores[user]) & ~seen).sum()))
        users = np.asarray(self.idmap.ids("user"), dtype=object)[top]
        return pd.DataFrame({"user_id": users, "score": scores[top], "rank": ranks})

    def item_vectors(self) -> tuple[np.ndarray, str]:
        """Item representations in id-map order and where they come from: the trained model's (its name) when one
        is trained or saved, else the text embeddings (``"text"``). The popularity model has none of its own."""
        from scenerec.gnn import MostPopular

        if self._model is not None or (self.model_dir / SPLITS_FILE).is_file():
            model = self._load_model()
            if not isinstance(model, MostPopular):
                assert self._embeddings is not None
                item_emb = self._embeddings[1]
                shared = getattr(model, "item_representations", None)
                if shared is not None:  # scoring vectors are per-scene blocks: compare in the one shared space
                    import torch

                    with torch.no_grad():
                        item_emb = shared()
                return item_emb.detach().cpu().numpy().astype(np.float32), self._model_name
        vectors = self.features.get("item")
        if vectors is None:
            raise ConfigError(
                f"{self.path}: no item representations to compare: train a model (`scenerec fit --store "
                f"{self.path} --model lightgcn`) or rebuild the store with text embeddings"
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
        self._check_scene(scene)
        if ("item", item_id) not in self.idmap:
            raise UnknownIdError("item", item_id)
        vectors, source = self.item_vectors()
        norms = np.linalg.norm(vectors, axis=1)
        unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]
        index = self.idmap.index("item", item_id)
        scores = (unit.astype(np.float64) @ unit[index].astype(np.float64)).astype(np.float64)
        if scene is None:
            candidates = np.arange(len(scores))
        else:
            candidates = np.flatnonzero(self.items()["scene"].to_numpy() == scene)
        out = self._ranked(scores, candidates[candidates != index], k, None)
        out.attrs["source"] = source
        return out

    def write_back(self, k: int = 10, scenes: Sequence[str] | None = None, batch_size: int = 1024) -> dict[str, Any]:
        """Write the trained model's results into the graph, for queries in plain Cypher:

        * for every user and every scene of ``scenes`` (default: every scene the model has items of), its top-``k``
          items as ``(:User)-[:RECOMMENDED {score, rank, model}]->(:Item)``, training items left out, the same
          ranking as :meth:`recommend`; these replace all earlier ``RECOMMENDED`` relationships;
        * the learnt user and item representations as the ``gnn_embedding`` float-array property
          (:data:`scenerec.kg.schema.MODEL_EMBEDDING`), replacing earlier ones.

        Needs ``Engine.open(path, read_only=False)``. The write goes to a new generation, a copy of the served one,
        that becomes live when it is complete (see :class:`Engine`). Returns what was written: ``model``, ``k``,
        ``scenes``, ``edges``, ``users``, ``items``, ``dim``, ``property``, ``seconds``.
        """
        check_k(k)
        self._require_writable("write back")
        self._load_model()
        with self._writing("write-back") as (_, graph):
            return self._write_back(graph, k, scenes, batch_size)

    def _write_back(self, graph: GraphStore, k: int, scenes: Sequence[str] | None, batch_size: int) -> dict[str, Any]:
        """:meth:`write_back` of the loaded model into ``graph``."""
        import time

        from scenerec.kg.schema import MODEL_EMBEDDING

        t0 = time.perf_counter()
        self._load_model()
        assert self._embeddings is not None
        user_emb, item_emb = self._embeddings
        scenes = self._written_scenes(scenes)
        n_users, n_items = self.idmap.size("user"), self.idmap.size("item")
        frame = self._top_k_frame(np.arange(n_users), scenes, k, batch_size)
        edges = graph.write_recommendations(frame)
        graph.set_model_embeddings("User", self.idmap.ids("user"), user_emb.detach().cpu().numpy())
        graph.set_model_embeddings("Item", self.idmap.ids("item"), item_emb.detach().cpu().numpy())
        return {
            "model": self._model_name,
            "k": k,
            "scenes": scenes,
            "edges": edges,
            "users": n_users,
            "items": n_items,
            "dim": int(item_emb.shape[1]),
            "property": MODEL_EMBEDDING,
            "seconds": time.perf_counter() - t0,
        }

    def _written_scenes(self, scenes: Sequence[str] | str | None) -> list[str]:
        """``scenes`` as a list; ``None``: every scene the loaded model has items of."""
        if scenes is None:
            covered = set(self._item_scene[self._item_scene >= 0].tolist())
            return [s for n, s in enumerate(self.idmap.ids("scene")) if n in covered]
        return [scenes] if isinstance(scenes, str) else list(scenes)

    def _top_k_frame(self, users_all: np.ndarray, scenes: list[str], k: int, batch_size: int) -> pd.DataFrame:
        """Columns ``user``, ``item``, ``score``, ``rank``, ``model``: the top-``k`` items of every scene for the
        users ``users_all`` (indices), their training items left out (the ranking of :meth:`recommend`)."""
        import torch

        n_items = self.idmap.size("item")
        train = self._splits["train"]
        user_ids = np.asarray(self.idmap.ids("user"), dtype=object)
        item_ids = np.asarray(self.idmap.ids("item"), dtype=object)
        parts: list[pd.DataFrame] = []
        for scene in scenes:
            candidates = self._scene_items(scene)
            if len(candidates) == 0:
                continue
            position = np.full(n_items, -1, dtype=np.int64)
            position[candidates] = np.arange(len(candidates))
            step = max(1, min(batch_size, 4_000_000 // len(candidates)))
            for start in range(0, len(users_all), step):
                users = users_all[start : start + step]
                scores = self._scores(torch.from_numpy(users))[:, torch.from_numpy(candidates)]
                block = scores.cpu().numpy().astype(np.float64)
                # the users' training items of this scene are left out
                counts = np.diff(train.indptr)[users]
                rows = np.repeat(np.arange(len(users)), counts)
                seen = np.concatenate([train.indices[train.indptr[u] : train.indptr[u + 1]] for u in users])
                cols = position[seen.astype(np.int64)] if len(seen) else np.zeros(0, dtype=np.int64)
                block[rows[cols >= 0], cols[cols >= 0]] = -np.inf
                pos, valid = top_k(block, k)
                r, c = np.nonzero(valid)
                parts.append(
                    pd.DataFrame(
                        {
                            "user": user_ids[users[r]],
                            "item": item_ids[candidates[pos[r, c]]],
                            "score": block[r, pos[r, c]],
                            "rank": c + 1,
                        }
                    )
                )
        frame = (
            pd.concat(parts, ignore_index=True)
            if parts
            else pd.DataFrame({"user": [], "item": [], "score": [], "rank": []})
        )
        frame["model"] = self._model_name
        return frame

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
        affected users: the new ones and those with new interactions. The engine then serves the new generation.

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
                self._refresh(report, k, refreshed)
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

    def _refresh(self, report: UpdateReport, k: int, out: dict[str, Any]) -> None:
        """Extend the trained model to the updated graph and rewrite the ``RECOMMENDED`` edges (top ``k``) of the
        users the update affected and every ``gnn_embedding`` vector, in the served (staged) generation."""
        import time

        t0 = time.perf_counter()
        self._load_model()
        assert self._embeddings is not None
        affected = list(dict.fromkeys(report.new_ids.get("user", []) + report.users_with_new_interactions))
        users = self.idmap.indices("user", affected)
        frame = self._top_k_frame(users, self._written_scenes(None), k, 1024)
        written = self.store.write_recommendations(frame, users=affected)
        user_emb, item_emb = self._embeddings
        self.store.set_model_embeddings("User", self.idmap.ids("user"), user_emb.detach().cpu().numpy())
        self.store.set_model_embeddings("Item", self.idmap.ids("item"), item_emb.detach().cpu().numpy())
        out.update({"refreshed_users": len(affected), "recommended": written, "model": self._model_name})
        report.seconds["refresh"] = round(time.perf_counter() - t0, 3)

    # ---------------------------------------------------------------- entity alignment
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
        """Align the nodes of scene ``left`` with those of scene ``right`` (:func:`scenerec.transfer.align.align`).

        The nodes of a scene are its Entity nodes (``scene`` property) and its Item nodes; their features are the
        stored text embeddings (zero for nodes without text); the structure is every ``RELATED`` edge (never
        ``SAME_AS``). The stored ``SAME_AS`` pairs of method ``gold`` between the two scenes are split at random
        (``numpy.random.default_rng(seed)``): ``seed_fraction`` of them are the aligner's seeds, the rest are held
        out and measured (``hits@1``, ``hits@10``, ``mrr``, ``precision``, ``recall``; absent without gold). With
        ``write`` (a writable store: ``Engine.open(path, read_only=False)``) the accepted non-seed pairs replace the
        earlier ``SAME_AS`` relationships of ``method`` between the two scenes; gold ones are never touched.

        Raises :class:`UnknownIdError` for an unknown scene, :class:`ConfigError` for a scene without nodes or a
        store without text embeddings (or read-only with ``write``), ``ValueError`` for bad arguments.
        """
        import time

        from scenerec.transfer.align import METHODS, AlignConfig
        from scenerec.transfer.align import align as run_align

        t0 = time.perf_counter()
        for scene in (left, right):
            self._check_scene(scene)
        if left == right:
            raise ValueError(f"left and right must be two different scenes, not {left!r} twice")
        if not isinstance(seed_fraction, (int, float)) or not 0.0 <= seed_fraction < 1.0:
            raise ValueError(f"seed_fraction must be in [0, 1), not {seed_fraction!r}")
        if method not in METHODS:
            raise ValueError(f"unknown alignment method {method!r}; choose one of: {', '.join(METHODS)}")
        if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], not {threshold!r}")
        if write:
            self._require_writable("write the alignment, or pass write=False")
        kinds = ("item", "entity")
        sizes = {kind: self.idmap.size(kind) for kind in kinds}
        offset = {"item": 0, "entity": sizes["item"]}
        n = sizes["item"] + sizes["entity"]
        dims = {kind: self.features[kind].shape[1] for kind in kinds if kind in self.features}
        if not dims:
            raise ConfigError(f"{self.path}: the store has no text embeddings to align with; rebuild it with them")
        if len(set(dims.values())) > 1:
            raise ConfigError(f"{self.path}: item and entity embeddings differ in size ({dims}); rebuild the store")
        x = np.zeros((n, next(iter(dims.values()))), dtype=np.float32)
        for kind in dims:
            x[offset[kind] : offset[kind] + sizes[kind]] = self.features[kind]

        # node index -> kind, id, name and scene (items first, then entities)
        index = self._edge_index()
        ents = self.store.query("MATCH (e:Entity) RETURN e.id AS id, e.name AS name, e.scene AS scene")
        ents = ents.fillna({"name": "", "scene": ""})
        ent_index = self.idmap.indices("entity", ents["id"].astype(str)) if len(ents) else np.zeros(0, np.int64)
        items = self.items()
        node_kind = np.array(["item"] * sizes["item"] + ["entity"] * sizes["entity"], dtype=object)
        node_id = np.asarray(self.idmap.ids("item") + self.idmap.ids("entity"), dtype=object)
        node_name = np.full(n, "", dtype=object)
        node_scene = np.full(n, "", dtype=object)
        node_name[: sizes["item"]] = items["title"].astype(str).to_numpy(dtype=object)
        node_scene[: sizes["item"]] = items["scene"].astype(str).to_numpy(dtype=object)
        node_name[offset["entity"] + ent_index] = ents["name"].astype(str).to_numpy(dtype=object)
        node_scene[offset["entity"] + ent_index] = ents["scene"].astype(str).to_numpy(dtype=object)
        left_nodes = np.flatnonzero(node_scene == left)
        right_nodes = np.flatnonzero(node_scene == right)
        for scene, nodes in ((left, left_nodes), (right, right_nodes)):
            if len(nodes) == 0:
                raise ConfigError(f"scene {scene!r} has no items or entities to align")

        structure, gold_parts = [], []
        for (a, rel, b), df in index.edges.items():
            if a not in offset or b not in offset or df.empty:
                continue
            pair = np.stack([df["src"].to_numpy(np.int64) + offset[a], df["dst"].to_numpy(np.int64) + offset[b]])
            if rel == "RELATED":
                structure.append(pair)
            elif rel == "SAME_AS" and "method" in df:
                gold_parts.append(pair[:, (df["method"].astype("string").fillna("") == "gold").to_numpy()])
        edges = np.concatenate(structure, axis=1) if structure else np.zeros((2, 0), dtype=np.int64)
        is_left, is_right = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        is_left[left_nodes], is_right[right_nodes] = True, True
        gold = np.concatenate(gold_parts, axis=1).T if gold_parts else np.zeros((0, 2), dtype=np.int64)
        forward = is_left[gold[:, 0]] & is_right[gold[:, 1]]
        backward = is_right[gold[:, 0]] & is_left[gold[:, 1]]
        gold = np.concatenate([gold[forward], gold[backward][:, ::-1]])
        gold = np.unique(gold, axis=0) if len(gold) else gold.reshape(0, 2)
        order = np.random.default_rng(seed).permutation(len(gold))
        n_seeds = int(np.floor(seed_fraction * len(gold)))
        seeds, held = gold[np.sort(order[:n_seeds])], gold[np.sort(order[n_seeds:])]

        config = AlignConfig(threshold=float(threshold), method=method, seed=int(seed))
        result = run_align(
            x, edges, left_nodes, right_nodes, seeds=seeds, config=config, gold=held if len(held) else None
        )

        def frame(pairs: pd.DataFrame) -> pd.DataFrame:
            lp, rp = pairs["left"].to_numpy(np.int64), pairs["right"].to_numpy(np.int64)
            return pd.DataFrame(
                {
                    "left": node_id[lp],
                    "right": node_id[rp],
                    "kind_left": node_kind[lp],
                    "kind_right": node_kind[rp],
                    "name_left": node_name[lp],
                    "name_right": node_name[rp],
                    "score": pairs["score"].to_numpy(np.float64) if "score" in pairs else 1.0,
                    "csls": pairs["csls"].to_numpy(np.float64) if "csls" in pairs else np.nan,
                    "method": pairs["method"].to_numpy(dtype=object) if "method" in pairs else "gold",
                }
            )

        pairs, review = frame(result.pairs), frame(result.review)
        accepted = pairs[pairs["method"] != "seed"].reset_index(drop=True)
        used = str(result.info["method"])  # "gcn" without seeds falls back to "propagation"
        written = 0
        if write:
            with self._writing("align") as (_, graph):
                written = graph.write_alignments(
                    accepted[["left", "right", "kind_left", "kind_right", "score", "method"]],
                    used,
                    scenes=(left, right),
                )
        # users are shared by construction (one User node): those with interactions in both scenes
        shared_users = 0
        inter = index.edges.get(("user", "INTERACTED", "item"))
        if inter is not None and len(inter):
            scene_of = index.item_scene[inter["dst"].to_numpy(np.int64)]
            users = inter["src"].to_numpy(np.int64)
            in_left = users[scene_of == self.idmap.index("scene", left)]
            in_right = users[scene_of == self.idmap.index("scene", right)]
            shared_users = len(np.intersect1d(in_left, in_right))
        summary: dict[str, Any] = {
            "left": left,
            "right": right,
            "method": used,
            "threshold": float(threshold),
            "seed": int(seed),
            "left_nodes": len(left_nodes),
            "right_nodes": len(right_nodes),
            "edges": int(edges.shape[1]),
            "seeds": len(seeds),
            "held_out": len(held),
        }
        for key in ("hits@1", "hits@10", "mrr", "precision", "recall"):
            if key in result.metrics:
                summary[key] = float(result.metrics[key])
        summary.update(
            {
                "pairs": len(accepted),
                "review": len(review),
                "written": int(written),
                "shared_users": shared_users,
                "seconds": time.perf_counter() - t0,
            }
        )
        empty = pd.DataFrame({"left": [], "right": []}, dtype=np.int64)
        return SceneAlignment(
            summary=summary,
            pairs=pairs,
            review=review,
            seeds=frame(pd.DataFrame({"left": seeds[:, 0], "right": seeds[:, 1]}) if len(seeds) else empty),
            held_out=frame(pd.DataFrame({"left": held[:, 0], "right": held[:, 1]}) if len(held) else empty),
        )


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


def _read_splits(
    path: Path, trained: IdMap, fix: str
) -> tuple[dict[str, CSR], np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The train/valid/test pairs, item scenes and item links a model was saved with (:meth:`Engine.fit`), checked
    against the sizes of the id map it was trained on; a :class:`StoreFileError` naming ``path`` otherwise."""
    from scenerec.gnn import CSR

    names = ("train", "valid", "test")
    required = ["item_scene", *(f"{s}_{part}" for s in names for part in ("users", "items"))]
    z = read_npz_file(path, fix, required=required)
    shape = (trained.size("user"), trained.size("item"))
    try:
        splits = {s: CSR.from_pairs(z[f"{s}_users"], z[f"{s}_items"], shape) for s in names}
    except (ValueError, TypeError) as exc:
        raise StoreFileError(
            path, f"pairs that do not fit the model's {shape[0]} users x {shape[1]} items ({exc})", fix
        ) from None
    item_scene = z["item_scene"]
    if item_scene.shape != (shape[1],) or not np.issubdtype(item_scene.dtype, np.integer):
        raise StoreFileError(path, f"item_scene has shape {item_scene.shape}, expected ({shape[1]},) integers", fix)
    links = (z["links"], z["link_weights"]) if "links" in z else None
    if links is not None and (links[0].ndim != 2 or links[0].shape[0] != 2 or links[1].shape != (links[0].shape[1],)):
        raise StoreFileError(path, "links and link_weights do not match in shape", fix)
    return splits, item_scene.astype(np.int64), links


def _is_prefix(old: IdMap, new: IdMap) -> bool:
    """Whether ``new`` is ``old`` with ids appended (an incremental update keeps every trained index)."""
    from scenerec.ids import NODE_KINDS

    return all(new.ids(k)[: old.size(k)] == old.ids(k) for k in NODE_KINDS)


def _restrict_index(index: EdgeIndex, idmap: IdMap) -> EdgeIndex:
    """``index`` cut down to the nodes of ``idmap`` (a prefix of its id map): the graph a model was trained on."""
    from scenerec.kg.store import EdgeIndex

    sizes = {k: idmap.size(k) for k in ("scene", "user", "item", "entity")}
    edges = {}
    for (src, rel, dst), df in index.edges.items():
        keep = (df["src"].to_numpy() < sizes[src]) & (df["dst"].to_numpy() < sizes[dst])
        edges[(src, rel, dst)] = df[keep].reset_index(drop=True)
    return EdgeIndex(idmap=idmap, edges=edges, item_scene=index.item_scene[: sizes["item"]])
