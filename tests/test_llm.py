"""Text features with the real all-MiniLM-L6-v2 weights: encoder, templates, cache, rebuild, semantic search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scenerec.cli import SAMPLE, main
from scenerec.config import EmbedConfig
from scenerec.engine import Engine
from scenerec.errors import ConfigError, UnknownIdError
from scenerec.gnn.data import build_hetero
from scenerec.kg import load_features, load_idmap, open_store, read_manifest
from scenerec.llm import EmbeddingCache, HFTextEncoder, TextTemplates, embed_dataset, text_key, texts_frame
from scenerec.pipeline import CACHE_DIR, build, text_feature_step
from scenerec.records import Dataset, Entity, Item, Scene

TEXTS = ["blue gel pens", "gel ink pen, blue", "acrylic paint set for canvas", "", "ünïcödé 文字 ✓"]


def test_encoder_matches_sentence_transformers(encoder: HFTextEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    from scenerec.llm import default_model_path

    ours = encoder.encode(TEXTS)
    reference = SentenceTransformer(str(default_model_path()), device="cpu").encode(TEXTS)
    assert ours.shape == (5, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    sims = ours @ ours.T
    assert sims[0, 1] > 0.8 > sims[0, 2]  # the two gel-pen texts are close, paint is not


def test_batching_and_length_sorting_do_not_change_vectors(encoder: HFTextEncoder) -> None:
    small = HFTextEncoder(batch_size=2)
    np.testing.assert_allclose(small.encode(TEXTS), encoder.encode(TEXTS), atol=1e-5)
    assert small.forward_passes == 3  # 5 texts, 2 per batch


def test_unloadable_model_says_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as err:
        HFTextEncoder("no-such-org/no-such-model")
    assert "no-such-org/no-such-model" in str(err.value)
    assert "local Hugging Face cache" in str(err.value) and "download" in str(err.value)
    with pytest.raises(ConfigError, match=r"needs config\.json"):
        HFTextEncoder(tmp_path)


def test_a_local_model_folder_works_and_has_the_same_identity_rules(encoder: HFTextEncoder) -> None:
    from scenerec.llm import default_model_path

    by_path = HFTextEncoder(default_model_path())
    assert by_path.runtime == "torch"  # a model named by folder runs on torch
    bundled = HFTextEncoder(runtime="torch")
    assert by_path.identity.split("|")[1:] == bundled.identity.split("|")[1:]
    assert by_path.identity != bundled.identity  # the name is part of the identity
    assert HFTextEncoder(max_length=32).identity != encoder.identity  # truncation changes vectors


def tiny() -> Dataset:
    return Dataset.from_records(
        "tiny",
        scenes=[Scene("books", "Books", "printed books"), Scene("music", "Music")],
        items=[
            Item("b1", "books", "Dune", "A desert planet.", {"author": "Herbert", "isbn": "123", "page_url": "x"}),
            Item("m1", "music", "Blue Train", "", {"label": "Blue Note"}),
            Item("m2", "music", "", "", {}),
        ],
        entities=[Entity("e1", "label", "Blue Note"), Entity("e2", "", ""), Entity("e3", "label", "Blue Note")],
    )


def test_templates() -> None:
    t = TextTemplates()
    ds = tiny()
    assert t.items(ds) == ["Dune. A desert planet. author: Herbert", "Blue Train. label: Blue Note", ""]
    assert t.entities(ds) == ["Blue Note (label)", "", "Blue Note (label)"]  # e2: no name, no type -> no text
    assert t.scenes(ds) == ["Books: printed books", "Music"]
    custom = TextTemplates(item="{title} [{scene}]", attribute_keys=("isbn",))
    assert custom.items(ds)[0] == "Dune [books]"


def test_nodes_with_nothing_but_an_id_get_no_text() -> None:
    ds = Dataset.from_records(
        "ids",
        scenes=[Scene("s1", "", ""), Scene("s2", "", "only a description"), Scene("s3", "Named")],
        items=[Item("i1", "s1", "", "", {}), Item("i2", "s2", "Title", "", {})],
        entities=[
            Entity("m.04ctbw8", "", ""),  # a Freebase mid: nothing to embed
            Entity("m.0kv2hv", "genre", ""),  # a type says something: the id stays as the name
            Entity("e3", "", "Jazz"),
            Entity("e4", "  ", " "),  # blanks are no text either
        ],
    )
    t = TextTemplates()
    assert t.entities(ds) == ["", "m.0kv2hv (genre)", "Jazz", ""]
    assert t.scenes(ds) == ["", "s2: only a description", "Named"]
    assert t.items(ds) == ["", "Title"]  # items keep today's text
    frame = texts_frame(ds)
    assert frame[frame["text"] == ""]["id"].tolist() == ["s1", "i1", "m.04ctbw8", "e4"]


def test_feature_step_leaves_nodes_without_text_unencoded(encoder: HFTextEncoder, tmp_path: Path) -> None:
    ds = tiny()  # item m2 and entity e2 have no text
    passes = encoder.forward_passes
    out = text_feature_step(encoder, cache=False)(ds, tmp_path)
    assert encoder.forward_passes > passes
    assert {label: v.shape for label, v in out.vectors.items()} == {
        "Scene": (2, 384),
        "Item": (3, 384),
        "Entity": (3, 384),
    }
    np.testing.assert_array_equal(out.vectors["Entity"][1], 0)
    np.testing.assert_array_equal(out.vectors["Item"][2], 0)
    expected = encoder.encode(["Blue Note (label)", "Blue Train. label: Blue Note"])
    np.testing.assert_allclose(out.vectors["Entity"][[0, 2]], expected[[0, 0]], atol=1e-5)
    np.testing.assert_allclose(out.vectors["Item"][1], expected[1], atol=1e-5)
    assert out.info["texts"] == {"Scene": 2, "Item": 2, "Entity": 2}
    assert out.info["without_text"] == {"Scene": 0, "Item": 1, "Entity": 1}
    assert out.info["encoded"] == 5  # the two Blue Note entities share one text; no empty text is encoded


def _id_only_kg(root: Path, *, named: bool) -> Path:
    """A generic folder whose KG entities are bare ids (like RecBole's Freebase mids), one named one if ``named``."""
    root.mkdir()
    (root / "items.csv").write_text("item_id,scene,title\ni1,movies,Toy Story\ni2,movies,GoldenEye\n")
    (root / "interactions.csv").write_text("user_id,item_id\nu1,i1\nu1,i2\nu2,i1\n")
    (root / "triples.csv").write_text(
        "head,relation,tail\ni1,film.genre,m.04ctbw8\ni2,film.genre,m.0kv2hv\ni1,film.director,m.01\n"
        + ("i2,film.director,p1\n" if named else "")
    )
    if named:
        (root / "entities.csv").write_text("entity_id,type,name\np1,person,Martin Campbell\n")
    return root


@pytest.mark.parametrize("named", [True, False], ids=["some-named", "none-named"])
def test_rebuild_gives_id_only_entities_no_embedding(encoder: HFTextEncoder, tmp_path: Path, named: bool) -> None:
    data = _id_only_kg(tmp_path / "data", named=named)
    report = build(data, tmp_path / "store", encoder=encoder)
    assert report.features["texts"] == {"Scene": 1, "Item": 2, "Entity": 1 if named else 0}
    assert report.features["without_text"]["Entity"] == 3
    feats, idmap = load_features(tmp_path / "store"), load_idmap(tmp_path / "store")
    with open_store(tmp_path / "store") as store:
        data_ = build_hetero(store.edge_index(), feats)
        from_graph = store.node_features(idmap)
    entity = data_["entity"]
    has_text = dict(zip(idmap.ids("entity"), entity.has_text.tolist(), strict=True))
    assert has_text == ({"p1": True} if named else {}) | {"m.04ctbw8": False, "m.0kv2hv": False, "m.01": False}
    assert bool(data_["item"].has_text.all()) and bool(data_["scene"].has_text.all())
    bare = idmap.indices("entity", ["m.04ctbw8", "m.0kv2hv", "m.01"])
    np.testing.assert_array_equal(feats["entity"][bare], 0)
    if named:
        np.testing.assert_allclose(
            feats["entity"][idmap.indices("entity", ["p1"])[0]],
            encoder.encode(["Martin Campbell (person)"])[0],
            atol=1e-5,
        )
    # The graph's embedding properties agree with features.npz.
    for kind in ("item", "entity"):
        np.testing.assert_array_equal(from_graph.get(kind, np.zeros_like(feats[kind])), feats[kind])


def test_cache_skips_known_texts_and_separates_models(encoder: HFTextEncoder, tmp_path: Path) -> None:
    ds = tiny()
    first, stats = embed_dataset(ds, encoder, cache_dir=tmp_path)
    # e1 and e3 share one text, m2 and e2 the empty one: each is encoded once.
    assert sum(stats.texts.values()) == 8 and stats.encoded == 6
    passes = encoder.forward_passes
    again, stats = embed_dataset(ds, encoder, cache_dir=tmp_path)
    assert encoder.forward_passes == passes and stats.encoded == 0 and stats.forward_passes == 0
    for label in first:
        np.testing.assert_array_equal(first[label], again[label])
    changed = Dataset(ds.name, scenes=ds.scenes, items=ds.items.assign(title=["Dune Messiah", "Blue Train", ""]))
    _, stats = embed_dataset(changed, encoder, cache_dir=tmp_path)
    assert stats.encoded == 1  # only the changed title
    other = EmbeddingCache(tmp_path, encoder.identity + "|other", encoder.dim)
    assert len(other) == 0
    assert len(EmbeddingCache(tmp_path, encoder.identity, encoder.dim)) == 7  # 6 texts + the changed title
    found, vectors = EmbeddingCache(tmp_path, encoder.identity, encoder.dim).lookup([text_key("Blue Note (label)")])
    assert found.tolist() == [True]
    np.testing.assert_allclose(vectors[0], first["Entity"][0])


def test_rebuild_embeds_once_and_a_second_rebuild_runs_no_forward_pass(
    sample_store: Path, encoder: HFTextEncoder
) -> None:
    manifest = read_manifest(sample_store)
    info = manifest["features"]
    assert info["identity"] == encoder.identity and info["dim"] == 384
    assert info["texts"] == {"Scene": 2, "Item": 2211, "Entity": 1233}
    assert (sample_store / CACHE_DIR).is_dir()
    passes = encoder.forward_passes
    report = build(SAMPLE, sample_store, encoder=encoder)
    assert encoder.forward_passes == passes
    assert report.features["encoded"] == 0 and report.features["cached"] == info["texts"]
    # The vectors are node properties in the graph and tensors aligned with the id map.
    feats, idmap = load_features(sample_store), load_idmap(sample_store)
    assert feats["item"].shape == (2211, 384) and feats["entity"].shape == (1233, 384)
    with open_store(sample_store) as store:
        ids, vectors = store.node_embeddings("Item")
        np.testing.assert_array_equal(vectors, feats["item"][idmap.indices("item", ids)])
        row = store.query("MATCH (i:Item) WHERE i.id = $id RETURN i.embedding AS e", id="18647")
        assert len(row["e"].iloc[0]) == 384


def test_no_embed_builds_without_vectors(tmp_path: Path) -> None:
    report = build(SAMPLE, tmp_path / "s", embed=None)
    assert report.features == {}
    assert load_features(tmp_path / "s") == {}
    with Engine.open(tmp_path / "s") as engine, pytest.raises(ConfigError, match="no-embed"):
        engine.search_items("pens")


def test_search_items(sample_store: Path, encoder: HFTextEncoder) -> None:
    with Engine.open(sample_store, encoder=encoder) as engine:
        hits = engine.search_items("blue gel pens", k=10)
        assert list(hits.columns) == ["item_id", "scene", "title", "score"]
        assert len(hits) == 10 and hits["score"].is_monotonic_decreasing
        assert sum("gel" in t for t in hits["title"]) >= 8
        office = engine.search_items("blue gel pens", scene="office", k=5)
        assert set(office["scene"]) == {"office"}
        # Exact top-k: the best score is the maximum over all office items.
        items = engine.items()
        q = encoder.encode(["blue gel pens"])[0]
        best = (engine.features["item"][items["scene"].to_numpy() == "office"] @ q).max()
        assert office["score"].iloc[0] == pytest.approx(best, abs=1e-6)
        with pytest.raises(UnknownIdError, match="known scenes: arts, office"):
            engine.search_items("pens", scene="garden")
    with (
        Engine.open(sample_store, encoder=HFTextEncoder(max_length=32)) as engine,
        pytest.raises(ConfigError, match="was embedded with"),
    ):
        engine.search_items("pens")


def test_a_model_named_by_a_store_is_never_downloaded(
    sample_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store is trusted for data, not for code: the text model its manifest names is looked up in local folders and
    the local Hugging Face cache only. A name the user gives (EmbedConfig, --model) may still be downloaded."""
    import shutil

    import huggingface_hub

    from scenerec.kg import current_generation

    store = tmp_path / "store"
    shutil.copytree(sample_store, store, ignore=shutil.ignore_patterns("cache", ".lock"))
    manifest_file = current_generation(store) / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest["features"]["model"] = "someone/untrusted-model"
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    calls: list[bool] = []
    real = huggingface_hub.snapshot_download

    def spy(repo_id: str, **kw: object) -> str:
        calls.append(bool(kw.get("local_files_only")))
        return real(repo_id, **{**kw, "local_files_only": True})  # type: ignore[arg-type]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    with Engine.open(store) as engine, pytest.raises(ConfigError, match="read from a store") as err:
        engine.search_items("pens")
    assert "someone/untrusted-model" in str(err.value) and calls == [True]
    assert main(["search", "--store", str(store), "pens"]) == 2
    assert "read from a store" in capsys.readouterr().err and calls == [True, True]
    with pytest.raises(ConfigError):
        HFTextEncoder("someone/untrusted-model")  # named by the user: the download is tried (and fails offline)
    assert calls[2:] == [True, False]


def test_search_cli_json(sample_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["search", "--store", str(sample_store), "sketchbook for drawing", "-k", "3", "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 3 and set(rows[0]) == {"item_id", "scene", "title", "score"}
    assert rows[0]["score"] >= rows[1]["score"] >= rows[2]["score"]


def test_embed_config_is_typed() -> None:
    cfg = EmbedConfig(model="x", threads=1)
    assert cfg.cache is True and cfg.batch_size == 32 and cfg.runtime == "auto"
