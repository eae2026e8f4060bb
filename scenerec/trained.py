"""The trained recommender a store generation serves, as one object: :class:`TrainedModel`.

A model trained by :meth:`Trainer.fit <scenerec.trainer.Trainer.fit>` is saved in the generation's :data:`MODEL_DIR`
folder: the artifact of :func:`scenerec.gnn.save_artifact` (weights, hyper-parameters, the id map it was trained on)
plus :data:`SPLITS_FILE`, the train/valid/test pairs, the item -> scene map and the item links it was trained with.
:meth:`TrainedModel.load` reads it back; when an update appended nodes since training, the model is extended to them
(:class:`scenerec.gnn.ExtendedRecommender`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scenerec.errors import ConfigError, StoreFileError
from scenerec.ids import NODE_KINDS, IdMap
from scenerec.ranking import top_k
from scenerec.storefiles import read_npz_file

if TYPE_CHECKING:
    import torch

    from scenerec.gnn import CSR, FitResult, GraphInputs, Recommender, TrainConfig
    from scenerec.kg import EdgeIndex

__all__ = ["MODEL_DIR", "SPLITS_FILE", "TrainedModel", "graph_inputs"]

#: Folder of the trained recommender inside the live generation; :data:`SPLITS_FILE` inside it holds the
#: train/valid/test pairs and the item -> scene map the model was trained with.
MODEL_DIR = "model"
SPLITS_FILE = "splits.npz"

#: Item links as (edges (2, L) int64 item indices, weights (L,) float32).
Links = tuple[np.ndarray, np.ndarray]


@dataclass
class TrainedModel:
    """A trained recommender with what serving it needs.

    ``name``: its model name (:data:`scenerec.registry.MODELS`); ``label``: the trained variant in words (the run
    log's); ``splits``: the ``train``/``valid``/``test`` :class:`~scenerec.gnn.CSR` (users x items) it was trained
    and is evaluated with; ``item_scene``: (n_items,) scene index per item (-1: none); ``embeddings``: the user
    (n_users, d) and item (n_items, d) representations its scores are computed from, taken once in eval mode;
    ``links``: the item links it was trained with, or None.
    """

    name: str
    label: str
    recommender: Recommender
    splits: dict[str, CSR]
    item_scene: np.ndarray
    embeddings: tuple[torch.Tensor, torch.Tensor]
    links: Links | None = None
    _serving: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of(
        cls,
        name: str,
        recommender: Recommender,
        splits: dict[str, CSR],
        item_scene: np.ndarray,
        *,
        label: str | None = None,
        links: Links | None = None,
    ) -> TrainedModel:
        """``recommender`` (switched to eval mode) with its embeddings computed once; ``label`` defaults to ``name``."""
        import torch

        recommender.eval()
        with torch.no_grad():
            user_emb, item_emb = recommender()
        return cls(
            name=name,
            label=name if label is None else label,
            recommender=recommender,
            splits=splits,
            item_scene=item_scene,
            embeddings=(user_emb.detach(), item_emb.detach()),
            links=links,
        )

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """Scores (b, n_items) for the user indices ``users`` (b,)."""
        return self.recommender.score(users, *self.embeddings).detach()

    def train_items(self, user: int) -> np.ndarray:
        """The item indices of user index ``user``'s training pairs (ascending)."""
        train = self.splits["train"]
        return train.indices[train.indptr[user] : train.indptr[user + 1]]

    def scene_items(self, scene: int) -> np.ndarray:
        """The item indices of scene index ``scene``, ascending (computed once per scene; do not modify)."""
        key = ("items", scene)
        if key not in self._serving:
            found = np.flatnonzero(self.item_scene == scene)
            found.flags.writeable = False
            self._serving[key] = found
        items: np.ndarray = self._serving[key]
        return items

    def scene_seen(self, users: np.ndarray, scene: int) -> tuple[np.ndarray, np.ndarray]:
        """The training items of scene index ``scene`` of the user indices ``users`` (b,), as (position in
        ``users``, position in :meth:`scene_items`) pairs: what a recommendation leaves out."""
        candidates = self.scene_items(scene)
        local, seen = self.splits["train"].select(users)
        if not len(candidates):
            return local[:0], seen[:0]
        col = np.searchsorted(candidates, seen)
        col[col == len(candidates)] = 0
        own = candidates[col] == seen
        return local[own], col[own]

    def scene_scores(self, users: np.ndarray, scene: int, positions: np.ndarray | None = None) -> np.ndarray:
        """Scores (b, n) float32 of the items of scene index ``scene`` (:meth:`scene_items`; only those at
        ``positions`` in it when given, n = len(positions)) for the user indices ``users`` (b,): the columns of
        :meth:`scores` (equal up to float32 rounding), from
        :meth:`Recommender.score_items <scenerec.gnn.Recommender.score_items>` with the scene's rows of the item
        representations kept between calls. A new array the caller may modify."""
        import torch

        key = ("rows", scene)
        if key not in self._serving:
            items = torch.from_numpy(self.scene_items(scene).astype(np.int64))
            self._serving[key] = (items, self.embeddings[1][items].contiguous())
        items, rows = self._serving[key]
        if positions is not None:  # gathered by numpy: torch's multi-threaded gather waits for a busy core
            chosen = np.asarray(positions, dtype=np.int64)
            items = torch.from_numpy(items.numpy()[chosen])
            rows = torch.from_numpy(rows.numpy()[chosen]) if rows.device.type == "cpu" else rows[chosen]
        with torch.no_grad():
            out = self.recommender.score_items(torch.from_numpy(users), items, *self.embeddings, items_emb=rows)
        fresh = out._base is None and out.is_contiguous()  # not a view of a kept tensor (e.g. popularity's counts)
        return np.array(out.detach().cpu().numpy(), dtype=np.float32, copy=not fresh)

    def scene_top_k(
        self, users: np.ndarray, scene: int, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The exact top-``k`` items of scene index ``scene`` for the user indices ``users`` (every item of the scene
        scored at once, the users' training items left out, ranked by :func:`scenerec.ranking.top_k`):
        ``(row, item, score, rank)`` per chosen pair, rows ascending, ranks ascending within a row (``row``: position
        in ``users``; ``score`` float64)."""
        block = self.scene_scores(users, scene)
        seen_row, seen_col = self.scene_seen(users, scene)
        block[seen_row, seen_col] = -np.inf
        pos, valid = top_k(block, k)
        r, c = np.nonzero(valid)
        chosen = pos[r, c]
        return r, self.scene_items(scene)[chosen], block[r, chosen].astype(np.float64), c.astype(np.int64) + 1

    def save(self, folder: Path, config: TrainConfig, result: FitResult, idmap: IdMap, extra: dict[str, Any]) -> None:
        """Write the model into ``folder`` (replacing what is there): the artifact of
        :func:`scenerec.gnn.save_artifact` (``idmap``: the nodes it was trained on; ``extra``: kept in its
        ``meta.json``, ``extra["label"]`` read back as :attr:`label`) and :data:`SPLITS_FILE`."""
        from scenerec.gnn import save_artifact

        shutil.rmtree(folder, ignore_errors=True)
        save_artifact(folder, self.name, self.recommender, config, result, idmap, extra=extra)
        arrays = {"item_scene": self.item_scene}
        for split, csr in self.splits.items():
            arrays[f"{split}_users"], arrays[f"{split}_items"] = csr.rows(), csr.indices
        if self.links is not None:
            arrays["links"], arrays["link_weights"] = self.links
        np.savez(folder / SPLITS_FILE, **arrays)  # type: ignore[arg-type]  # numpy stubs read ** as allow_pickle

    @classmethod
    def load(
        cls, folder: Path, *, idmap: IdMap, features: dict[str, np.ndarray], index: EdgeIndex, fix: str
    ) -> TrainedModel:
        """The model saved in ``folder`` (:meth:`save`), served on the nodes of ``idmap`` with the text
        ``features`` and the graph ``index`` of the store (both in ``idmap`` order).

        When ``idmap`` has nodes appended since training (an update), the model is extended to them (new items from
        their text and scene, new users from their histories; see :func:`_extend`). :class:`ConfigError` when the
        model was trained on other nodes or other item scenes, :class:`StoreFileError` (with the hint ``fix``) when
        a file is damaged or the weights do not fit the hyper-parameters.
        """
        from scenerec.gnn import load_artifact
        from scenerec.registry import load_model

        state, meta = load_artifact(folder, fix)
        trained: IdMap = meta["idmap"]
        grown = trained != idmap
        if grown and not _is_prefix(trained, idmap):
            raise ConfigError(f"{folder}: the model was trained on other nodes than the store holds; run fit again")
        splits, item_scene, links = _read_splits(folder / SPLITS_FILE, trained, fix)
        old_index = _restrict_index(index, trained) if grown else index
        old_features = {k: v[: trained.size(k)] for k, v in features.items()}
        inputs = graph_inputs(old_index, old_features, splits["train"], links)
        if not np.array_equal(inputs.item_scene, item_scene):
            raise ConfigError(f"{folder}: item scenes changed since the model was trained; run fit again")
        try:
            model = load_model(meta, state, inputs)
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:  # weights of another model, sizes that differ
            reason = " ".join(str(exc).split())[:160]
            raise StoreFileError(folder / "weights.pt", f"does not match meta.json ({reason})", fix) from None
        if grown:
            model, splits, item_scene = _extend(model, trained, splits, idmap, features, index)
        label = str((meta.get("extra") or {}).get("label") or meta["model"])
        return cls.of(str(meta["model"]), model, splits, item_scene, label=label, links=links)


def graph_inputs(
    index: EdgeIndex, features: dict[str, np.ndarray], train: CSR, links: Links | None = None
) -> GraphInputs:
    """The model inputs: training pairs ``train``, scenes, the text ``features`` and the knowledge-graph facts of
    ``index``, plus the item-item ``links`` (edges (2, L), weights (L,)) when given."""
    from scenerec.gnn import build_inputs

    return build_inputs(index, train, features, item_links=links)


def _read_splits(path: Path, trained: IdMap, fix: str) -> tuple[dict[str, CSR], np.ndarray, Links | None]:
    """The train/valid/test pairs, item scenes and item links a model was saved with (:meth:`TrainedModel.save`),
    checked against the sizes of the id map it was trained on; a :class:`StoreFileError` naming ``path`` otherwise."""
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


def _extend(
    model: Recommender,
    trained: IdMap,
    splits: dict[str, CSR],
    idmap: IdMap,
    features: dict[str, np.ndarray],
    index: EdgeIndex,
) -> tuple[Recommender, dict[str, CSR], np.ndarray]:
    """Serve the nodes an update added after training (:class:`scenerec.gnn.ExtendedRecommender`): new items
    from their text and scene, new users from their histories. The splits grow to the store's size; the new
    interactions join the split they are stored with (none: ``train``, i.e. known history, not test)."""
    import torch

    from scenerec.gnn import CSR, ExtendedRecommender

    n_users, n_items = idmap.size("user"), idmap.size("item")
    old_users, old_items = trained.size("user"), trained.size("item")
    model.eval()
    with torch.no_grad():
        new = np.arange(old_items, n_items)
        text = features.get("item")
        if len(new) and model.encodes_text and text is not None:
            vectors = model.encode_new_items(torch.from_numpy(text[new]), torch.from_numpy(index.item_scene[new]))
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
