"""RecBole atomic files: ``<name>.inter``, ``.item``, ``.user``, ``.kg`` and ``.link`` in one folder.

Every atomic file is tab-separated with a typed header line (``user_id:token``, ``rating:float``,
``movie_title:token_seq``); the ``:type`` suffixes are stripped. RecBole's default field names are used:
``user_id``, ``item_id``, ``rating``, ``timestamp`` (``.inter``), ``head_id``, ``relation_id``, ``tail_id``
(``.kg``) and ``item_id``, ``entity_id`` (``.link``). Only ``.inter`` is required.

Which dataset: ``<folder name>.inter`` if present, else the only ``*.inter`` file of the folder, else the one named
by ``LoadOptions(extra={"dataset": "ml-100k"})``. A path to the ``.inter`` file itself works as well.

Mapping onto the canonical tables (one scene, id ``options.scene`` or the dataset name, e.g. ``ml-100k``):

* items (``.item``): ``title`` from the first title-like column (``movie_title``, ``title``, ``name``, ...); every
  other non-empty column becomes an attribute, kept as the file's text (``{"class": "Animation Children's
  Comedy", "release_year": "1995"}``). Without a ``.item`` file the items are the item ids of ``.inter`` and
  ``.link``, without text.
* users (``.user``): id plus the other columns as attributes.
* interactions (``.inter``): user, item, rating, timestamp; unparsable values go to the rejects with their line.
* KG (``.kg``): one triple per line. ``.link`` says which KG entity an item is: every head or tail that is a linked
  entity id is rewritten to the item id, so that the item node *is* that entity and the KG facts about it attach
  to the item. ``dataset.meta["entity_links"]`` counts the links applied. An entity linked to a second item keeps
  its first link (the later line goes to the rejects); an item may be linked to several entities (all of them
  become the item). Other KG ids become entities with empty type and name (Freebase mids carry no names here);
  an unlinked KG id that happens to equal an item id is renamed ``kg:<id>`` (counted in
  ``meta["renamed_entities"]``) so that it is not mistaken for the item.

Fixed split: ``LoadOptions(extra={"split": "split_recbole"})`` reads ``<folder>/split_recbole/{train,valid,test}.tsv``
(header ``user_id\\titem_id``; also an absolute folder path is accepted) and sets the ``split`` column of the
interactions from them. Repeated (user, item) pairs are matched occurrence by occurrence (file order of ``.inter``
against train, valid, test order). Interactions that the split does not list are dropped into the rejects
("interaction is not in split ...": e.g. ``split_recbole_kglinked`` leaves out the items without a KG link, as
RecBole's KG models do), and so are split rows that match no interaction. Default: no split (``split`` empty).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scenerec.errors import ConfigError, DataFormatError
from scenerec.loaders.base import Loader, LoadOptions, register
from scenerec.loaders.cleaning import coerce_interactions
from scenerec.loaders.rejects import RejectLog
from scenerec.loaders.tables import read_table
from scenerec.records import Dataset, attributes_json, isin

#: RecBole's field types (the suffix after ``:`` in a header).
FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
#: Columns taken as the item title, in order of preference.
TITLE_FIELDS = ("movie_title", "title", "item_title", "book_title", "track_name", "name", "item_name")
SPLITS = ("train", "valid", "test")
_PROV = ["_file", "_line"]


def _header_fields(path: Path) -> list[str]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        first = fh.readline().rstrip("\r\n")
    return [f.strip() for f in first.split("\t")] if first else []


def _is_typed_header(fields: list[str]) -> bool:
    return bool(fields) and all(":" in f and f.rsplit(":", 1)[1] in FIELD_TYPES for f in fields)


def _header_map(path: Path) -> dict[str, str]:
    """``{"user_id:token": "user_id", ...}`` for the header line of ``path``."""
    return {f: f.rsplit(":", 1)[0] for f in _header_fields(path) if ":" in f}


def _read_atomic(path: Path, rejects: RejectLog, required: list[str]) -> pd.DataFrame:
    df = read_table(path, rejects, sep="\t", header_map=_header_map(path), required=required)
    for col in df.columns:
        if col not in _PROV:
            df[col] = df[col].str.strip()
    return df


def _inter_file(path: Path, options: LoadOptions | None = None) -> Path:
    """The ``.inter`` file of the dataset at ``path`` (see the module docstring for the choice)."""
    if path.is_file():
        if path.suffix != ".inter":
            raise DataFormatError("a RecBole dataset is a folder or its .inter file", file=path)
        return path
    wanted = (options.extra.get("dataset") if options else None) or ""
    if wanted:
        f = path / f"{wanted}.inter"
        if not f.is_file():
            raise ConfigError(f"{path}: extra['dataset']={wanted!r} but {f.name} does not exist")
        return f
    own = path / f"{path.name}.inter"
    if own.is_file():
        return own
    hits = sorted(p for p in path.glob("*.inter") if p.is_file())
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise DataFormatError("no RecBole .inter file in this folder", file=path)
    raise DataFormatError(
        f"several .inter files ({', '.join(h.name for h in hits)}); name one with extra={{'dataset': ...}}",
        file=path,
    )


def _attributes(df: pd.DataFrame, exclude: set[str]) -> pd.Series:
    cols = [c for c in df.columns if c not in exclude and c not in _PROV]
    if not cols:
        return pd.Series([""] * len(df), index=df.index, dtype="string")
    values = [
        attributes_json({k: v for k, v in zip(cols, row, strict=True) if isinstance(v, str) and v})
        for row in df[cols].itertuples(index=False)
    ]
    return pd.Series(values, index=df.index, dtype="string")


def _title_column(columns: list[str]) -> str | None:
    for c in TITLE_FIELDS:
        if c in columns:
            return c
    for c in columns:
        if c.endswith(("title", "name")) and c != "item_id":
            return c
    return None


def _apply_split(inter: pd.DataFrame, folder: Path, name: str, rejects: RejectLog) -> pd.DataFrame:
    """Set ``inter['split']`` from ``folder/{train,valid,test}.tsv``; unmatched rows on either side are rejected."""
    frames = []
    for split in SPLITS:
        f = folder / f"{split}.tsv"
        if not f.is_file():
            raise DataFormatError(f"split {name!r} lacks {split}.tsv (it needs train.tsv, valid.tsv, test.tsv)", file=f)
        df = _read_atomic(f, rejects, ["user_id", "item_id"])
        frames.append(
            pd.DataFrame(
                {
                    "user": df["user_id"],
                    "item": df["item_id"],
                    "split": split,
                    "_file": df["_file"],
                    "_line": df["_line"],
                }
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    rows["_occ"] = rows.groupby(["user", "item"], sort=False).cumcount()
    inter = inter.drop(columns="split", errors="ignore")
    inter["_occ"] = inter.groupby(["user", "item"], sort=False).cumcount()
    key = ["user", "item", "_occ"]
    merged = inter.merge(rows[[*key, "split"]], on=key, how="left", validate="one_to_one")
    missing = merged["split"].isna()
    rejects.add_frame(merged[missing], f"interaction is not in split {name!r}", column="split", id_column="user")
    matched = rows.merge(inter[key], on=key, how="left", indicator=True)["_merge"] == "both"
    rejects.add_frame(
        rows[~matched.to_numpy()], f"split row of {name!r} matches no interaction", column="item_id", id_column="user"
    )
    out = merged[~missing].drop(columns="_occ")
    out["split"] = out["split"].astype("string")
    return out


@register
class RecboleLoader(Loader):
    """Reader of RecBole atomic files (``.inter`` with ``.item``, ``.user``, ``.kg``, ``.link``)."""

    name = "recbole"
    description = "RecBole atomic files: <name>.inter/.item/.user/.kg/.link with typed headers"

    @classmethod
    def detect(cls, path: Path) -> bool:
        if path.is_file():
            return path.suffix == ".inter" and _is_typed_header(_header_fields(path))
        if not path.is_dir():
            return False
        return any(p.is_file() and _is_typed_header(_header_fields(p)) for p in path.glob("*.inter"))

    def read(self, path: Path, rejects: RejectLog, options: LoadOptions) -> Dataset:
        inter_file = _inter_file(path, options)
        folder, dataset = inter_file.parent, inter_file.stem
        scene = options.scene or dataset

        def atomic(suffix: str) -> Path | None:
            f = folder / f"{dataset}.{suffix}"
            return f if f.is_file() else None

        # ---- interactions
        raw = _read_atomic(inter_file, rejects, ["user_id", "item_id"])
        raw = raw.rename(columns={"user_id": "user", "item_id": "item"})
        cols = ["user", "item", *[c for c in ("rating", "timestamp") if c in raw], *_PROV]
        inter = coerce_interactions(raw[cols], rejects)

        split_name = options.extra.get("split", "").strip()
        if split_name:
            split_dir = Path(split_name) if Path(split_name).is_absolute() else folder / split_name
            if not split_dir.is_dir():
                found = sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / "train.tsv").is_file())
                raise ConfigError(
                    f"{folder}: extra['split']={split_name!r} is not a folder here "
                    f"(split folders found: {', '.join(found) or 'none'})"
                )
            inter = _apply_split(inter, split_dir, split_name, rejects)

        # ---- links (read before the items so that link-only items exist without a .item file)
        link_file = atomic("link")
        links = pd.DataFrame({"item": pd.Series([], dtype="string"), "entity": pd.Series([], dtype="string")})
        if link_file is not None:
            raw_links = _read_atomic(link_file, rejects, ["item_id", "entity_id"])
            links = raw_links.rename(columns={"item_id": "item", "entity_id": "entity"})[["item", "entity", *_PROV]]

        # ---- items
        item_file = atomic("item")
        if item_file is not None:
            raw_items = _read_atomic(item_file, rejects, ["item_id"])
            title_col = _title_column([c for c in raw_items.columns if c not in _PROV])
            items = pd.DataFrame(
                {
                    "id": raw_items["item_id"],
                    "title": raw_items[title_col] if title_col else "",
                    "attributes": _attributes(raw_items, {"item_id", title_col or "item_id"}),
                }
            )
            items[_PROV] = raw_items[_PROV]
        else:
            ids = pd.unique(pd.concat([inter["item"], links["item"]], ignore_index=True))
            items = pd.DataFrame({"id": pd.array(ids, dtype="string")})
        items["scene"] = scene
        item_ids = pd.Index(items["id"])

        # ---- which entity is which item
        unknown = ~isin(links["item"], item_ids)
        rejects.add_frame(
            links[unknown],
            f"link references an item id that is not in {dataset}.item",
            column="item_id",
            id_column="item",
        )
        links = links[~unknown]
        blank = links["entity"] == ""
        rejects.add_frame(links[blank], "link with an empty entity id", column="entity_id", id_column="item")
        links = links[~blank]
        dup = links.duplicated("entity", keep="first")
        first_item = links[~dup].set_index("entity")["item"]
        for row in links[dup].to_dict("records"):
            same = first_item[row["entity"]] == row["item"]
            rejects.add(
                str(row["_file"]),
                int(row["_line"]),
                "repeated link"
                if same
                else f"entity already linked to item {first_item[row['entity']]!r}; first link kept",
                action="merged" if same else "dropped",
                column="entity_id",
                ident=str(row["entity"]),
            )
        links = links[~dup]
        entity_to_item = pd.Series(links["item"].to_numpy(), index=links["entity"].to_numpy(), dtype="string")

        # ---- knowledge graph
        kg_file = atomic("kg")
        triples = pd.DataFrame({c: pd.Series([], dtype="string") for c in ("head", "relation", "tail")})
        renamed = 0
        if kg_file is not None:
            raw_kg = _read_atomic(kg_file, rejects, ["head_id", "relation_id", "tail_id"])
            triples = raw_kg.rename(columns={"head_id": "head", "relation_id": "relation", "tail_id": "tail"})
            triples = triples[["head", "relation", "tail", *_PROV]].copy()
            ends = pd.Index(pd.unique(pd.concat([triples["head"], triples["tail"]], ignore_index=True)))
            clash = ends[isin(ends, item_ids) & ~isin(ends, entity_to_item.index)]
            renamed = len(clash)
            for col in ("head", "tail"):
                ids = triples[col]
                as_item = ids.map(entity_to_item)
                ids = ids.where(~isin(ids, clash), "kg:" + ids)
                triples[col] = as_item.where(as_item.notna(), ids).astype("string")
        ends = pd.unique(pd.concat([triples["head"], triples["tail"]], ignore_index=True))
        entity_ids = pd.Index(ends, dtype="string").difference(item_ids)
        entities = pd.DataFrame({"id": pd.array(entity_ids, dtype="string")})

        # ---- users
        tables: dict[str, pd.DataFrame] = {}
        user_file = atomic("user")
        if user_file is not None:
            raw_users = _read_atomic(user_file, rejects, ["user_id"])
            users = pd.DataFrame({"id": raw_users["user_id"], "attributes": _attributes(raw_users, {"user_id"})})
            users[_PROV] = raw_users[_PROV]
            tables["users"] = users

        return Dataset(
            dataset,
            scenes=pd.DataFrame({"id": [scene], "name": [dataset], "description": [f"RecBole dataset {dataset}"]}),
            items=items,
            entities=entities,
            interactions=inter,
            triples=triples,
            meta={
                "format": self.name,
                "dataset": dataset,
                "entity_links": len(links),
                "renamed_entities": renamed,
                "split": split_name,
            },
            **tables,
        )
