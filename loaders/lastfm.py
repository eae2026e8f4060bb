"""Last.FM (HetRec 2011) in the form KGCN/RippleNet use it, with the Microsoft Satori knowledge graph.

Expected folder (``lastfm_hetrec_kgcn/``)::

    kgcn/user_artists.dat            userID  artistID  weight      (header line; weight = listening count)
    kgcn/item_index2entity_id.txt    artistID  satori_entity_index (no header)
    kgcn/kg.txt                      head_index  relation  tail_index (no header; entity indices)
    hetrec2011/artists.dat           id  name  url  pictureURL   (optional; artist names)

The folder may also be ``kgcn/`` itself (``artists.dat`` is then looked up beside the KGCN files and in
``../hetrec2011/``).

Mapping onto the canonical tables (one scene, id ``options.scene`` or ``lastfm``):

* items: by default the artists that are linked to the KG (3,846, the KGCN setting); with
  ``LoadOptions(extra={"all_artists": "1"})`` every artist of ``artists.dat`` and of the interactions (17,632).
  ``title`` is the artist name (``url``/``pictureURL`` are not kept: the url is derived from the name).
* KG: the entity index that an artist is linked to *is* that artist's item (its id is the artist id); every other
  entity index becomes the entity ``satori:<index>`` (no type or name is available).
* interactions: the listening count becomes ``weight``; there is no rating or timestamp. Interactions with artists
  that are not items (outside the KG in the default setting) are dropped by the cleaner into the rejects as
  "unknown item id", each with its line of ``user_artists.dat``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scenerec.errors import DataFormatError
from scenerec.loaders.base import Loader, LoadOptions, register
from scenerec.loaders.cleaning import coerce_interactions
from scenerec.loaders.rejects import RejectLog
from scenerec.loaders.tables import read_headerless, read_table
from scenerec.records import Dataset

KGCN_FILES = ("user_artists.dat", "item_index2entity_id.txt", "kg.txt")
#: Prefix of the ids of KG entities that are not artists.
ENTITY_PREFIX = "satori:"
_TRUE = {"1", "true", "yes", "on"}


def _kgcn_dir(path: Path) -> Path:
    return path / "kgcn" if (path / "kgcn").is_dir() else path


def _artists_file(path: Path) -> Path | None:
    candidates = (path / "hetrec2011" / "artists.dat", path / "artists.dat", path.parent / "hetrec2011" / "artists.dat")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def _first_wins(df: pd.DataFrame, key: str, reason: str, rejects: RejectLog, other: str) -> pd.DataFrame:
    """Keep the first row per ``key``; later rows go to the rejects naming the value kept."""
    dup = df.duplicated(key, keep="first")
    if dup.any():
        kept = df[~dup].set_index(key)[other]
        for row in df[dup].to_dict("records"):
            value = row[key]
            rejects.add(
                str(row["_file"]),
                int(row["_line"]),
                f"{reason} (line kept: {key} {value} -> {kept[value]})",
                column=key,
                ident=str(value),
            )
    return df[~dup]


@register
class LastfmKgcnLoader(Loader):
    """Reader of KGCN's Last.FM files plus the HetRec 2011 artist names."""

    name = "lastfm-kgcn"
    description = "Last.FM HetRec 2011 in KGCN's form (user_artists.dat, item_index2entity_id.txt, kg.txt)"

    @classmethod
    def detect(cls, path: Path) -> bool:
        if not path.is_dir():
            return False
        root = _kgcn_dir(path)
        return all((root / f).is_file() for f in KGCN_FILES)

    def read(self, path: Path, rejects: RejectLog, options: LoadOptions) -> Dataset:
        root = _kgcn_dir(path)
        for f in KGCN_FILES:
            if not (root / f).is_file():
                raise DataFormatError(f"missing {f} (the KGCN Last.FM files are {', '.join(KGCN_FILES)})", file=root)
        scene = options.scene or "lastfm"
        all_artists = options.extra.get("all_artists", "").strip().lower() in _TRUE

        # ---- artist -> KG entity index
        links = read_headerless(root / "item_index2entity_id.txt", ["artist", "entity"], rejects)
        links = _first_wins(
            links, "artist", "artist linked to a second KG entity; the first link is kept", rejects, "entity"
        )
        links = _first_wins(
            links, "entity", "KG entity linked to a second artist; the first link is kept", rejects, "artist"
        )
        entity_to_artist = pd.Series(links["artist"].to_numpy(), index=links["entity"].to_numpy(), dtype="string")

        # ---- interactions
        raw = read_table(root / "user_artists.dat", rejects, sep="\t", required=["userID", "artistID", "weight"])
        raw = raw.rename(columns={"userID": "user", "artistID": "item"})
        inter = coerce_interactions(raw[["user", "item", "weight", "_file", "_line"]], rejects)

        # ---- items
        artists_file = _artists_file(path)
        names = pd.DataFrame({"id": pd.Series([], dtype="string"), "title": pd.Series([], dtype="string")})
        if artists_file is not None:
            art = read_table(artists_file, rejects, sep="\t", required=["id", "name"])
            art["id"] = art["id"].str.strip()
            art = _first_wins(art, "id", "artist id repeated; the first line is kept", rejects, "name")
            # url and pictureURL are left out: the url is the name itself (last.fm/music/<name>) and as an
            # attribute it would only become a noisy description text in the cleaner.
            names = pd.DataFrame(
                {"id": art["id"], "title": art["name"].str.strip(), "_file": art["_file"], "_line": art["_line"]}
            )
        if all_artists:
            ids = pd.unique(pd.concat([names["id"], links["artist"], inter["item"]], ignore_index=True))
        else:
            ids = pd.unique(links["artist"])
        items = pd.DataFrame({"id": pd.array(ids, dtype="string")}).merge(names, on="id", how="left")
        items["scene"] = scene

        # ---- knowledge graph
        kg = read_headerless(root / "kg.txt", ["head", "relation", "tail"], rejects)
        for col in ("head", "tail"):
            idx = kg[col]
            artist = idx.map(entity_to_artist)
            entity = (ENTITY_PREFIX + idx).where(idx != "", "")  # a blank stays blank: the cleaner reports it
            kg[col] = artist.where(artist.notna(), entity).astype("string")
        ends = pd.unique(pd.concat([kg["head"], kg["tail"]], ignore_index=True))
        entity_ids = [e for e in ends if str(e).startswith(ENTITY_PREFIX)]
        entities = pd.DataFrame({"id": pd.array(entity_ids, dtype="string")})

        return Dataset(
            "lastfm-hetrec-kgcn",
            scenes=pd.DataFrame(
                {"id": [scene], "name": ["Last.fm"], "description": ["Last.fm music artists (HetRec 2011)"]}
            ),
            items=items,
            entities=entities,
            interactions=inter,
            triples=kg,
            meta={
                "format": self.name,
                "all_artists": all_artists,
                "entity_links": len(links),
                "artist_names": artists_file is not None,
                "weight": "listening count",
            },
        )
