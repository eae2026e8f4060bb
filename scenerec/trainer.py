"""Training and the saved model's lifecycle: the :class:`Trainer` service of an engine (``engine.trainer``: fit,
load, evaluate) and its store-independent core :func:`train_recommender`, which a benchmark calls with its own
splits and :class:`~scenerec.gnn.GraphInputs`."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from scenerec.errors import ConfigError
from scenerec.registry import DEFAULT_RECOMMENDER, MODELS
from scenerec.storefiles import fit_hint
from scenerec.trained import MODEL_DIR, TrainedModel, graph_inputs

if TYPE_CHECKING:
    from scenerec.engine import Engine
    from scenerec.gnn import CSR, FitResult, GraphInputs, ItemItemReport, Recommender, TrainConfig
    from scenerec.kg import EdgeIndex

__all__ = ["Trainer", "TrainingRun", "train_recommender"]


class TrainingRun(NamedTuple):
    """What :func:`train_recommender` returns: the trained ``recommender`` (eval mode, the best validation state),
    the training loop's :class:`~scenerec.gnn.FitResult` and the item-item channel's choices per scene."""

    recommender: Recommender
    result: FitResult
    item_item: ItemItemReport


def train_recommender(
    model: str,
    inputs: GraphInputs,
    splits: Mapping[str, CSR],
    config: TrainConfig,
    *,
    options: dict[str, Any] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    candidate_items: np.ndarray | None = None,
    item_item_cache_bytes: int | None = None,
) -> TrainingRun:
    """Build the recommender ``model`` (a name of :data:`scenerec.registry.MODELS`, with the constructor ``options``
    it accepts) on ``inputs``, train it on ``splits["train"]`` with early stopping on ``splits["valid"]``
    (:func:`scenerec.gnn.fit` with ``config``; negatives and the item-item channel per scene of
    ``inputs.item_scene``), then fit its item-item channel and choose its fusion weights on the validation split
    (:func:`scenerec.gnn.tune_item_item`; models without the channel are left as they are).

    ``progress`` gets every epoch's record, then ``{"item_item": (done, total)}`` while the channel is fitted;
    ``candidate_items``: validation ranks only these items (e.g. one scene's); ``item_item_cache_bytes``:
    :func:`~scenerec.gnn.tune_item_item`'s ``cache_bytes`` (None: its default). :class:`ConfigError` for an unknown
    model or option. Nothing here reads or writes a store: :meth:`Trainer.fit` assembles the inputs from one.
    """
    from scenerec.gnn import fit, tune_item_item

    recommender = MODELS[model].build(inputs, options)
    train, valid = splits["train"], splits["valid"]
    cache: dict[str, Any] = {} if item_item_cache_bytes is None else {"cache_bytes": item_item_cache_bytes}
    result = fit(
        recommender,
        train,
        valid,
        config,
        item_scene=inputs.item_scene,
        progress=progress,
        candidate_items=candidate_items,
    )
    report = tune_item_item(
        recommender,
        train,
        valid,
        inputs.item_scene,
        progress=None if progress is None else lambda done, total: progress({"item_item": (done, total)}),
        **cache,
    )
    return TrainingRun(recommender, result, report)


def run_label(
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


def item_links(index: EdgeIndex) -> tuple[np.ndarray, np.ndarray]:
    """The stored ``SAME_AS`` links between items as (edges (2, L) int64, weights (L,) float32): the link's
    score clipped to [0, 1], 1 where it has none (gold pairs)."""
    df = index.edges.get(("item", "SAME_AS", "item"))
    if df is None or df.empty:
        return np.zeros((2, 0), dtype=np.int64), np.zeros(0, dtype=np.float32)
    score = pd.to_numeric(df["score"], errors="coerce") if "score" in df else pd.Series(1.0, index=df.index)
    weight = score.fillna(1.0).clip(0.0, 1.0).to_numpy(np.float32)
    return np.stack([df["src"].to_numpy(np.int64), df["dst"].to_numpy(np.int64)]), weight


class Trainer:
    """Training on an engine's store and the model it serves (``engine.trainer``): :meth:`fit` trains and saves a
    recommender into a new generation, :meth:`load` returns the served :class:`~scenerec.trained.TrainedModel`
    (trained here, else the saved one), :meth:`evaluate` measures it on the test split."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        #: What the write-back of the last :meth:`fit` wrote (``fit(write_back=k)``), else None.
        self.last_write_back: dict[str, Any] | None = None

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
        """Train the recommender ``model`` (a name of :data:`~scenerec.registry.MODELS`) on the store's interactions
        and save it.

        Transfer between scenes (the ablations of ``benchmarks/transfer.py``): ``scenes`` trains on the
        interactions of those scenes only (training and validation pairs; ``["office"]``: the target scene only);
        ``alignment`` makes propagation follow the stored ``SAME_AS`` item links (``scenerec align``; default: the
        model's :attr:`ModelSpec.alignment <scenerec.registry.ModelSpec.alignment>`, on for ``crossscene``; True with
        no stored link is an error); ``crossscene`` adds the per-scene gate to SceneGNN
        (:class:`scenerec.transfer.CrossSceneGNN`). ``options``: constructor arguments of ``scenegnn`` /
        ``crossscene`` (e.g. ``{"gate": False}``, ``{"use_kg": True, "dim": 64}``); :class:`ConfigError` names an
        unknown one.

        The splits stored on the interactions are used (``random_per_user`` over all of them when any has none);
        negatives come from the positive item's scene; early stopping watches validation NDCG. ``config``: the
        training configuration (default: the model's own, :attr:`ModelSpec.config
        <scenerec.registry.ModelSpec.config>`); ``seed`` and ``epochs`` override it (``seed`` also seeds the split,
        when one is assigned). ``progress`` gets every epoch's record, then ``{"item_item": (done, total)}`` while
        the item-item channel is fitted. For ``scenegnn`` the item-item channel is fitted and its fusion weights
        chosen on the validation split afterwards (:func:`train_recommender`). The artifact
        (:meth:`TrainedModel.save <scenerec.trained.TrainedModel.save>`) goes to the ``model`` folder of a new
        generation, a copy of the one the engine read, replacing any earlier model; with ``write_back=k`` the top
        ``k`` of every user are written there too (:meth:`Ranker.write_back <scenerec.ranker.Ranker.write_back>`).
        The new generation goes live only when all of it is written (the fit refuses with
        :class:`~scenerec.errors.GenerationChangedError` when another writer changed the store during training), so
        readers never see the new model without its recommendations. The model stays loaded for serving;
        :attr:`last_write_back` holds what the write-back wrote (``write_back`` needs
        ``Engine.open(path, read_only=False)``).
        """
        engine = self._engine
        if write_back is not None:
            if not isinstance(write_back, int) or write_back < 1:
                raise ValueError("write_back must be a positive integer (the k of the write-back) or None")
            engine._require_writable("write back")
        spec = MODELS[model]
        spec.check_options(options)
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise ConfigError(f"epochs must be an integer >= 1, not {epochs!r} (an untrained model would be saved)")
        cfg = config if config is not None else spec.config()
        if seed is not None:
            cfg = replace(cfg, seed=seed)
        if epochs is not None:
            cfg = replace(cfg, epochs=epochs)
        splits, index, assigned = self.interaction_splits(cfg.seed)
        item_scene = index.item_scene
        label = run_label(model, scenes, None if alignment is None else bool(alignment), spec.alignment, options)
        if scenes is not None:
            splits = self._restrict_to_scenes(splits, item_scene, scenes)
        use_links = spec.alignment if alignment is None else bool(alignment)
        links = item_links(index) if use_links else None
        if alignment and links is not None and links[0].shape[1] == 0:
            raise ConfigError(f"{engine.path}: no SAME_AS links between items; run `scenerec align` first")
        inputs = graph_inputs(index, engine.features, splits["train"], links)
        recommender, result, report = train_recommender(model, inputs, splits, cfg, options=options, progress=progress)
        extra = {
            "generation": engine.generation,
            "splits": "random_per_user" if assigned else "stored",
            "item_item": {str(k): v for k, v in report.scenes.items()},
            "scenes": list(scenes) if scenes is not None else None,
            "alignment": int(links[0].shape[1]) if links is not None else None,
            "label": label,
        }
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
            engine._trained = trained = TrainedModel.of(
                model, recommender, splits, item_scene, label=label, links=links
            )
            with engine._writing("fit") as (folder, graph):
                trained.save(folder / MODEL_DIR, cfg, result, engine.idmap, extra)
                written = None if write_back is None else engine.ranker.write_back_into(graph, write_back)
                self.log_run("fit", record, folder=folder)
        except BaseException:
            engine._trained = None  # the served generation keeps its own model, loaded again on use
            raise
        self.last_write_back = written
        return result

    def load(self) -> TrainedModel:
        """The served model: the one trained by :meth:`fit` in this process, else the one saved in the served
        generation (:attr:`Engine.model_dir <scenerec.engine.Engine.model_dir>`), loaded once and extended to the
        nodes an update added since. :class:`ConfigError` when there is none."""
        engine = self._engine
        if engine._trained is not None:
            return engine._trained
        folder = engine.model_dir
        if not folder.is_dir():
            raise ConfigError(f"{engine.path}: no trained model; run `scenerec fit --store {engine.path}` first")
        engine._trained = TrainedModel.load(
            folder, idmap=engine.idmap, features=engine.features, index=engine._edge_index(), fix=fit_hint(engine.path)
        )
        return engine._trained

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
        trained = self.load()
        candidates = trained.scene_items(self._engine._scene_index(scene))
        if len(candidates) == 0:
            raise ConfigError(f"scene {scene!r} has no items to rank")
        splits = trained.splits
        test = splits["test"]
        users = len(np.unique(test.rows()[np.isin(test.indices, candidates)]))
        metrics = evaluate_scores(
            trained.scores, splits["train"], test, exclude=splits["valid"], ks=ks, candidate_items=candidates
        )
        out = {"scene": scene, **metrics, "users": users}
        self.log_run("evaluate", {"model": trained.name, "label": trained.label, "scene": scene, "metrics": out})
        return out

    def log_run(self, kind: str, record: dict[str, Any], folder: Path | None = None) -> None:
        """Append ``record`` to the run log (:class:`scenerec.runlog.RunLog`, read by ``scenerec report``) of the
        served generation, or of the generation folder ``folder``; a log that cannot be written is warned about,
        never fatal to the run."""
        from scenerec.runlog import RUNS_FILE, RunLog

        engine = self._engine
        try:
            RunLog((folder or engine._gen) / RUNS_FILE).append(kind, record)
        except OSError as exc:
            warnings.warn(f"{engine.path}: run not logged ({exc})", RuntimeWarning, stacklevel=3)

    def interaction_splits(self, seed: int | None = None) -> tuple[dict[str, CSR], EdgeIndex, bool]:
        """Train/valid/test :class:`~scenerec.gnn.CSR` of the stored interactions, the store's edges and whether the
        splits were assigned here (``random_per_user`` with ``seed``, default 2020, when any interaction has none)."""
        from scenerec.gnn import Interactions, random_per_user

        engine = self._engine
        index = engine._edge_index()
        edges = index.edges.get(("user", "INTERACTED", "item"))
        if edges is None or edges.empty:
            raise ConfigError(f"{engine.path}: the store has no interactions to train on")
        users, items = engine.idmap.ids("user"), engine.idmap.ids("item")
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
        return Interactions.from_frame(frame, engine.idmap), index, assigned

    def _restrict_to_scenes(
        self, splits: dict[str, CSR], item_scene: np.ndarray, scenes: Sequence[str]
    ) -> dict[str, CSR]:
        """``splits`` with the training and validation pairs of other scenes' items dropped (test kept whole)."""
        engine = self._engine
        if isinstance(scenes, str) or not scenes:
            raise ValueError("scenes must be a non-empty list of scene ids")
        keep_items = np.isin(item_scene, [engine._scene_index(s) for s in scenes])
        out = dict(splits)
        for name in ("train", "valid"):
            out[name] = splits[name].keep_columns(keep_items)
        if out["train"].nnz == 0:
            raise ConfigError(f"{engine.path}: no training interactions in scenes {', '.join(scenes)}")
        return out
