"""A DBP15K entity-alignment pair folder (JAPE / GCN-Align / SEU layout), e.g. ``dbp15k/fr_en/``.

Files (tab-separated, no header line)::

    ent_ids_1, ent_ids_2     numeric id  DBpedia URI        (KG 1 = the non-English KG, KG 2 = the English one)
    triples_1, triples_2     head id  relation id  tail id  (numeric ids)
    ref_ent_ids              KG-1 id  KG-2 id               (gold alignment; optional)
    translated_ent_names.json   [[id, [token, ...]], ...]   (optional; English translation of every name)

Mapping onto the canonical tables:

* two scenes, one per KG. Their ids are the languages: from the folder name (``fr_en`` -> ``fr`` and ``en``;
  ``dbp_fr_en`` works too), else from the URI hosts (``fr.dbpedia.org`` -> ``fr``, ``dbpedia.org`` -> ``en``),
  or given as ``LoadOptions(extra={"scenes": "fr,en"})``;
* entities: id = the URI (globally unique and readable), ``scene`` = its KG's scene, ``type`` empty, ``name`` =
  the translated name (tokens joined by spaces) when the JSON file exists and has one, else the name decoded from
  the URI (percent-decoding, underscores -> spaces);
* triples: head and tail URIs, relation ``rel:<relation id>`` (the files carry no relation names);
* alignment: ``ref_ent_ids`` pairs as (KG-1 URI, KG-2 URI), score 1.0, method ``gold``;
* no items, users or interactions.

Lines that cannot be used (wrong field count, an id not declared in the KG's ``ent_ids`` file, a repeated id) go to
the rejects with their file and line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd

from scenerec.errors import ConflictingIdError, DataFormatError
from scenerec.loaders.base import Loader, LoadOptions, register
from scenerec.loaders.rejects import RejectLog
from scenerec.loaders.tables import read_headerless
from scenerec.records import Dataset

REQUIRED = ("ent_ids_1", "ent_ids_2", "triples_1", "triples_2")
NAMES_FILE = "translated_ent_names.json"
_PAIR = re.compile(r"(?:^|[_-])([a-z]{2})[_-]([a-z]{2})(?:[_-]|$)")
_LANGUAGES = {"en": "English", "fr": "French", "zh": "Chinese", "ja": "Japanese", "de": "German"}


def name_from_uri(uri: str) -> str:
    """Readable name of a DBpedia-style URI: last path segment, percent-decoded, underscores as spaces."""
    tail = uri.split("/resource/", 1)[1] if "/resource/" in uri else uri.rstrip("/").rsplit("/", 1)[-1]
    return unquote(tail).replace("_", " ").strip()


def _scene_from_uri(uri: str) -> str:
    host = urlsplit(uri).hostname or ""
    m = re.fullmatch(r"([a-z]{2,3})\.dbpedia\.org", host)
    if m:
        return m.group(1)
    if host in ("dbpedia.org", "www.dbpedia.org"):
        return "en"
    return host


def _scene_ids(path: Path, first_uris: tuple[str, str], options: LoadOptions) -> tuple[str, str]:
    given = options.extra.get("scenes", "").strip()
    if given:
        parts = [p.strip() for p in given.split(",")]
        if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
            raise DataFormatError(f"extra['scenes'] must be two distinct comma-separated ids, not {given!r}")
        return parts[0], parts[1]
    m = _PAIR.search(path.name.lower())
    if m and m.group(1) != m.group(2):
        return m.group(1), m.group(2)
    a, b = (_scene_from_uri(u) for u in first_uris)
    return (a, b) if a and b and a != b else ("kg1", "kg2")


def _read_entities(path: Path, rejects: RejectLog) -> pd.DataFrame:
    df = read_headerless(path, ["num", "uri"], rejects)
    blank = (df["num"] == "") | (df["uri"] == "")
    rejects.add_frame(df[blank], "entity line with an empty id or URI", id_column="num")
    df = df[~blank]
    dup = df.duplicated("num", keep="first")
    if dup.any():
        first_line = df[~dup].set_index("num")["_line"]
        for row in df[dup].to_dict("records"):
            rejects.add(
                str(row["_file"]),
                int(row["_line"]),
                f"entity id {row['num']} already declared on line {first_line[row['num']]}; the first line is kept",
                column="id",
                ident=str(row["num"]),
            )
    return df[~dup].copy()


def _read_names(path: Path, rejects: RejectLog) -> dict[str, str]:
    """Numeric id -> translated name; entries that are not ``[id, [tokens...]]`` go to the rejects."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"invalid JSON: {exc.msg}", file=path, line=exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"not utf-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    if not isinstance(data, list):
        raise DataFormatError("expected a JSON list of [id, [tokens...]] entries", file=path)
    names: dict[str, str] = {}
    for k, entry in enumerate(data):
        ok = (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], int | str)
            and isinstance(entry[1], list)
            and all(isinstance(t, str) for t in entry[1])
        )
        if not ok:
            rejects.add(str(path), None, f"entry {k} is not [id, [tokens...]]: {str(entry)[:80]}")
            continue
        name = " ".join(t.strip() for t in entry[1] if t.strip())
        if name:
            names[str(entry[0])] = name
    return names


def _map_ids(
    df: pd.DataFrame,
    cols: tuple[str, ...],
    lookups: tuple[pd.Series, ...],
    file_names: tuple[str, ...],
    rejects: RejectLog,
) -> pd.DataFrame:
    """Replace numeric ids by URIs; rows with an id the lookup lacks go to the rejects (first bad column named)."""
    keep = pd.Series(True, index=df.index)
    out = df.copy()
    for col, lookup, fname in zip(cols, lookups, file_names, strict=True):
        mapped = df[col].map(lookup)
        bad = mapped.isna() & keep
        rejects.add_frame(df[bad], f"{col} id is not declared in {fname}", column=col, id_column=col)
        keep &= ~bad
        out[col] = mapped.astype("string")
    return out[keep]


@register
class Dbp15kLoader(Loader):
    """Reader of one DBP15K language pair: two KGs (two scenes) and their gold entity alignment."""

    name = "dbp15k"
    description = "DBP15K entity-alignment pair folder (ent_ids_1/2, triples_1/2, ref_ent_ids)"

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_dir() and all((path / f).is_file() for f in REQUIRED)

    def read(self, path: Path, rejects: RejectLog, options: LoadOptions) -> Dataset:
        for f in REQUIRED:
            if not (path / f).is_file():
                raise DataFormatError(f"missing {f} (a DBP15K pair folder has {', '.join(REQUIRED)})", file=path)
        e1 = _read_entities(path / "ent_ids_1", rejects)
        e2 = _read_entities(path / "ent_ids_2", rejects)
        if e1.empty or e2.empty:
            raise DataFormatError("no entities declared", file=path / ("ent_ids_1" if e1.empty else "ent_ids_2"))
        s1, s2 = _scene_ids(path, (str(e1["uri"].iloc[0]), str(e2["uri"].iloc[0])), options)
        e1["scene"], e2["scene"] = s1, s2
        both = e1.merge(e2, on="uri", suffixes=("_1", "_2"))
        if len(both):
            r = both.iloc[0]
            raise ConflictingIdError(
                f"URI {r['uri']} is declared in both KGs ({r['_file_2']} line {r['_line_2']}); "
                "the two KGs of a pair must not share entity URIs",
                file=str(r["_file_1"]),
                line=int(r["_line_1"]),
            )

        names_file = path / NAMES_FILE
        names = _read_names(names_file, rejects) if names_file.is_file() else {}
        entities = pd.concat([e1, e2], ignore_index=True)
        translated = entities["num"].map(names).astype("string")
        decoded = pd.Series([name_from_uri(u) for u in entities["uri"]], index=entities.index, dtype="string")
        if names:
            rejects.add_frame(
                entities[translated.isna()],
                f"no translated name in {NAMES_FILE}; name decoded from the URI",
                action="repaired",
                column="name",
                id_column="uri",
            )
        entities = pd.DataFrame(
            {
                "id": entities["uri"],
                "type": "",
                "name": translated.where(translated.notna(), decoded).astype("string"),
                "scene": entities["scene"],
                "_file": entities["_file"],
                "_line": entities["_line"],
            }
        )

        uri1 = pd.Series(e1["uri"].to_numpy(), index=e1["num"].to_numpy(), dtype="string")
        uri2 = pd.Series(e2["uri"].to_numpy(), index=e2["num"].to_numpy(), dtype="string")
        triples = []
        for k, lookup in ((1, uri1), (2, uri2)):
            raw = read_headerless(path / f"triples_{k}", ["head", "relation", "tail"], rejects)
            raw["relation"] = ("rel:" + raw["relation"]).astype("string")
            fname = f"ent_ids_{k}"
            triples.append(_map_ids(raw, ("head", "tail"), (lookup, lookup), (fname, fname), rejects))

        tables: dict[str, pd.DataFrame] = {}
        ref = path / "ref_ent_ids"
        if ref.is_file():
            raw = read_headerless(ref, ["left", "right"], rejects)
            ali = _map_ids(raw, ("left", "right"), (uri1, uri2), ("ent_ids_1", "ent_ids_2"), rejects)
            tables["alignment"] = ali.assign(score=1.0, method="gold")

        language = {s: _LANGUAGES.get(s, s) for s in (s1, s2)}
        scenes = pd.DataFrame(
            {
                "id": [s1, s2],
                "name": [f"DBpedia ({language[s1]})", f"DBpedia ({language[s2]})"],
                "description": [f"{path.name} KG {k} (ent_ids_{k}, triples_{k})" for k in (1, 2)],
            }
        )
        return Dataset(
            path.name,
            scenes=scenes,
            entities=entities,
            triples=pd.concat(triples, ignore_index=True),
            meta={"format": self.name, "pair": path.name, "translated_names": bool(names)},
            **tables,
        )
