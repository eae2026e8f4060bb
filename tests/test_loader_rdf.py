"""RDF (Turtle / N-Triples) import and export: exact records, round trip, real DBP15K triples, syntax errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rdflib import Graph, URIRef

from scenerec.errors import DataFormatError
from scenerec.loaders import LoadOptions, detect_format, export_rdf, load_dataset
from scenerec.loaders.rdf import SR, IdCodec
from scenerec.records import Alignment, Dataset, Entity, Interaction, Item, Scene, Triple, User

EX = "http://example.org/vocab#"
ACME_DBPEDIA = "http://dbpedia.org/resource/Acme_Corporation"

SHOP_TTL = """\
@prefix sr: <https://scenerec.dev/ns#> .
@prefix s: <urn:scenerec:> .
@prefix sc: <urn:scenerec:scene:> .
@prefix u: <urn:scenerec:user:> .
@prefix ex: <http://example.org/vocab#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix dcterms: <http://purl.org/dc/terms/> .
@prefix schema: <https://schema.org/> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .

sc:books a sr:Scene ; rdfs:label "Books" ; dcterms:description "Printed books" .
sc:music a sr:Scene ; schema:name "Music" .

s:dune a sr:Item ; sr:scene sc:books ;
    rdfs:label "Dune" , "Dune (fr)"@fr ;
    dcterms:description "A desert planet" ;
    ex:pages 412 ;
    ex:brand s:acme .
s:emma a sr:Item ; sr:scene sc:books ; dcterms:title "Emma" ; ex:brand s:acme .
s:abbey a sr:Item ; sr:scene "music" ; schema:name "Abbey Road" ; ex:brand s:acme ; ex:genre s:rock .

s:acme a ex:Brand ; rdfs:label "ACME" ; ex:founded "1900" ; owl:sameAs <http://dbpedia.org/resource/Acme_Corporation> .
s:rock a ex:Genre ; rdfs:label "Rock"@en .

u:alice a sr:User ; ex:age 30 .

[] a sr:Interaction ; sr:user u:alice ; sr:item s:dune ; sr:timestamp 1600000000 ; sr:rating 5 ; sr:split "train" .
[] a sr:Interaction ; sr:user u:alice ; sr:item s:abbey ;
    sr:timestamp "2020-09-13T12:26:40Z"^^xsd:dateTime ; sr:rating 3 .
[] a sr:Interaction ; sr:user u:bob ; sr:item s:emma ; sr:rating 1 ; sr:split "test" .
s:bad a sr:Interaction ; sr:user u:bob ; sr:item s:dune ; sr:rating "lots" .
"""

SHOP_EXPECTED: dict[str, list[Any]] = {
    "scenes": [Scene("books", "Books", "Printed books"), Scene("music", "Music", "")],
    "users": [User("alice", {"age": 30}), User("bob")],
    "items": [
        Item("dune", "books", "Dune", "A desert planet", {"label": "Dune (fr)", "pages": 412}),
        Item("emma", "books", "Emma"),
        Item("abbey", "music", "Abbey Road"),
    ],
    "entities": [Entity("acme", "Brand", "ACME"), Entity("rock", "Genre", "Rock"), Entity(ACME_DBPEDIA)],
    "interactions": [
        Interaction("alice", "dune", 1600000000, 1.0, 1.0, "train"),
        Interaction("alice", "abbey", 1600000000, 0.5, 1.0, ""),
        Interaction("bob", "emma", None, 0.0, 1.0, "test"),
    ],
    "triples": [
        Triple("dune", EX + "brand", "acme"),
        Triple("emma", EX + "brand", "acme"),
        Triple("abbey", EX + "brand", "acme"),
        Triple("abbey", EX + "genre", "rock"),
    ],
    "alignment": [Alignment("acme", ACME_DBPEDIA, 1.0, "owl:sameAs")],
}
SCALE_1_5 = LoadOptions(rating_scale=(1.0, 5.0))


def records(ds: Dataset, table: str) -> list[Any]:
    """The records of one table in a canonical order (tables come back in graph order)."""
    return sorted(ds.records(table), key=repr)


def assert_tables(ds: Dataset, expected: dict[str, list[Any]]) -> None:
    for table, rows in expected.items():
        assert records(ds, table) == sorted(rows, key=repr), table


def assert_shop(ds: Dataset, rejects: pd.DataFrame, files: set[str]) -> None:
    assert_tables(ds, SHOP_EXPECTED)
    assert ds.meta["ignored_literals"] == 1
    assert ds.meta["ignored_resources"] == 0
    assert ds.meta["ignored_by_predicate"] == {EX + "founded": 1}
    assert len(rejects) == 1
    r = rejects.iloc[0]
    assert (r["id"], r["column"], r["reason"], r["action"]) == ("bad", "rating", "unparsable rating", "dropped")
    assert r["file"] in files
    assert pd.isna(r["line"])


def test_turtle_loads_to_exact_records(tmp_path: Path) -> None:
    path = tmp_path / "shop.ttl"
    path.write_text(SHOP_TTL, encoding="utf-8")
    assert detect_format(path) == "rdf"
    result = load_dataset(path, options=SCALE_1_5)
    assert result.format == "rdf"
    assert_shop(result.dataset, result.rejects.to_frame(), {str(path)})
    result.dataset.validate()


def test_ntriples_and_folder_load_the_same_records(tmp_path: Path) -> None:
    graph = Graph().parse(data=SHOP_TTL, format="turtle")
    nt = tmp_path / "shop.nt"
    graph.serialize(destination=str(nt), format="nt", encoding="utf-8")
    assert detect_format(nt) == "rdf"
    result = load_dataset(nt, format="rdf", options=SCALE_1_5)
    assert_shop(result.dataset, result.rejects.to_frame(), {str(nt)})

    # A folder of RDF files is one graph: interactions in one N-Triples file, everything else in Turtle.
    folder = tmp_path / "split"
    folder.mkdir()
    inter = Graph()
    nodes = set(graph.subjects(None, SR["Interaction"]))
    for s, p, o in graph:
        if s in nodes:
            inter.add((s, p, o))
    rest = graph - inter
    inter.serialize(destination=str(folder / "interactions.nt"), format="nt", encoding="utf-8")
    rest.serialize(destination=str(folder / "catalogue.ttl"), format="turtle", encoding="utf-8")
    assert detect_format(folder) == "rdf"
    result = load_dataset(folder, options=SCALE_1_5)
    assert_shop(result.dataset, result.rejects.to_frame(), {str(folder / "interactions.nt")})
    assert result.dataset.meta["rdf_files"] == [str(folder / "catalogue.ttl"), str(folder / "interactions.nt")]


def test_unmapped_values_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "edge.ttl"
    path.write_text(
        """\
@prefix sr: <https://scenerec.dev/ns#> .
@prefix s: <urn:scenerec:> .
@prefix ex: <http://example.org/vocab#> .
s:x a sr:Item ; ex:color "red" .
s:sc a sr:Scene ; ex:note "a scene note" ; ex:owner s:someone .
[] a sr:Interaction ; sr:user "u1" ; sr:item s:x ; sr:rating 1 , 2 ; ex:device "phone" .
s:i2 a sr:Interaction ; sr:user "u1" ; sr:item s:x ; sr:split "holdout" .
""",
        encoding="utf-8",
    )
    result = load_dataset(path, options=LoadOptions(scene="shop"))
    ds = result.dataset
    assert records(ds, "items") == [Item("x", "shop", "color: red", "", {"color": "red"})]
    assert ds.interactions.empty
    assert ds.meta["ignored_literals"] == 2  # the scene note and the interaction's device
    assert ds.meta["ignored_resources"] == 1  # the scene's owner
    rej = result.rejects.to_frame()
    reasons = dict(zip(rej["reason"], rej["id"], strict=True))
    assert reasons["item has no sr:scene; put in scene 'shop'"] == "x"
    assert reasons["split is not one of train/valid/test"] == "i2"
    two = [r for r in reasons if r.startswith("interaction gives 2 values of sr:rating")]
    assert len(two) == 1 and reasons[two[0]].startswith("_:")


AWKWARD = 'x"}) DETACH DELETE n //'


def awkward_dataset() -> Dataset:
    items = [
        Item("item 1", "e-commerce", "Plain item", "with a space in its id", {"price": 9.5, "tags": ["a", "b"]}),
        Item('say "hi"', "e-commerce", 'Quote "d" title'),
        Item("café ☕", "vidéo clips", "Café", "unicode id", {"vip": True, "pages": 3}),
        Item(AWKWARD, "vidéo clips", "Injection", "a Cypher-looking id"),
        Item("http://example.org/item/42", "e-commerce", "Already an IRI"),
        Item("urn:scenerec:sneaky", "e-commerce", "Looks like the base"),
        Item("a:b%20c", "vidéo clips", "Colon and percent"),
    ]
    entities = [
        Entity("brand:ACME Inc.", "brand", "ACME Inc."),
        Entity("http://dbpedia.org/resource/Café_de_Flore", "place", "Café de Flore", "vidéo clips"),
        Entity("person/O'Brien", "music artist", "O'Brien"),
    ]
    users = [User("user 1", {"age": 30}), User("用户"), User("o'brien; DROP TABLE users")]
    interactions = [
        Interaction("user 1", "item 1", 1600000000, 0.75, 1.0, "train"),
        Interaction("user 1", AWKWARD, 1600000100, None, 2.0, "train"),
        Interaction("用户", "café ☕", None, 0.25, 1.0, "valid"),
        Interaction("o'brien; DROP TABLE users", 'say "hi"', 5, 1.0, 1.0, "test"),
        Interaction("用户", "http://example.org/item/42", 7, 0.0, 3.0, ""),
    ]
    triples = [
        Triple("item 1", "brand", "brand:ACME Inc."),
        Triple(AWKWARD, "made by/with", "person/O'Brien"),
        Triple("café ☕", "http://schema.org/location", "http://dbpedia.org/resource/Café_de_Flore"),
        Triple("urn:scenerec:sneaky", "related to", "a:b%20c"),
    ]
    alignment = [
        Alignment("item 1", "café ☕", 1.0, "owl:sameAs"),
        Alignment("user 1", "用户", 1.0, "owl:sameAs"),
    ]
    scenes = [Scene("e-commerce", "E-commerce", "a shop"), Scene("vidéo clips", "Vidéo", "")]
    return Dataset.from_records(
        "awkward",
        scenes=scenes,
        items=items,
        entities=entities,
        users=users,
        interactions=interactions,
        triples=triples,
        alignment=alignment,
    )


@pytest.mark.parametrize(
    ("fmt", "suffix", "base"),
    [("turtle", ".ttl", "urn:scenerec:"), ("nt", ".nt", "urn:scenerec:"), ("turtle", ".ttl", "https://ex.org/sr/")],
)
def test_export_import_round_trip(tmp_path: Path, fmt: str, suffix: str, base: str) -> None:
    original = awkward_dataset()
    path = tmp_path / f"awkward{suffix}"
    written = export_rdf(original, path, format=fmt, base=base)
    graph = Graph().parse(path, format=fmt)
    assert written == len(graph) == 82
    assert URIRef(f"{base}x%22%7D%29%20DETACH%20DELETE%20n%20%2F%2F") in set(graph.subjects(None, SR["Item"]))
    options = LoadOptions(rating_scale=(0.0, 1.0), extra={"base": base})
    result = load_dataset(path, options=options)
    assert len(result.rejects) == 0, result.rejects.to_frame()
    assert_tables(result.dataset, {t: list(original.records(t)) for t in original.TABLE_NAMES})


def test_id_codec() -> None:
    codec = IdCodec()
    for ident in [AWKWARD, "café ☕", "a:b", "100%", "urn:scenerec:x", "_:b0", " padded "]:
        for kind in ("", "scene", "user", "rel", "type", "attr"):
            iri = codec.iri(ident, kind)
            assert str(iri).startswith("urn:scenerec:") and " " not in iri and '"' not in iri
            assert codec.ident(iri) == ident
    assert codec.iri("http://example.org/a b") == URIRef("urn:scenerec:http%3A%2F%2Fexample.org%2Fa%20b")
    assert codec.iri("https://example.org/x") == URIRef("https://example.org/x")


def test_dbp15k_triples_as_ntriples(tmp_path: Path, dbp15k_fr_en: Path) -> None:
    """The first 2,000 triples of DBP15K fr_en (DBpedia IRIs, relations as ``urn:rel:<id>``) through N-Triples."""
    root = dbp15k_fr_en
    uri = dict(line.rstrip("\n").split("\t") for line in (root / "ent_ids_1").open(encoding="utf-8"))
    with (root / "triples_1").open(encoding="utf-8") as fh:
        rows = [line.split() for _, line in zip(range(2000), fh, strict=False)]
    graph = Graph()
    for h, r, t in rows:
        graph.add((URIRef(uri[h]), URIRef(f"urn:rel:{r}"), URIRef(uri[t])))
    path = tmp_path / "fr_en.nt"
    graph.serialize(destination=str(path), format="nt", encoding="utf-8")

    result = load_dataset(path, format="rdf")
    ds = result.dataset
    expected_triples = {(uri[h], f"urn:rel:{r}", uri[t]) for h, r, t in rows}
    assert len(result.rejects) == 0
    assert len(ds.triples) == len(expected_triples) == len(graph)
    assert set(ds.triples.itertuples(index=False, name=None)) == expected_triples
    assert set(ds.entities["id"]) == {uri[h] for h, _, _ in rows} | {uri[t] for _, _, t in rows}
    assert set(ds.triples["relation"]) == {f"urn:rel:{r}" for _, r, _ in rows}
    assert ds.counts()["items"] == ds.counts()["interactions"] == ds.counts()["alignment"] == 0
    assert ds.meta["inferred_entities"] == 0  # every KG node was declared by the loader, not inferred


def test_turtle_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.ttl"
    path.write_text(
        '@prefix ex: <http://example.org/> .\nex:a ex:b ex:c .\n\nex:d ex:e "open\n ex:f ex:g ex:h .\n',
        encoding="utf-8",
    )
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert err.value.file == str(path)
    assert err.value.line is not None and err.value.line >= 4
    assert str(path) in str(err.value)


def test_ntriples_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.nt"
    path.write_text(
        '<http://ex/a> <http://ex/b> <http://ex/c> .\n\n<http://ex/a> <http://ex/b> "oops .\n',
        encoding="utf-8",
    )
    with pytest.raises(DataFormatError) as err:
        load_dataset(path, format="rdf")
    assert (err.value.file, err.value.line) == (str(path), 3)
    assert f"{path}, line 3" in str(err.value)


def test_detect_only_rdf_files(tmp_path: Path) -> None:
    (tmp_path / "a.ttl").write_text("", encoding="utf-8")
    (tmp_path / "b.nt").write_text("", encoding="utf-8")
    from scenerec.loaders.rdf import RdfLoader

    assert RdfLoader.detect(tmp_path)
    (tmp_path / "items.csv").write_text("item_id,scene\n", encoding="utf-8")
    assert not RdfLoader.detect(tmp_path)
    assert not RdfLoader.detect(tmp_path / "items.csv")
