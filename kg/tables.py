"""Canonical dataset -> the node and relationship tables of the graph schema (shared by both backends)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scenerec.errors import SchemaError
from scenerec.kg.schema import NODES, check_label, check_rel
from scenerec.records import Dataset, isin


@dataclass
class EdgeTable:
    """Rows of one relationship type between one (from, to) label pair: columns ``from``, ``to``, properties."""

    rel: str
    src: str
    dst: str
    rows: pd.DataFrame

    def __post_init__(self) -> None:
        rt = check_rel(self.rel, self.src, self.dst)
        missing = [c for c in ("from", "to", *rt.columns) if c not in self.rows.columns]
        if missing:
            raise SchemaError(f"[:{self.rel}] {self.src}->{self.dst} table lacks columns {missing}")
        self.rows = self.rows[["from", "to", *rt.columns]].reset_index(drop=True)


@dataclass
class GraphTables:
    """All rows to bulk-load: one DataFrame per node label and one :class:`EdgeTable` per (type, from, to)."""

    nodes: dict[str, pd.DataFrame] = field(default_factory=dict)
    edges: list[EdgeTable] = field(default_factory=list)
    #: Optional ``embedding`` vectors per label, rows aligned with ``nodes[label]``.
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for label, df in self.nodes.items():
            nt = check_label(label)
            self.nodes[label] = df[nt.columns].reset_index(drop=True)
        for label, vectors in self.embeddings.items():
            if label not in self.nodes or vectors.ndim != 2 or len(vectors) != len(self.nodes[label]):
                raise SchemaError(f"embeddings of :{label} do not match its {len(self.nodes.get(label, []))} rows")

    @property
    def embedding_dims(self) -> dict[str, int]:
        return {label: int(v.shape[1]) for label, v in self.embeddings.items()}

    def row_counts(self) -> dict[str, int]:
        out = {label: len(df) for label, df in self.nodes.items()}
        for e in self.edges:
            out[e.rel] = out.get(e.rel, 0) + len(e.rows)
        return out

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts().values())


def _str(s: pd.Series) -> pd.Series:
    return s.astype("string").fillna("")


def build_tables(ds: Dataset, embeddings: Mapping[str, np.ndarray] | None = None) -> GraphTables:
    """The graph rows of a cleaned dataset. Requires unique ids per table (guaranteed by cleaning).

    ``embeddings`` (label -> array with one row per row of the dataset's table) become ``embedding`` properties.
    """
    nodes = {
        "Scene": ds.scenes[NODES["Scene"].columns],
        "User": ds.users[NODES["User"].columns],
        "Item": ds.items.assign(scene_confidence=np.nan)[NODES["Item"].columns],
        "Entity": ds.entities[NODES["Entity"].columns],
    }
    for label, df in nodes.items():
        dup = df["id"].duplicated()
        if dup.any():
            raise SchemaError(f"{label} id {df.loc[dup, 'id'].iloc[0]!r} occurs twice; clean the dataset first")

    edges: list[EdgeTable] = []
    inter = ds.interactions
    edges.append(
        EdgeTable(
            "INTERACTED",
            "User",
            "Item",
            pd.DataFrame(
                {
                    "from": inter["user"],
                    "to": inter["item"],
                    "timestamp": inter["timestamp"],
                    "rating": inter["rating"],
                    "weight": inter["weight"].astype("float64"),
                    "split": _str(inter["split"]),
                }
            ),
        )
    )
    scoped = ds.items[ds.items["scene"] != ""]
    edges.append(EdgeTable("IN_SCENE", "Item", "Scene", pd.DataFrame({"from": scoped["id"], "to": scoped["scene"]})))

    item_ids = pd.Index(ds.items["id"])
    label_of = lambda s: pd.Series(  # noqa: E731
        ["Item" if x else "Entity" for x in isin(s, item_ids)], index=s.index
    )
    tri = ds.triples
    hl, tl = label_of(tri["head"]), label_of(tri["tail"])
    for a in ("Item", "Entity"):
        for b in ("Item", "Entity"):
            sel = (hl == a) & (tl == b)
            if sel.any():
                t = tri[sel]
                edges.append(
                    EdgeTable(
                        "RELATED",
                        a,
                        b,
                        pd.DataFrame({"from": t["head"], "to": t["tail"], "relation": t["relation"]}),
                    )
                )

    ali = ds.alignment
    if len(ali):
        entity_ids = pd.Index(ds.entities["id"])
        user_ids = pd.Index(ds.users["id"])

        def kind(s: pd.Series) -> pd.Series:
            return pd.Series(
                [
                    "Item" if i else "Entity" if e else "User" if u else ""
                    for i, e, u in zip(isin(s, item_ids), isin(s, entity_ids), isin(s, user_ids), strict=True)
                ],
                index=s.index,
            )

        lk, rk = kind(ali["left"]), kind(ali["right"])
        for (a, b), part in ali.groupby([lk, rk]):
            check_rel("SAME_AS", str(a), str(b))
            edges.append(
                EdgeTable(
                    "SAME_AS",
                    str(a),
                    str(b),
                    pd.DataFrame(
                        {
                            "from": part["left"],
                            "to": part["right"],
                            "score": part["score"],
                            "method": part["method"],
                        }
                    ),
                )
            )
    return GraphTables(nodes=nodes, edges=[e for e in edges if len(e.rows)], embeddings=dict(embeddings or {}))
