"""Canonical records: the one data model every loader produces and every later stage consumes.

Records exist in two equivalent forms:

* small frozen dataclasses (:class:`Scene`, :class:`User`, :class:`Item`, :class:`Entity`, :class:`Interaction`,
  :class:`Triple`, :class:`Alignment`) for code that handles a few rows at a time, and
* one :class:`Dataset` of pandas DataFrames, one table per record type with exactly the columns of
  :data:`TABLES`, for bulk work (loading a million interactions row by row would be far too slow).

Ids are strings everywhere. ``attributes`` are stored as a JSON object string in the tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import pandas as pd

from scenerec.errors import ConflictingIdError, DataFormatError

#: Values of ``Interaction.split`` (empty: not fixed by the dataset).
SPLITS = ("train", "valid", "test", "")


@dataclass(frozen=True, slots=True)
class Scene:
    """A domain (e-commerce, news, video, ...) with its own items and behaviour."""

    id: str
    name: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class User:
    """A person; the same user id in two scenes is the same person (a shared user)."""

    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Item:
    """A recommendable thing; it belongs to exactly one scene."""

    id: str
    scene: str
    title: str = ""
    description: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entity:
    """A knowledge-graph node that is not an item (brand, category, actor, ...).

    ``scene`` is set when the entity belongs to one scene's own KG (as in DBP15K) and empty when scenes share it.
    """

    id: str
    type: str = ""
    name: str = ""
    scene: str = ""


@dataclass(frozen=True, slots=True)
class Interaction:
    """A user's behaviour on an item. ``weight`` counts merged repeats; ``split`` is train/valid/test or empty."""

    user: str
    item: str
    timestamp: int | None = None
    rating: float | None = None
    weight: float = 1.0
    split: str = ""


@dataclass(frozen=True, slots=True)
class Triple:
    """A knowledge-graph fact ``head -relation-> tail``; head and tail are item or entity ids."""

    head: str
    relation: str
    tail: str


@dataclass(frozen=True, slots=True)
class Alignment:
    """``left`` and ``right`` are the same thing under two ids (across scenes)."""

    left: str
    right: str
    score: float = 1.0
    method: str = "given"


#: Table name -> (record class, column -> pandas dtype). The DataFrames of a :class:`Dataset` have exactly these.
TABLES: dict[str, tuple[type, dict[str, str]]] = {
    "scenes": (Scene, {"id": "string", "name": "string", "description": "string"}),
    "users": (User, {"id": "string", "attributes": "string"}),
    "items": (
        Item,
        {
            "id": "string",
            "scene": "string",
            "title": "string",
            "description": "string",
            "attributes": "string",
        },
    ),
    "entities": (Entity, {"id": "string", "type": "string", "name": "string", "scene": "string"}),
    "interactions": (
        Interaction,
        {
            "user": "string",
            "item": "string",
            "timestamp": "Int64",
            "rating": "Float64",
            "weight": "float64",
            "split": "string",
        },
    ),
    "triples": (Triple, {"head": "string", "relation": "string", "tail": "string"}),
    "alignment": (Alignment, {"left": "string", "right": "string", "score": "float64", "method": "string"}),
}


def empty_table(name: str) -> pd.DataFrame:
    """An empty DataFrame with the canonical columns and dtypes of table ``name``."""
    _, cols = TABLES[name]
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in cols.items()})


#: Optional provenance columns a raw (not yet cleaned) table may carry: source file and 1-based line.
PROVENANCE = ("_file", "_line")


def conform(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with exactly the canonical columns of ``name``, in order, with canonical dtypes.

    Missing optional columns are filled with their default (empty string, NA, weight 1.0, score 1.0).
    Provenance columns (:data:`PROVENANCE`) are kept when present so that cleaning can report lines.
    """
    _, cols = TABLES[name]
    out: dict[str, pd.Series] = {}
    n = len(df)
    for col, dtype in cols.items():
        if col in df.columns:
            s = df[col]
        elif dtype == "string":
            s = pd.Series([""] * n, index=df.index)
        elif col in ("weight", "score"):
            s = pd.Series([1.0] * n, index=df.index)
        else:
            s = pd.Series([None] * n, index=df.index)
        s = s.astype(dtype)
        if dtype == "string":
            s = s.fillna("")
        out[col] = s
    if "_file" in df.columns:
        out["_file"] = df["_file"].astype("string")
    if "_line" in df.columns:
        out["_line"] = df["_line"].astype("Int64")
    return pd.DataFrame(out).reset_index(drop=True)


def attributes_json(attrs: Mapping[str, Any]) -> str:
    """Serialise an attribute mapping the way the tables hold it (sorted keys, NaN/None dropped)."""
    clean = {str(k): v for k, v in attrs.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
    return json.dumps(clean, sort_keys=True, ensure_ascii=False) if clean else ""


def parse_attributes(text: str) -> dict[str, Any]:
    return dict(json.loads(text)) if text else {}


def _na(v: Any) -> Any:
    return None if v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v


@dataclass
class Dataset:
    """All canonical tables of one multi-scene dataset (see :data:`TABLES` for the columns)."""

    name: str
    scenes: pd.DataFrame = field(default_factory=lambda: empty_table("scenes"))
    users: pd.DataFrame = field(default_factory=lambda: empty_table("users"))
    items: pd.DataFrame = field(default_factory=lambda: empty_table("items"))
    entities: pd.DataFrame = field(default_factory=lambda: empty_table("entities"))
    interactions: pd.DataFrame = field(default_factory=lambda: empty_table("interactions"))
    triples: pd.DataFrame = field(default_factory=lambda: empty_table("triples"))
    alignment: pd.DataFrame = field(default_factory=lambda: empty_table("alignment"))
    #: Free-form facts about the data (e.g. ``rating_scale`` per scene, the source format).
    meta: dict[str, Any] = field(default_factory=dict)

    TABLE_NAMES: ClassVar[tuple[str, ...]] = tuple(TABLES)

    def __post_init__(self) -> None:
        for t in self.TABLE_NAMES:
            setattr(self, t, conform(t, getattr(self, t)))

    def table(self, name: str) -> pd.DataFrame:
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
        df: pd.DataFrame = getattr(self, name)
        return df

    def without_provenance(self) -> Dataset:
        """A copy whose tables hold only the canonical columns."""
        tables = {t: self.table(t).drop(columns=[c for c in PROVENANCE if c in self.table(t)]) for t in TABLES}
        return Dataset(self.name, meta=dict(self.meta), **tables)

    def records(self, name: str) -> Iterator[Any]:
        """Iterate table ``name`` as record dataclasses (convenient for small tables and tests)."""
        cls, cols = TABLES[name]
        names = [f.name for f in fields(cls)]
        for row in self.table(name)[list(cols)].itertuples(index=False):
            values = {c: _na(v) for c, v in zip(cols, row, strict=True)}
            if "attributes" in values:
                values["attributes"] = parse_attributes(values["attributes"] or "")
            yield cls(**{k: values[k] for k in names})

    @classmethod
    def from_records(cls, name: str, **tables: list[Any]) -> Dataset:
        """Build a dataset from lists of record dataclasses, e.g. ``Dataset.from_records("x", items=[Item(...)])``."""
        frames: dict[str, pd.DataFrame] = {}
        for t, rows in tables.items():
            if t not in TABLES:
                raise KeyError(f"unknown table {t!r}; expected one of {', '.join(TABLES)}")
            _, cols = TABLES[t]
            data = []
            for r in rows:
                d = {c: getattr(r, c) for c in cols}
                if "attributes" in d:
                    d["attributes"] = attributes_json(d["attributes"])
                data.append(d)
            frames[t] = pd.DataFrame(data, columns=list(cols))
        return cls(name, **frames)

    def scene_ids(self) -> list[str]:
        """Scenes declared or used by items, in first-seen order."""
        seen = dict.fromkeys(self.scenes["id"].tolist())
        seen.update(dict.fromkeys(s for s in self.items["scene"].tolist() if s))
        return list(seen)

    def check_item_scenes(self, source: str = "items") -> None:
        """Raise :class:`ConflictingIdError` naming both scenes if an item id is declared in two scenes."""
        pairs = self.items[["id", "scene"]].drop_duplicates()
        dup = pairs[pairs["id"].duplicated(keep=False)]
        if len(dup):
            ident = dup["id"].iloc[0]
            scenes = sorted(dup.loc[dup["id"] == ident, "scene"].tolist())
            raise ConflictingIdError(
                f"item id {ident!r} is declared in two scenes: {scenes[0]!r} and {scenes[1]!r} "
                "(an item belongs to one scene; give the copies distinct ids and link them in `alignment`)",
                file=source,
            )

    def counts(self) -> dict[str, int]:
        return {t: len(self.table(t)) for t in self.TABLE_NAMES}

    def validate(self) -> None:
        """Check referential integrity that cleaning guarantees; raise :class:`DataFormatError` otherwise."""
        self.check_item_scenes()
        items = set(self.items["id"].tolist())
        bad = self.interactions.loc[~self.interactions["item"].isin(items), "item"]
        if len(bad):
            raise DataFormatError(f"interaction references unknown item id {bad.iloc[0]!r}", file="interactions")
        bad_split = self.interactions.loc[~self.interactions["split"].isin(SPLITS), "split"]
        if len(bad_split):
            raise DataFormatError(
                f"split value {bad_split.iloc[0]!r} is not one of train/valid/test", file="interactions"
            )


def isin(values: pd.Series | pd.Index, universe: Any) -> Any:
    """``values.isin(universe)`` for string columns, through Arrow's hash kernel (~40x faster than pandas 3's
    ``isin`` on Arrow-backed strings, which converts the universe element by element). A Series gives a boolean
    Series on the same index, an Index a boolean numpy array (as pandas does)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    left = pa.array(pd.Series(values, dtype="string").array, type=pa.large_string())
    right = pa.array(pd.Series(universe, dtype="string").array, type=pa.large_string())
    mask = pc.is_in(left, value_set=right).to_numpy(zero_copy_only=False)
    if isinstance(values, pd.Index):
        return mask
    return pd.Series(mask, index=values.index, dtype=bool)
