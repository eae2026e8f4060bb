"""Incremental update: add a dataset's new rows to an existing store without rebuilding it.

:func:`update` reads a dataset (any format :func:`scenerec.loaders.load_dataset` knows) and merges it into the
live graph the way a rebuild of *both* datasets would:

* the stored graph is read back as a cleaned :class:`Dataset` (rows in id-map order), the new dataset's raw rows are
  appended after it and the concatenation goes through the same :func:`scenerec.loaders.cleaning.clean` as a
  rebuild; so a repeated item keeps its stored fields and gets its blanks filled from the update, a repeated
  interaction (same user, item and split) adds its weight and keeps the latest timestamp and the mean rating, and
  every row of the update that cleaning drops or merges is reported (the store's ``rejects.csv`` gets them);
* the difference between the merged dataset and the stored one is written: new nodes (appended to the id map, so
  every stored index keeps its meaning), new relationships, changed node and interaction properties. Only the new
  or changed texts go to the ``features`` step (the embedding cache makes even those free when seen before);
* ratings of the update are normalised with the store's own per-scene scale (``manifest.json``: ``meta.rating_scale``;
  a scene new to the store uses the update's min/max); a rating outside the stored scale is clipped to [0, 1] and
  reported (a rebuild would rescale the whole scene).

The embedded backend's update is atomic like a rebuild: the live generation is copied, the copy is changed and
``CURRENT`` switches to it only when everything succeeded. What the store holds beyond the dataset survives: the
trained model (``model/``), the run log, the aligner's ``SAME_AS`` pairs, ``RECOMMENDED`` edges and ``gnn_embedding``
vectors (the engine extends and refreshes those, see :meth:`scenerec.engine.Engine.update`).

Two rules where an update differs from a rebuild of both datasets: users the update names only in its
interactions are created even when the store was built from a ``users`` table, and a merged interaction's rating is
the mean of the stored (already averaged) rating and the new ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scenerec.errors import StoreError
from scenerec.ids import IdMap
from scenerec.kg.ladybug_store import LadybugStore
from scenerec.kg.lock import StagedGeneration, StoreLock
from scenerec.kg.rebuild import (
    FEATURES,
    GRAPH_FILE,
    IDMAP,
    MANIFEST,
    REJECTS,
    FeatureStep,
    NodeVectors,
    current_generation,
    read_manifest,
)
from scenerec.kg.schema import LABEL_OF_KIND, NODES
from scenerec.kg.store import GraphStore
from scenerec.kg.tables import EdgeTable, GraphTables, build_tables
from scenerec.loaders import LoadOptions, LoadResult, load_dataset
from scenerec.loaders.cleaning import clean, scale_ratings
from scenerec.loaders.rejects import RejectLog
from scenerec.records import Dataset, conform, isin
from scenerec.storefiles import read_idmap_file, read_npz_file, rebuild_hint

#: Node tables of a dataset and their label / id-map kind.
_NODE_TABLES = {"scenes": "Scene", "users": "User", "items": "Item", "entities": "Entity"}
_KIND = {label: kind for kind, label in LABEL_OF_KIND.items()}
#: The ``_file`` provenance of rows read back from the store (they are never reported: they come first).
STORED = "(store)"


@dataclass
class UpdateReport:
    """What :func:`update` did.

    ``added`` / ``changed``: rows per table (``items``, ``interactions``, ...); ``new_ids``: the ids appended to the
    id map per kind (``user``, ``item``, ...); ``changed_ids``: per kind, the existing nodes whose properties
    changed; ``users_with_new_interactions``: every user that gained or changed an interaction; ``load``: the
    update's own load result (its ``rejects`` hold what cleaning dropped, merged or repaired).
    """

    store: Path
    generation: str
    load: LoadResult
    added: dict[str, int]
    changed: dict[str, int]
    new_ids: dict[str, list[str]]
    changed_ids: dict[str, list[str]]
    users_with_new_interactions: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def rejects(self) -> RejectLog:
        return self.load.rejects

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable summary."""
        return {
            "store": str(self.store),
            "generation": self.generation,
            "dataset": str(self.load.path),
            "format": self.load.format,
            "added": self.added,
            "changed": self.changed,
            "new_ids": {k: len(v) for k, v in self.new_ids.items()},
            "users_with_new_interactions": len(self.users_with_new_interactions),
            "rejects": len(self.load.rejects),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "texts": sum((self.features.get("texts") or {}).values()),
            "embedded": self.features.get("encoded", 0),
        }


# ---------------------------------------------------------------------------------------------- reading back
def stored_dataset(graph: GraphStore, idmap: IdMap, name: str = "stored") -> Dataset:
    """The dataset a store holds, read back with Cypher: nodes in id-map order, interactions, ``RELATED`` triples
    and the dataset's own ``SAME_AS`` pairs (methods ``gold``/``seed``/anything the aligner did not write is not
    knowable, so the alignment table is left empty: new pairs are checked against every stored ``SAME_AS``)."""
    tables: dict[str, pd.DataFrame] = {}
    for table, label in _NODE_TABLES.items():
        cols = [c for c in NODES[label].columns if c in conform(table, pd.DataFrame()).columns]
        ret = ", ".join(f"n.{c} AS {c}" for c in cols)
        df = graph.query(f"MATCH (n:{label}) RETURN {ret}")
        order = pd.Series(np.arange(idmap.size(_KIND[label])), index=idmap.ids(_KIND[label]))
        df = df.assign(_order=df["id"].astype(str).map(order)).sort_values("_order", kind="stable")
        tables[table] = df.drop(columns="_order")
    inter = graph.query(
        "MATCH (u:User)-[r:INTERACTED]->(i:Item) RETURN u.id AS user, i.id AS item, r.timestamp AS timestamp, "
        "r.rating AS rating, r.weight AS weight, r.split AS split"
    )
    tables["interactions"] = inter
    parts = []
    for a in ("Item", "Entity"):
        for b in ("Item", "Entity"):
            df = graph.query(
                f"MATCH (h:{a})-[r:RELATED]->(t:{b}) RETURN h.id AS head, r.relation AS relation, t.id AS tail"
            )
            parts.append(df)
    tables["triples"] = pd.concat(parts, ignore_index=True)
    return Dataset(name, **tables)


def _same_as_pairs(graph: GraphStore) -> set[tuple[str, str]]:
    df = graph.query("MATCH (a)-[r:SAME_AS]->(b) RETURN a.id AS a, b.id AS b")
    return set(zip(df["a"].astype(str), df["b"].astype(str), strict=True))


# ---------------------------------------------------------------------------------------------- merging
def _scene_scales(manifest: dict[str, Any]) -> dict[str, tuple[float, float]]:
    scales = (manifest.get("meta") or {}).get("rating_scale") or {}
    return {str(s): (float(v[0]), float(v[1])) for s, v in scales.items() if isinstance(v, (list, tuple))}


def _prepare_update(
    raw: Dataset,
    stored: Dataset,
    rejects: RejectLog,
    options: LoadOptions,
    scales: dict[str, tuple[float, float]],
) -> tuple[Dataset, dict[str, list[float]]]:
    """The update's raw tables made comparable with the stored (clean) ones: the ``min_rating`` filter on raw
    ratings, then ratings normalised with the store's scale per scene. Returns them and the scales of new scenes."""
    inter = raw.interactions.copy()
    if options.min_rating is not None:
        low = inter["rating"].notna() & (inter["rating"] < options.min_rating)
        rejects.add_frame(
            inter[low], f"rating below min_rating={options.min_rating}", column="rating", id_column="user"
        )
        inter = inter[~low]
    item_scene = pd.concat(
        [
            pd.Series(stored.items["scene"].to_numpy(), index=stored.items["id"].to_numpy()),
            pd.Series(raw.items["scene"].to_numpy(), index=raw.items["id"].astype("string").str.strip().to_numpy()),
        ]
    )
    item_scene = item_scene[~item_scene.index.duplicated(keep="first")]
    scene = inter["item"].map(item_scene).fillna("").astype(str)
    rating = inter["rating"].astype("Float64")
    out = pd.Series(pd.NA, index=inter.index, dtype="Float64")
    new_scales: dict[str, list[float]] = {}
    for s, idx in scene.groupby(scene).groups.items():
        r = rating.loc[idx]
        if r.notna().sum() == 0:
            continue
        if options.rating_scale is not None:
            lo, hi = options.rating_scale
        elif str(s) in scales:
            lo, hi = scales[str(s)]
        else:
            lo, hi = float(r.min()), float(r.max())
            new_scales[str(s)] = [lo, hi]
        norm, outside = scale_ratings(r, lo, hi)
        rejects.add_frame(
            inter.loc[outside[outside].index],
            f"rating outside the store's scale [{lo:g}, {hi:g}] of scene {s!r}: clipped (a rebuild rescales)",
            action="repaired",
            column="rating",
            id_column="user",
        )
        out.loc[idx] = norm
    inter["rating"] = out
    return replace(raw, interactions=inter), new_scales


def merge(stored: Dataset, raw: Dataset, rejects: RejectLog) -> Dataset:
    """Clean the stored tables followed by the update's raw rows (ratings already on the stored scale): what a
    rebuild of both datasets would hold. Users that the update names only in its interactions become user rows."""

    def tagged(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(_file=STORED, _line=pd.NA)

    tables: dict[str, pd.DataFrame] = {}
    for name in Dataset.TABLE_NAMES:
        new = raw.table(name)
        if name == "users" and len(stored.users) and not len(new):
            known = pd.Index(stored.items["id"]).append(pd.Index(raw.items["id"].astype("string").str.strip()))
            inter = raw.interactions[isin(raw.interactions["item"].astype("string").str.strip(), known)]
            new = pd.DataFrame({"id": pd.unique(inter["user"].astype("string").str.strip())})
        if name == "alignment":
            tables[name] = conform(name, new)
            continue
        tables[name] = pd.concat([conform(name, tagged(stored.table(name))), conform(name, new)], ignore_index=True)
    union = Dataset(raw.name or stored.name, meta=dict(raw.meta), **tables)
    return clean(union, rejects, LoadOptions(rating_scale=(0.0, 1.0)))


@dataclass
class Delta:
    """New rows and changed rows of the merged dataset against the stored one."""

    new_nodes: dict[str, pd.DataFrame]  # label -> rows (dataset columns)
    changed_nodes: dict[str, pd.DataFrame]
    new_interactions: pd.DataFrame
    changed_interactions: pd.DataFrame
    new_triples: pd.DataFrame
    new_alignment: pd.DataFrame


def _as_text(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    return df[cols].astype(object).where(df[cols].notna(), "").astype(str)


def diff(stored: Dataset, merged: Dataset, same_as: set[tuple[str, str]]) -> Delta:
    """What ``merged`` adds to or changes in ``stored`` (see :class:`Delta`)."""
    new_nodes, changed_nodes = {}, {}
    for table, label in _NODE_TABLES.items():
        old, now = stored.table(table), merged.table(table)
        known = isin(now["id"], pd.Index(old["id"]))
        new_nodes[label] = now[~known].reset_index(drop=True)
        cols = [c for c in now.columns if c != "id"]
        both = now[known].merge(old, on="id", how="left", suffixes=("", "_old"))
        if cols and len(both):
            a = _as_text(both, cols).to_numpy()
            b = _as_text(both, [f"{c}_old" for c in cols]).to_numpy()
            moved = (a != b).any(axis=1)
            changed_nodes[label] = both.loc[moved, ["id", *cols]].reset_index(drop=True)
        else:
            changed_nodes[label] = now.iloc[0:0]
    key = ["user", "item", "split"]
    old_i = stored.interactions.assign(split=stored.interactions["split"].fillna(""))
    now_i = merged.interactions.assign(split=merged.interactions["split"].fillna(""))
    both = now_i.merge(old_i, on=key, how="left", suffixes=("", "_old"), indicator=True)
    new_i = both[both["_merge"] == "left_only"][now_i.columns].reset_index(drop=True)
    seen = both[both["_merge"] == "both"]

    def differs(a: pd.Series, b: pd.Series) -> np.ndarray:
        av = pd.to_numeric(a, errors="coerce").astype("float64").to_numpy()
        bv = pd.to_numeric(b, errors="coerce").astype("float64").to_numpy()
        both_na = np.isnan(av) & np.isnan(bv)
        return ~both_na & ~np.isclose(av, bv, rtol=1e-12, atol=1e-12, equal_nan=False)

    moved = np.zeros(len(seen), dtype=bool)
    for c in ("weight", "timestamp", "rating"):
        moved |= differs(seen[c], seen[f"{c}_old"])
    changed_i = seen[moved][now_i.columns].reset_index(drop=True)
    tk = ["head", "relation", "tail"]
    t = merged.triples.merge(stored.triples[tk].drop_duplicates(), on=tk, how="left", indicator=True)
    new_t = t[t["_merge"] == "left_only"][tk].reset_index(drop=True)
    ali = merged.alignment
    pairs = list(zip(ali["left"].astype(str), ali["right"].astype(str), strict=True))
    new_a = ali[np.asarray([p not in same_as for p in pairs], dtype=bool)].reset_index(drop=True)
    return Delta(new_nodes, changed_nodes, new_i, changed_i, new_t, new_a)


def _select_edges(tables: GraphTables, delta: Delta) -> list[EdgeTable]:
    """The relationship rows of ``tables`` (built from the merged dataset) that ``delta`` adds."""
    new_items = set(delta.new_nodes["Item"]["id"].astype(str))
    inter = {tuple(r) for r in delta.new_interactions[["user", "item", "split"]].astype(str).to_numpy()}
    triples = {tuple(r) for r in delta.new_triples[["head", "relation", "tail"]].astype(str).to_numpy()}
    pairs = {tuple(r) for r in delta.new_alignment[["left", "right"]].astype(str).to_numpy()}
    out = []
    for e in tables.edges:
        rows = e.rows
        f, t = rows["from"].astype(str), rows["to"].astype(str)
        if e.rel == "INTERACTED":
            keep = [k in inter for k in zip(f, t, rows["split"].astype(str), strict=True)]
        elif e.rel == "IN_SCENE":
            keep = [i in new_items for i in f]
        elif e.rel == "RELATED":
            keep = [k in triples for k in zip(f, rows["relation"].astype(str), t, strict=True)]
        elif e.rel == "SAME_AS":
            keep = [k in pairs for k in zip(f, t, strict=True)]
        else:  # pragma: no cover - build_tables writes no other type
            raise StoreError(f"unexpected relationship type {e.rel!r} in an update")
        part = rows[np.asarray(keep, dtype=bool)]
        if len(part):
            out.append(EdgeTable(e.rel, e.src, e.dst, part.reset_index(drop=True)))
    return out


# ---------------------------------------------------------------------------------------------- the update
def update(
    dataset: str | Path,
    store: str | Path,
    *,
    format: str | None = None,
    options: LoadOptions | None = None,
    features: FeatureStep | None = None,
    feature_identity: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    keep_generations: int = 2,
    wait: float = 0.0,
    finish: Callable[[Path, UpdateReport], None] | None = None,
) -> UpdateReport:
    """Add ``dataset`` to the live graph of ``store`` (see the module docstring); returns an :class:`UpdateReport`.

    ``features``: the text-embedding step (as for :func:`scenerec.kg.rebuild`); required when the store has text
    features, and its encoder must be the store's (``feature_identity``, checked against ``manifest.json``). The
    embedded backend gets a new generation (atomic, the old one kept); a Neo4j-backed store is refused
    (:class:`StoreError`): rebuild it instead.

    The update holds the store's writer lock (:class:`scenerec.kg.lock.StoreLock`, waiting ``wait`` seconds for
    another writer). ``finish(folder, report)``, when given, runs on the complete new generation folder before it
    becomes live (the engine refreshes the trained model's ``RECOMMENDED`` edges there): readers see the new graph
    and its refreshed recommendations together, and a failing ``finish`` leaves the old generation live.
    """
    store = Path(store)
    with StoreLock(store, "update", wait=wait):
        return _update(dataset, store, format, options, features, feature_identity, progress, keep_generations, finish)


def _update(
    dataset: str | Path,
    store: Path,
    format: str | None,
    options: LoadOptions | None,
    features: FeatureStep | None,
    feature_identity: str | None,
    progress: Callable[[str, int, int], None] | None,
    keep_generations: int,
    finish: Callable[[Path, UpdateReport], None] | None,
) -> UpdateReport:
    options = options or LoadOptions()
    seconds: dict[str, float] = {}
    live = current_generation(store)
    manifest = read_manifest(store)
    if manifest.get("backend", "ladybug") != "ladybug":
        raise StoreError(
            f"{store}: incremental update is implemented for the embedded (LadybugDB) backend; "
            "rebuild a Neo4j-backed store with `scenerec rebuild`"
        )
    has_features = (live / FEATURES).is_file()
    info = manifest.get("features") or {}
    if has_features and features is None:
        raise StoreError(f"{store}: the store has text embeddings; an update needs the text encoder to embed new texts")
    if has_features and feature_identity is not None and info.get("identity") not in (None, feature_identity):
        raise StoreError(
            f"{store}: its texts were embedded with {info.get('model')!r} ({info.get('identity')}); "
            f"the update's encoder is {feature_identity}: use the same model or rebuild"
        )
    if progress:
        progress("read", 0, 0)
    t0 = time.perf_counter()
    result = load_dataset(dataset, format=format, options=replace(options, clean=False))
    rejects = result.rejects
    idmap = read_idmap_file(live / IDMAP, rebuild_hint(store))
    with LadybugStore(live / GRAPH_FILE, read_only=True) as graph:
        stored = stored_dataset(graph, idmap, name=str(manifest.get("dataset", {}).get("name", "stored")))
        same_as = _same_as_pairs(graph)
    raw, new_scales = _prepare_update(result.dataset, stored, rejects, options, _scene_scales(manifest))
    merged = merge(stored, raw, rejects)
    delta = diff(stored, merged, same_as)
    result = replace(result, dataset=merged)
    seconds["load+merge"] = time.perf_counter() - t0

    vectors: dict[str, np.ndarray] = {}
    feat_info: dict[str, Any] = {}
    if has_features and features is not None:
        t0 = time.perf_counter()
        to_embed = {
            label: pd.concat([delta.new_nodes[label], delta.changed_nodes[label]], ignore_index=True)
            for label in ("Scene", "Item", "Entity")
        }
        ds = Dataset(merged.name, scenes=to_embed["Scene"], items=to_embed["Item"], entities=to_embed["Entity"])
        nv: NodeVectors = features(ds, store)
        feat_info = nv.info
        if feature_identity is None and info.get("identity") not in (None, nv.info.get("identity")):
            raise StoreError(
                f"{store}: its texts were embedded with {info.get('identity')}, the update's encoder is "
                f"{nv.info.get('identity')}: use the same model or rebuild"
            )
        vectors = nv.vectors
        seconds["features"] = time.perf_counter() - t0

    # ---- write a new generation: a copy of the live one, changed
    t0 = time.perf_counter()
    with StagedGeneration(store, base=live, keep=keep_generations) as staged:
        building = staged.path
        new_idmap = IdMap.from_dict(idmap.to_dict())
        for label, rows in delta.new_nodes.items():
            new_idmap.add(_KIND[label], rows["id"].astype(str).tolist())
        full = build_tables(merged)
        nodes = {
            label: full.nodes[label][isin(full.nodes[label]["id"], pd.Index(rows["id"]))].reset_index(drop=True)
            for label, rows in delta.new_nodes.items()
        }
        embeddings = {}
        for label, v in vectors.items():
            n_new = len(delta.new_nodes[label])
            if n_new:
                order = pd.Index(delta.new_nodes[label]["id"].astype(str))
                embeddings[label] = v[:n_new][order.get_indexer(nodes[label]["id"].astype(str))]
        tables = GraphTables(nodes=nodes, edges=_select_edges(full, delta), embeddings=embeddings)
        total = tables.total_rows

        def step(stage: str, rows: int) -> None:
            if progress:
                progress(stage, rows, total)

        with LadybugStore(building / GRAPH_FILE) as graph:
            stats = graph.load_tables(tables, progress=step)
            for label, rows in delta.changed_nodes.items():
                if len(rows):
                    cols = [c for c in NODES[label].columns if c in rows.columns]
                    graph.set_node_properties(label, rows[cols])
                    if label in vectors:
                        n_new = len(delta.new_nodes[label])
                        graph.set_embeddings(label, rows["id"].astype(str).tolist(), vectors[label][n_new:])
            if len(delta.changed_interactions):
                graph.set_interaction_properties(delta.changed_interactions)
            counts = graph.counts()
            scenes = graph.scene_counts().to_dict("records")
        seconds["graph"] = time.perf_counter() - t0

        new_idmap.save(building / IDMAP)
        if has_features:
            _extend_features(building / FEATURES, idmap, new_idmap, delta, vectors)
        old_rejects = pd.read_csv(building / REJECTS) if (building / REJECTS).is_file() else None
        new_rejects = rejects.to_frame()
        both = new_rejects if old_rejects is None else pd.concat([old_rejects, new_rejects], ignore_index=True)
        both.to_csv(building / REJECTS, index=False)
        added = {table: len(delta.new_nodes[label]) for table, label in _NODE_TABLES.items()}
        added.update(
            interactions=len(delta.new_interactions),
            triples=len(delta.new_triples),
            alignment=len(delta.new_alignment),
        )
        changed = {table: len(delta.changed_nodes[label]) for table, label in _NODE_TABLES.items()}
        changed["interactions"] = len(delta.changed_interactions)
        meta = dict(manifest.get("meta") or {})
        if new_scales:
            meta["rating_scale"] = {**(meta.get("rating_scale") or {}), **new_scales}
        manifest.update(
            {
                "counts": counts,
                "scenes": scenes,
                "tables": {k: len(merged.table(k)) for k in Dataset.TABLE_NAMES},
                "rejects": len(both),
                "meta": meta,
            }
        )
        manifest.setdefault("updates", []).append(
            {
                "time": datetime.now(UTC).isoformat(),
                "dataset": str(Path(dataset).resolve()),
                "format": result.format,
                "added": added,
                "changed": changed,
                "rejects": len(rejects),
                "from_generation": live.name,
                "load_seconds": stats.seconds,
            }
        )
        (building / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        interaction_users = pd.concat([delta.new_interactions["user"], delta.changed_interactions["user"]])
        report = UpdateReport(
            store=store,
            generation="",
            load=result,
            added=added,
            changed=changed,
            new_ids={_KIND[label]: rows["id"].astype(str).tolist() for label, rows in delta.new_nodes.items()},
            changed_ids={_KIND[label]: rows["id"].astype(str).tolist() for label, rows in delta.changed_nodes.items()},
            users_with_new_interactions=[str(u) for u in pd.unique(interaction_users.astype(str))],
            seconds=seconds,
            features=feat_info,
        )
        if finish is not None:
            finish(building, report)
    report.generation = staged.name
    return report


def _extend_features(path: Path, old: IdMap, new: IdMap, delta: Delta, vectors: dict[str, np.ndarray]) -> None:
    """Rewrite ``features.npz``: the changed nodes' rows replaced, the new nodes' rows appended (id-map order)."""
    arrays: dict[str, Any] = read_npz_file(path, rebuild_hint(path.parent.parent))
    for label, v in vectors.items():
        kind = _KIND[label]
        n_new = len(delta.new_nodes[label])
        base = arrays.get(kind, np.zeros((old.size(kind), v.shape[1]), dtype=np.float32))
        changed = delta.changed_nodes[label]["id"].astype(str).tolist()
        if changed:
            base = base.copy()
            base[old.indices(kind, changed)] = v[n_new:]
        added = np.zeros((new.size(kind) - old.size(kind), base.shape[1]), dtype=np.float32)
        if n_new:
            idx = new.indices(kind, delta.new_nodes[label]["id"].astype(str).tolist()) - old.size(kind)
            added[idx] = v[:n_new]
        arrays[kind] = np.concatenate([base, added]).astype(np.float32)
    np.savez(path, **arrays)
