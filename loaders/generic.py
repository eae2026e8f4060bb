"""The generic dataset folder: ``items``, ``interactions``, ``triples``, ``entities``, ``users``, ``scenes``,
``alignment`` as CSV, TSV or Parquet files (see the README's "Dataset format")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scenerec.errors import DataFormatError
from scenerec.loaders.base import TABLE_FILES, Loader, LoadOptions, register
from scenerec.loaders.cleaning import coerce_interactions
from scenerec.loaders.rejects import RejectLog
from scenerec.loaders.tables import find_table, read_table
from scenerec.records import Dataset, attributes_json

_PROV = ["_file", "_line"]
_TABLES = ("interactions", "triples", "entities", "users", "scenes", "alignment")


def _attributes(df: pd.DataFrame, exclude: set[str]) -> pd.Series:
    extra = [c for c in df.columns if c not in exclude and not c.startswith("_")]
    if not extra:
        return pd.Series([""] * len(df), index=df.index, dtype="string")
    sub = df[extra]
    return pd.Series(
        [attributes_json({k: v for k, v in zip(extra, row, strict=True) if v}) for row in sub.itertuples(index=False)],
        index=df.index,
        dtype="string",
    )


@register
class GenericLoader(Loader):
    name = "generic"
    description = "folder of items/interactions/triples/entities/users/scenes/alignment CSV, TSV or Parquet files"

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_dir() and find_table(path, "items") is not None

    def read(self, path: Path, rejects: RejectLog, options: LoadOptions) -> Dataset:
        items_file = find_table(path, "items")
        if items_file is None:
            raise DataFormatError("the generic format needs an items file (items.csv, .tsv or .parquet)", file=path)
        raw_items = read_table(items_file, rejects, required=["item_id", "scene"])
        items = pd.DataFrame(
            {
                "id": raw_items["item_id"],
                "scene": raw_items["scene"].str.strip(),
                "title": raw_items.get("title", ""),
                "description": raw_items.get("description", ""),
                "attributes": _attributes(raw_items, {"item_id", "scene", "title", "description"}),
            }
        )
        items[_PROV] = raw_items[_PROV]
        tables: dict[str, pd.DataFrame] = {"items": items}

        f = find_table(path, "interactions")
        if f is not None:
            raw = read_table(f, rejects, required=["user_id", "item_id"])
            raw = raw.rename(columns={"user_id": "user", "item_id": "item"})
            tables["interactions"] = coerce_interactions(raw, rejects)

        f = find_table(path, "triples")
        if f is not None:
            tables["triples"] = read_table(f, rejects, required=["head", "relation", "tail"])

        f = find_table(path, "entities")
        if f is not None:
            ent = read_table(f, rejects, required=["entity_id"]).rename(columns={"entity_id": "id"})
            tables["entities"] = ent

        f = find_table(path, "users")
        if f is not None:
            raw_users = read_table(f, rejects, required=["user_id"])
            users = pd.DataFrame({"id": raw_users["user_id"], "attributes": _attributes(raw_users, {"user_id"})})
            users[_PROV] = raw_users[_PROV]
            tables["users"] = users

        f = find_table(path, "scenes")
        if f is not None:
            tables["scenes"] = read_table(f, rejects, required=["scene_id"]).rename(columns={"scene_id": "id"})

        f = find_table(path, "alignment")
        if f is not None:
            ali = read_table(f, rejects, required=["left_id", "right_id"])
            ali = ali.rename(columns={"left_id": "left", "right_id": "right"})
            if "score" in ali:
                score = pd.to_numeric(ali["score"], errors="coerce").astype("float64")
                bad = (score.isna() | ~np.isfinite(score.fillna(1.0))) & (ali["score"].str.strip() != "")
                rejects.add_frame(ali[bad], "unparsable alignment score", column="score", id_column="left")
                ali = ali[~bad].assign(score=score[~bad].fillna(1.0))
            tables["alignment"] = ali
        files = [str(items_file)] + [str(f) for name in _TABLES if (f := find_table(path, name)) is not None]
        return Dataset(path.name, meta={"format": self.name, TABLE_FILES: files}, **tables)
