"""RDF import and export (Turtle ``.ttl`` and N-Triples ``.nt``) through rdflib.

Vocabulary
----------

The scenerec vocabulary lives in the namespace ``SR = https://scenerec.dev/ns#``. How RDF maps to the canonical
tables (:mod:`scenerec.records`):

==================================================  ==============================================================
RDF                                                 canonical record
==================================================  ==============================================================
``?x a sr:Item``                                    item ``id(?x)``
``?item sr:scene ?s`` (IRI or literal)              ``Item.scene`` (and ``Entity.scene`` on an entity)
``rdfs:label`` / ``dcterms:title`` /                ``Item.title``, ``Scene.name``, ``Entity.name`` (one value is
``schema:name``                                     chosen: no language tag first, then ``en``, then the others)
``dcterms:description`` / ``schema:description``    ``Item.description``, ``Scene.description``
other literal on an item or user (on items also   ``attributes[key]``, key = the predicate's local name (the full
the title/description values not chosen)            IRI if two predicates share it); several values: a list;
                                                    ``rdf:JSON`` literals are decoded
``?x a sr:Scene``, any object of ``sr:scene``       scene ``id(?x)``
``?x a sr:User``, any object of ``sr:user``         user ``id(?x)`` (users named only by interactions are added too)
``?i a sr:Interaction`` (blank node or IRI),        one interaction: ``sr:user``, ``sr:item`` (required),
any subject of ``sr:user`` / ``sr:item``            ``sr:timestamp`` (integer seconds or ``xsd:dateTime``),
                                                    ``sr:rating``, ``sr:weight``, ``sr:split`` (optional)
``?a owl:sameAs ?b`` (``?b`` not a literal)         alignment ``(id(?a), id(?b))``, method ``"owl:sameAs"``
``?x a sr:Entity``                                  entity ``id(?x)`` (needed only for an entity with no other triple)
``?x a ?class`` on an entity                        ``Entity.type`` = the class's local name (first class; further
                                                    classes stay KG triples with relation ``rdf:type``)
any other ``?s ?p ?o`` with ``?o`` a resource       KG triple ``(id(?s), id(?p), id(?o))``; ``?s`` and ``?o`` become
                                                    entities unless they are items
==================================================  ==============================================================

``id(node)`` is the IRI string, except for IRIs under the base namespace (``urn:scenerec:`` unless
``LoadOptions.extra["base"]`` says otherwise), which are percent-decoded back to the plain id that
:func:`export_rdf` encoded, and blank nodes, which become ``_:<label>`` (labels are not stable across loads).

Nothing is dropped silently. Triples that fit none of the rows above (literals on entities other than the name,
literals on scenes other than name and description, non-literal properties of users and scenes, properties of
interaction nodes outside the ``sr:`` interaction properties, ``owl:sameAs`` to a literal, resources pointing at
interaction nodes) are counted in ``dataset.meta``: ``ignored_literals`` and ``ignored_resources`` (numbers of
triples) and ``ignored_by_predicate`` (predicate IRI -> number). Interactions whose values do not parse, or that
give two values of one property, go to the rejects with ``_file`` = the file, ``line`` = NA (rdflib does not keep
line numbers of parsed triples) and ``id`` = the interaction node. An item without ``sr:scene`` is put in scene
``LoadOptions.scene`` (default ``"rdf"``) and reported as repaired; an item with two scenes is a
:class:`~scenerec.errors.ConflictingIdError` (raised by cleaning).

Export
------

:func:`export_rdf` writes a :class:`Dataset` in the same vocabulary. Ids that are not already IRIs (``scheme://...``
or ``urn:...`` without spaces or characters IRIs forbid) become ``<base><kind><percent-encoded id>``, with kind
``""`` for items and entities, ``scene:``, ``user:``, ``rel:`` (relations), ``type:`` (entity types) and ``attr:``
(attribute keys). The percent-encoding (``urllib.parse.quote(id, safe="")``) never leaves a raw ``:``, so the kind
prefixes cannot collide with ids, and importing the file gives back the same ids. Not preserved: the alignment
``score`` and ``method`` (every pair is written as ``owl:sameAs``), entity types and attribute keys that were
themselves IRIs (they come back as local names), and :attr:`Dataset.meta`.

Speed: rdflib's Turtle serializer is much slower than its N-Triples one on large graphs, so export big datasets
with ``format="nt"`` (measured speeds: ``benchmarks/README.md``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pandas as pd
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.exceptions import ParserError
from rdflib.namespace import DCTERMS, OWL, RDF, RDFS, XSD
from rdflib.plugins.parsers.notation3 import BadSyntax
from rdflib.plugins.parsers.ntriples import NTGraphSink, W3CNTriplesParser
from rdflib.term import Node

from scenerec.errors import DataFormatError
from scenerec.loaders.base import Loader, LoadOptions, register
from scenerec.loaders.cleaning import coerce_interactions
from scenerec.loaders.rejects import RejectLog
from scenerec.records import Dataset, attributes_json, parse_attributes

#: The scenerec RDF vocabulary.
SR = Namespace("https://scenerec.dev/ns#")
SCHEMA = Namespace("https://schema.org/")
SCHEMA_HTTP = Namespace("http://schema.org/")

#: Base namespace of ids that are not IRIs (see the module docstring).
DEFAULT_BASE = "urn:scenerec:"
#: File suffix -> rdflib format.
RDF_SUFFIXES = {".ttl": "turtle", ".nt": "nt"}

TITLE_PREDICATES: tuple[URIRef, ...] = (RDFS.label, DCTERMS.title, SCHEMA.name, SCHEMA_HTTP.name)
DESCRIPTION_PREDICATES: tuple[URIRef, ...] = (DCTERMS.description, SCHEMA.description, SCHEMA_HTTP.description)
SR_CLASSES = frozenset({SR["Item"], SR["Scene"], SR["User"], SR["Interaction"], SR["Entity"]})
#: Interaction property -> column of the raw interactions table.
INTERACTION_PROPERTIES = {
    SR["user"]: "user",
    SR["item"]: "item",
    SR["timestamp"]: "timestamp",
    SR["rating"]: "rating",
    SR["weight"]: "weight",
    SR["split"]: "split",
}
_KINDS = frozenset({"scene", "user", "rel", "type", "attr"})
_IRI = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://|urn:)[^\x00-\x20<>\"{}|\\^`]+$", re.IGNORECASE)


def looks_like_iri(value: str) -> bool:
    """True for ids written as IRIs unchanged: ``scheme://...`` or ``urn:...`` with no character IRIs forbid."""
    return bool(_IRI.match(value))


class IdCodec:
    """Maps scenerec ids to IRIs under ``base`` and back (see the module docstring)."""

    def __init__(self, base: str = DEFAULT_BASE) -> None:
        if not looks_like_iri(base + "x"):
            raise ValueError(f"base {base!r} is not an IRI prefix (e.g. 'urn:scenerec:' or 'https://example.org/')")
        self.base = base

    def iri(self, value: str, kind: str = "") -> URIRef:
        """The IRI of id ``value``; ``kind`` is ``""``, ``"scene"``, ``"user"``, ``"rel"``, ``"type"`` or ``"attr"``."""
        if looks_like_iri(value) and not value.startswith(self.base):
            return URIRef(value)
        prefix = f"{kind}:" if kind else ""
        return URIRef(f"{self.base}{prefix}{quote(value, safe='')}")

    def ident(self, node: Node) -> str:
        """The id of an RDF node: decoded under ``base``, the IRI otherwise, ``_:label`` for a blank node."""
        if isinstance(node, URIRef):
            text = str(node)
            if not text.startswith(self.base):
                return text
            rest = text[len(self.base) :]
            kind, sep, tail = rest.partition(":")
            return unquote(tail if sep and kind in _KINDS else rest)
        if isinstance(node, BNode):
            return f"_:{node}"
        return str(node)

    def local_name(self, node: Node) -> str:
        """Short name of a class or predicate: the decoded id under ``base``, else the part after ``#``/``/``/``:``."""
        if isinstance(node, URIRef) and str(node).startswith(self.base):
            return self.ident(node)
        text = str(node)
        tail = re.split(r"[#/:]", text.rstrip("#/"))[-1]
        return tail or text


# ---------------------------------------------------------------------------------------------------- parsing


class _CountingNTriplesParser(W3CNTriplesParser):
    """rdflib's N-Triples parser, counting physical lines so that a syntax error can name its line."""

    def __init__(self, sink: NTGraphSink) -> None:
        super().__init__(sink)
        self.lineno = 0

    def readline(self) -> str | None:
        line = super().readline()
        if line is not None:
            self.lineno += 1
        return line


def rdf_files(path: Path) -> list[Path]:
    """The RDF files of ``path``: the file itself, or the ``.ttl``/``.nt`` files of a folder (sorted)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in RDF_SUFFIXES)


def parse_rdf_file(path: Path, graph: Graph | None = None) -> Graph:
    """Parse one Turtle or N-Triples file (chosen by suffix; other suffixes are read as Turtle) into ``graph``.

    Raises :class:`DataFormatError` naming the file and, where rdflib reports it, the line.
    """
    g = graph if graph is not None else Graph()
    fmt = RDF_SUFFIXES.get(path.suffix.lower(), "turtle")
    try:
        if fmt == "nt":
            parser = _CountingNTriplesParser(NTGraphSink(g))
            try:
                with path.open(encoding="utf-8", newline="") as fh:
                    parser.parse(fh, bnode_context={})
            except ParserError as exc:
                raise DataFormatError(f"invalid N-Triples: {exc}", file=path, line=parser.lineno or None) from None
        else:
            try:
                g.parse(path, format=fmt)
            except BadSyntax as exc:
                why = getattr(exc, "_why", "") or "bad syntax"
                raise DataFormatError(f"invalid Turtle: {why}", file=path, line=exc.lines + 1) from None
            except ParserError as exc:
                raise DataFormatError(f"invalid Turtle: {exc}", file=path) from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    return g


# ---------------------------------------------------------------------------------------------------- import


def _lang_rank(lit: Literal) -> int:
    lang = (lit.language or "").lower()
    return 0 if not lang else 1 if lang == "en" or lang.startswith("en-") else 2


def _choose(values: Sequence[tuple[int, Literal]]) -> int | None:
    """Index in ``values`` ((predicate rank, literal) in order of appearance) of the preferred literal."""
    if not values:
        return None
    return min(range(len(values)), key=lambda i: (_lang_rank(values[i][1]), values[i][0], i))


def literal_value(lit: Literal) -> Any:
    """A JSON-compatible Python value for an attribute literal (``rdf:JSON`` decoded, numbers kept as numbers)."""
    if lit.datatype == RDF.JSON:
        try:
            return json.loads(str(lit))
        except json.JSONDecodeError:
            return str(lit)
    value = lit.toPython()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        f = float(value)
        return f if math.isfinite(f) else str(lit)
    return str(lit)


def _to_literal(value: Any) -> Literal:
    if isinstance(value, bool):
        return Literal(value)
    if isinstance(value, int):
        return Literal(value, datatype=XSD.integer)
    if isinstance(value, float):
        return Literal(value, datatype=XSD.double)
    if isinstance(value, str):
        return Literal(value)
    return Literal(json.dumps(value, ensure_ascii=False, sort_keys=True), datatype=RDF.JSON)


def _ordered(*sources: Iterable[Node], exclude: dict[Node, None] | None = None) -> dict[Node, None]:
    """The nodes of ``sources`` in first-seen order (a dict used as an ordered set), less ``exclude``."""
    out: dict[Node, None] = {}
    for src in sources:
        out.update(dict.fromkeys(n for n in src if not exclude or n not in exclude))
    return out


class _SubjectRejects(RejectLog):
    """A reject log that names the interaction node (column ``_subject``) as the rejected row's id."""

    def add_frame(
        self, rows: pd.DataFrame, reason: str, *, action: str = "dropped", column: str = "", id_column: str = ""
    ) -> None:
        super().add_frame(
            rows, reason, action=action, column=column, id_column="_subject" if "_subject" in rows else id_column
        )


class _Collector:
    """One pass over a graph, sorting every triple into the canonical tables or the ignored counts."""

    def __init__(self, graph: Graph, codec: IdCodec, origin: dict[Node, str], default_file: str) -> None:
        self.g = graph
        self.codec = codec
        self.origin = origin
        self.default_file = default_file
        # Ordered "sets" (dicts) keep the output in the order of the graph, whatever the hash seed.
        self.interactions = _ordered(graph.subjects(RDF.type, SR["Interaction"]), graph.subjects(SR["user"], None))
        self.interactions.update(dict.fromkeys(graph.subjects(SR["item"], None)))
        self.items = _ordered(graph.subjects(RDF.type, SR["Item"]), exclude=self.interactions)
        scene_objects = (o for o in graph.objects(None, SR["scene"]) if not isinstance(o, Literal))
        self.scenes = _ordered(graph.subjects(RDF.type, SR["Scene"]), scene_objects, exclude=self.interactions)
        user_objects = (o for o in graph.objects(None, SR["user"]) if not isinstance(o, Literal))
        self.users = _ordered(graph.subjects(RDF.type, SR["User"]), user_objects, exclude=self.interactions)

        self.entities: dict[Node, None] = dict.fromkeys(graph.subjects(RDF.type, SR["Entity"]))
        self.item_scenes: dict[Node, list[str]] = defaultdict(list)
        self.entity_scenes: dict[Node, list[Node]] = defaultdict(list)
        self.titles: dict[Node, list[tuple[int, URIRef, Literal]]] = defaultdict(list)
        self.descriptions: dict[Node, list[tuple[int, URIRef, Literal]]] = defaultdict(list)
        self.attributes: dict[Node, list[tuple[URIRef, Literal]]] = defaultdict(list)
        self.types: dict[Node, list[Node]] = defaultdict(list)
        self.inter_values: dict[Node, dict[str, list[Node]]] = {}
        self.triples: list[tuple[Node, URIRef, Node]] = []
        self.sameas: list[tuple[Node, Node]] = []
        self.ignored: Counter[str] = Counter()
        self.ignored_literals = 0
        self.ignored_resources = 0

    def file_of(self, node: Node) -> str:
        return self.origin.get(node, self.default_file)

    def _ignore(self, p: Node, o: Node) -> None:
        self.ignored[str(p)] += 1
        if isinstance(o, Literal):
            self.ignored_literals += 1
        else:
            self.ignored_resources += 1

    def _entity(self, node: Node) -> None:
        if node not in self.items and node not in self.interactions:
            self.entities.setdefault(node, None)

    def _kg(self, s: Node, p: URIRef, o: Node) -> None:
        if o in self.interactions:
            self._ignore(p, o)
            return
        self.triples.append((s, p, o))
        self._entity(s)
        self._entity(o)

    def run(self) -> None:
        title_rank = {p: i for i, p in enumerate(TITLE_PREDICATES)}
        desc_rank = {p: i for i, p in enumerate(DESCRIPTION_PREDICATES)}
        # Dict lookups instead of ``==``: rdflib terms compare in Python, hashing is in C.
        special = {RDF.type: "type", OWL.sameAs: "sameAs", SR["scene"]: "scene"}
        for s, p, o in self.g:
            assert isinstance(p, URIRef)
            kind = special.get(p)
            if s in self.interactions:
                col = INTERACTION_PROPERTIES.get(p)
                if col is not None:
                    self.inter_values.setdefault(s, {}).setdefault(col, []).append(o)
                elif not (kind == "type" and o in SR_CLASSES):
                    self._ignore(p, o)
                continue
            if kind == "type" and o in SR_CLASSES:
                continue
            if kind == "sameAs":
                if isinstance(o, Literal):
                    self._ignore(p, o)
                else:
                    self.sameas.append((s, o))
                    for n in (s, o):
                        if n not in self.users and n not in self.scenes:
                            self._entity(n)
                continue
            is_item = s in self.items
            role_known = is_item or s in self.users or s in self.scenes
            if kind == "scene":
                if is_item:
                    self.item_scenes[s].append(str(o) if isinstance(o, Literal) else self.codec.ident(o))
                elif not role_known:
                    self._entity(s)
                    self.entity_scenes[s].append(o)
                else:
                    self._ignore(p, o)
                continue
            if isinstance(o, Literal):
                if is_item or s in self.scenes:
                    if p in title_rank:
                        self.titles[s].append((title_rank[p], p, o))
                    elif p in desc_rank:
                        self.descriptions[s].append((desc_rank[p], p, o))
                    elif is_item:
                        self.attributes[s].append((p, o))
                    else:
                        self._ignore(p, o)
                elif s in self.users:
                    self.attributes[s].append((p, o))
                else:
                    self._entity(s)
                    if p in title_rank:
                        self.titles[s].append((title_rank[p], p, o))
                    else:
                        self._ignore(p, o)
                continue
            # o is a resource
            if is_item:
                self._kg(s, p, o)
            elif role_known:
                self._ignore(p, o)
            elif kind == "type":
                self._entity(s)
                self.types[s].append(o)
            else:
                self._kg(s, p, o)
        # Entities: first class is the type, the others stay triples.
        for s, classes in self.types.items():
            for c in classes[1:]:
                self._kg(s, RDF.type, c)

    def _pick(
        self, node: Node, table: dict[Node, list[tuple[int, URIRef, Literal]]]
    ) -> tuple[str, list[tuple[URIRef, Literal]]]:
        """The chosen literal of ``node`` and the others."""
        values = table.get(node, [])
        best = _choose([(rank, lit) for rank, _, lit in values])
        if best is None:
            return "", []
        return str(values[best][2]), [(p, lit) for i, (_, p, lit) in enumerate(values) if i != best]

    def _attr_keys(self) -> dict[URIRef, str]:
        preds = dict.fromkeys(p for vals in self.attributes.values() for p, _ in vals)
        for node in self.items:
            for vals in (self._pick(node, self.titles)[1], self._pick(node, self.descriptions)[1]):
                preds.update(dict.fromkeys(p for p, _ in vals))
        names = {p: self.codec.local_name(p) for p in preds}
        clash = {k for k, n in Counter(names.values()).items() if n > 1}
        return {p: (str(p) if k in clash and not str(p).startswith(self.codec.base) else k) for p, k in names.items()}

    def _attributes_json(self, pairs: Iterable[tuple[URIRef, Literal]], keys: dict[URIRef, str]) -> str:
        out: dict[str, list[Any]] = defaultdict(list)
        for p, lit in pairs:
            out[keys[p]].append(literal_value(lit))
        return attributes_json({k: v[0] if len(v) == 1 else v for k, v in out.items()})

    def tables(self, rejects: RejectLog, options: LoadOptions) -> dict[str, pd.DataFrame]:
        ident = self.codec.ident
        keys = self._attr_keys()
        default_scene = options.scene or "rdf"

        item_rows: list[dict[str, Any]] = []
        for node in self.items:
            title, other_titles = self._pick(node, self.titles)
            description, other_desc = self._pick(node, self.descriptions)
            attrs = self._attributes_json([*self.attributes.get(node, []), *other_titles, *other_desc], keys)
            scenes = list(dict.fromkeys(self.item_scenes.get(node, [])))
            if not scenes:
                rejects.add(
                    self.file_of(node),
                    None,
                    f"item has no sr:scene; put in scene {default_scene!r}",
                    action="repaired",
                    column="scene",
                    ident=ident(node),
                )
                scenes = [default_scene]
            for scene in scenes:
                item_rows.append(
                    {
                        "id": ident(node),
                        "scene": scene,
                        "title": title,
                        "description": description,
                        "attributes": attrs,
                        "_file": self.file_of(node),
                    }
                )

        scene_rows = [
            {
                "id": ident(node),
                "name": self._pick(node, self.titles)[0],
                "description": self._pick(node, self.descriptions)[0],
                "_file": self.file_of(node),
            }
            for node in self.scenes
        ]
        for node in self.scenes:
            for p, lit in self._pick(node, self.titles)[1] + self._pick(node, self.descriptions)[1]:
                self._ignore(p, lit)

        entity_rows: list[dict[str, Any]] = []
        for node in self.entities:
            name, others = self._pick(node, self.titles)
            for p, lit in others:
                self._ignore(p, lit)
            classes = self.types.get(node, [])
            scene_nodes = list(dict.fromkeys(self.entity_scenes.get(node, [])))
            scenes = [str(n) if isinstance(n, Literal) else ident(n) for n in scene_nodes]
            entity_rows.append(
                {
                    "id": ident(node),
                    "type": self.codec.local_name(classes[0]) if classes else "",
                    "name": name,
                    "scene": scenes[0] if scenes else "",
                    "_file": self.file_of(node),
                }
            )
            for extra in scene_nodes[1:]:
                self._ignore(SR["scene"], extra)

        interactions = self._interactions(rejects)
        user_ids = dict.fromkeys(ident(n) for n in self.users)
        user_ids.update(dict.fromkeys(interactions["user"].tolist()))
        user_attrs = {ident(n): self._attributes_json(self.attributes.get(n, []), keys) for n in self.users}
        user_files = {ident(n): self.file_of(n) for n in self.users}
        users = pd.DataFrame(
            {
                "id": list(user_ids),
                "attributes": [user_attrs.get(u, "") for u in user_ids],
                "_file": [user_files.get(u, self.default_file) for u in user_ids],
            }
        )

        triples = pd.DataFrame(
            {
                "head": [ident(s) for s, _, _ in self.triples],
                "relation": [ident(p) for _, p, _ in self.triples],
                "tail": [ident(o) for _, _, o in self.triples],
                "_file": [self.file_of(s) for s, _, _ in self.triples],
            }
        )
        alignment = pd.DataFrame(
            {
                "left": [ident(s) for s, _ in self.sameas],
                "right": [ident(o) for _, o in self.sameas],
                "method": "owl:sameAs",
                "_file": [self.file_of(s) for s, _ in self.sameas],
            }
        )
        frames = {
            "items": pd.DataFrame(item_rows, columns=["id", "scene", "title", "description", "attributes", "_file"]),
            "scenes": pd.DataFrame(scene_rows, columns=["id", "name", "description", "_file"]),
            "entities": pd.DataFrame(entity_rows, columns=["id", "type", "name", "scene", "_file"]),
            "users": users,
            "interactions": interactions,
            "triples": triples,
            "alignment": alignment,
        }
        for df in frames.values():
            df["_line"] = pd.array([pd.NA] * len(df), dtype="Int64")
        return frames

    def _interactions(self, rejects: RejectLog) -> pd.DataFrame:
        cols = list(dict.fromkeys(INTERACTION_PROPERTIES.values()))
        rows: dict[str, list[str]] = {c: [] for c in [*cols, "_subject", "_file"]}
        for node in self.interactions:
            values = self.inter_values.get(node, {})
            multi = [c for c, v in values.items() if len(set(v)) > 1]
            if multi:
                prop = f"sr:{multi[0]}"
                rejects.add(
                    self.file_of(node),
                    None,
                    f"interaction gives {len(set(values[multi[0]]))} values of {prop}",
                    column=multi[0],
                    ident=self.codec.ident(node),
                )
                continue
            for c in cols:
                v = values.get(c)
                if not v:
                    rows[c].append("")
                elif isinstance(v[0], Literal):
                    rows[c].append(str(v[0]))
                else:
                    rows[c].append(self.codec.ident(v[0]))
            rows["_subject"].append(self.codec.ident(node))
            rows["_file"].append(self.file_of(node))
        raw = pd.DataFrame({c: pd.array(v, dtype="string") for c, v in rows.items()})
        raw["_line"] = pd.array([pd.NA] * len(raw), dtype="Int64")
        if raw.empty:
            return raw.drop(columns=["_subject"])
        log = _SubjectRejects()
        typed = coerce_interactions(raw, log)
        rejects.extend(log)
        return typed.drop(columns=["_subject"])

    def meta(self) -> dict[str, Any]:
        return {
            "ignored_literals": self.ignored_literals,
            "ignored_resources": self.ignored_resources,
            "ignored_by_predicate": dict(sorted(self.ignored.items())),
        }


def read_rdf(path: Path, rejects: RejectLog, options: LoadOptions | None = None, *, base: str | None = None) -> Dataset:
    """Read an RDF file or folder of RDF files into a raw (not yet cleaned) :class:`Dataset`."""
    options = options or LoadOptions()
    files = rdf_files(path)
    if not files:
        raise DataFormatError("no RDF files (.ttl or .nt) in this folder", file=path)
    codec = IdCodec(base or options.extra.get("base", DEFAULT_BASE))
    origin: dict[Node, str] = {}
    if len(files) == 1:
        graph = parse_rdf_file(files[0])
    else:
        graph = Graph()
        for f in files:
            part = parse_rdf_file(f)
            for s, _, o in part:
                origin.setdefault(s, str(f))
                if not isinstance(o, Literal):
                    origin.setdefault(o, str(f))
            graph += part
    collector = _Collector(graph, codec, origin, str(files[0]) if len(files) == 1 else "")
    collector.run()
    tables = collector.tables(rejects, options)
    meta = {
        "format": RdfLoader.name,
        "rdf_files": [str(f) for f in files],
        "rdf_triples": len(graph),
        "base": codec.base,
        **collector.meta(),
    }
    return Dataset(path.stem if path.is_file() else path.name, meta=meta, **tables)


@register
class RdfLoader(Loader):
    """RDF in the scenerec vocabulary (see :mod:`scenerec.loaders.rdf`); ``extra["base"]`` sets the id base."""

    name = "rdf"
    description = "RDF graph (.ttl Turtle or .nt N-Triples file, or a folder of them) in the sr: vocabulary"

    @classmethod
    def detect(cls, path: Path) -> bool:
        if path.is_file():
            return path.suffix.lower() in RDF_SUFFIXES
        if not path.is_dir():
            return False
        files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        return bool(files) and all(p.suffix.lower() in RDF_SUFFIXES for p in files)

    def read(self, path: Path, rejects: RejectLog, options: LoadOptions) -> Dataset:
        return read_rdf(path, rejects, options)


# ---------------------------------------------------------------------------------------------------- export


def dataset_graph(dataset: Dataset, base: str = DEFAULT_BASE) -> Graph:
    """The RDF graph of ``dataset`` in the scenerec vocabulary (see the module docstring)."""
    codec = IdCodec(base)
    iri = codec.iri
    g = Graph()
    g.bind("sr", SR)
    g.bind("owl", OWL)
    g.bind("dcterms", DCTERMS)
    g.bind("rel", URIRef(f"{codec.base}rel:"))
    g.bind("attr", URIRef(f"{codec.base}attr:"))

    for sid, name, desc in dataset.scenes[["id", "name", "description"]].itertuples(index=False):
        s = iri(sid, "scene")
        g.add((s, RDF.type, SR["Scene"]))
        if name:
            g.add((s, RDFS.label, Literal(name)))
        if desc:
            g.add((s, DCTERMS.description, Literal(desc)))

    def add_attributes(s: URIRef, text: str) -> None:
        for k, v in parse_attributes(text).items():
            g.add((s, iri(k, "attr"), _to_literal(v)))

    cols = ["id", "scene", "title", "description", "attributes"]
    for iid, scene, title, desc, attrs in dataset.items[cols].itertuples(index=False):
        s = iri(iid)
        g.add((s, RDF.type, SR["Item"]))
        if scene:
            g.add((s, SR["scene"], iri(scene, "scene")))
        if title:
            g.add((s, RDFS.label, Literal(title)))
        if desc:
            g.add((s, DCTERMS.description, Literal(desc)))
        add_attributes(s, attrs)

    for uid, attrs in dataset.users[["id", "attributes"]].itertuples(index=False):
        s = iri(uid, "user")
        g.add((s, RDF.type, SR["User"]))
        add_attributes(s, attrs)

    for eid, etype, name, scene in dataset.entities[["id", "type", "name", "scene"]].itertuples(index=False):
        s = iri(eid)
        g.add((s, RDF.type, SR["Entity"]))
        if etype:
            g.add((s, RDF.type, iri(etype, "type")))
        if name:
            g.add((s, RDFS.label, Literal(name)))
        if scene:
            g.add((s, SR["scene"], iri(scene, "scene")))

    cols = ["user", "item", "timestamp", "rating", "weight", "split"]
    for user, item, ts, rating, weight, split in dataset.interactions[cols].itertuples(index=False):
        node = BNode()
        g.add((node, RDF.type, SR["Interaction"]))
        g.add((node, SR["user"], iri(user, "user")))
        g.add((node, SR["item"], iri(item)))
        if not pd.isna(ts):
            g.add((node, SR["timestamp"], Literal(int(ts), datatype=XSD.integer)))
        if not pd.isna(rating):
            g.add((node, SR["rating"], Literal(float(rating), datatype=XSD.double)))
        if float(weight) != 1.0:
            g.add((node, SR["weight"], Literal(float(weight), datatype=XSD.double)))
        if split:
            g.add((node, SR["split"], Literal(split)))

    for head, rel, tail in dataset.triples[["head", "relation", "tail"]].itertuples(index=False):
        g.add((iri(head), iri(rel, "rel"), iri(tail)))

    nodes = set(dataset.items["id"].tolist()) | set(dataset.entities["id"].tolist())
    users = set(dataset.users["id"].tolist()) - nodes
    for left, right in dataset.alignment[["left", "right"]].itertuples(index=False):
        g.add((iri(left, "user" if left in users else ""), OWL.sameAs, iri(right, "user" if right in users else "")))
    return g


def export_rdf(dataset: Dataset, path: Path, format: str = "turtle", base: str = DEFAULT_BASE) -> int:
    """Write ``dataset`` as RDF (``format``: any rdflib serializer, e.g. ``"turtle"``, ``"nt"``, ``"xml"``).

    Returns the number of RDF triples written. Loading the file with ``load_dataset(path, format="rdf")`` gives
    back the same ids, tables and KG (see the module docstring for the few things not preserved).
    """
    graph = dataset_graph(dataset, base)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph.serialize(destination=str(path), format=format, encoding="utf-8")
    return len(graph)
