"""Text-model routes with the real weights: ONNX Runtime fp32 (the default) and int8 against torch fp32 on real
titles, the cached export, the static model distilled with model2vec, identities, config, CLI and clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scenerec.cli import SAMPLE, main
from scenerec.config import PRECISIONS, RUNTIMES, EmbedConfig
from scenerec.engine import Engine
from scenerec.errors import ConfigError, MissingExtraError
from scenerec.kg import read_manifest
from scenerec.llm import HFTextEncoder, StaticTextEncoder, model_cache_dir
from scenerec.llm.onnxrt import onnx_model_file
from scenerec.pipeline import make_encoder, store_embed_config

#: Tokens a narrow static model keeps (all others are left out, so distilling it takes seconds, not minutes).
NARROW = r"^(?!(\[(CLS|SEP|PAD|UNK|MASK)\]|blue|gel|pen|pens|ink|,|paint|acrylic|canvas|set|for|red|kettle)$).*$"


@pytest.fixture(scope="module")
def torch_fp32() -> HFTextEncoder:
    """The bundled model as published, on torch (the reference every route is measured against)."""
    return HFTextEncoder(runtime="torch", device="cpu", threads=2)


@pytest.fixture(scope="module")
def onnx_int8() -> HFTextEncoder:
    return HFTextEncoder(runtime="onnx", precision="int8", threads=2)


@pytest.fixture(scope="module")
def titles() -> list[str]:
    """300 real item titles of the bundled sample (every 7th row)."""
    frame = pd.read_csv(SAMPLE / "items.csv", dtype=str, keep_default_na=False)
    return [t for t in frame["title"].tolist()[::7] if t][:300]


@pytest.fixture(scope="module")
def narrow_static(tmp_path_factory: pytest.TempPathFactory) -> StaticTextEncoder:
    """A static model distilled (once per module) over a handful of tokens only."""
    return StaticTextEncoder(cache_dir=tmp_path_factory.mktemp("static"), token_filter=NARROW, threads=2)


def _block(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``names`` (and their submodules) unimportable for the rest of the test, as if not installed."""
    for name in names:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)


def test_the_default_runs_on_onnx_and_gives_torchs_vectors(
    encoder: HFTextEncoder, torch_fp32: HFTextEncoder, titles: list[str]
) -> None:
    import torch

    default = "torch" if torch.cuda.is_available() else "onnx"  # auto: a GPU, where there is one, runs torch
    assert encoder.runtime == default and encoder.precision == "fp32"
    assert HFTextEncoder().runtime == default and make_encoder(EmbedConfig()).runtime == default  # type: ignore[attr-defined]
    onnx = HFTextEncoder(runtime="onnx", threads=2)
    assert onnx.device == "cpu"
    fast, full = onnx.encode(titles), torch_fp32.encode(titles)
    assert fast.shape == full.shape == (len(titles), 384) and fast.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    cos = (fast * full).sum(axis=1)
    assert cos.min() >= 0.9999  # the same model: float32 rounding only
    np.testing.assert_allclose(fast, full, atol=1e-4)


def test_onnx_int8_stays_within_the_quality_bar_on_real_titles(
    onnx_int8: HFTextEncoder, torch_fp32: HFTextEncoder, titles: list[str]
) -> None:
    low, full = onnx_int8.encode(titles), torch_fp32.encode(titles)
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)
    cos = (low * full).sum(axis=1)
    # measured on 2,000 Food-Kitchen titles (benchmarks/README.md): min 0.992, mean 0.996
    assert cos.min() >= 0.99 and cos.mean() >= 0.993
    assert not np.allclose(low, full, atol=1e-3)  # it really is quantised
    ranked = [np.argsort(-(v @ v.T - 2 * np.eye(len(v))), axis=1) for v in (full, low)]
    assert (ranked[0][:, 0] == ranked[1][:, 0]).mean() >= 0.9


def test_the_export_is_cached_by_fingerprint_and_reused(tmp_path: Path, encoder: HFTextEncoder) -> None:
    first = HFTextEncoder(cache_dir=tmp_path, precision="int8")
    vectors = first.encode(["blue gel pens", "a red kettle"])
    assert first.prepare_seconds > 0
    int8_file = onnx_model_file(tmp_path, first.fingerprint, "int8")
    fp32_file = onnx_model_file(tmp_path, first.fingerprint, "fp32")
    assert int8_file.is_file() and fp32_file.is_file() and first.fingerprint in int8_file.name
    stamps = (int8_file.stat().st_mtime_ns, fp32_file.stat().st_mtime_ns)
    second = HFTextEncoder(cache_dir=tmp_path, precision="int8")
    np.testing.assert_array_equal(second.encode(["blue gel pens", "a red kettle"]), vectors)
    assert second.prepare_seconds == 0.0  # not exported again
    assert (int8_file.stat().st_mtime_ns, fp32_file.stat().st_mtime_ns) == stamps
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([int8_file.name, fp32_file.name])  # no temp files
    assert model_cache_dir() == Path(str(model_cache_dir()))  # the session's folder ($SCENEREC_MODEL_CACHE)
    assert encoder.cache_dir == model_cache_dir() and model_cache_dir(tmp_path) == tmp_path


def test_every_route_has_its_own_identity(encoder: HFTextEncoder, torch_fp32: HFTextEncoder) -> None:
    routes = {
        "torch fp32": torch_fp32.identity,
        "torch int8": HFTextEncoder(runtime="torch", precision="int8").identity,
        "onnx fp32": HFTextEncoder(runtime="onnx").identity,
        "onnx int8": HFTextEncoder(precision="int8").identity,
        "static": make_encoder(EmbedConfig(model="static")).identity,
    }
    assert len(set(routes.values())) == len(routes)
    assert torch_fp32.identity.endswith("|mean|l2|256")  # torch fp32 keeps the identity caches had before routes
    assert routes["torch int8"] == torch_fp32.identity + "|int8-dynamic"
    assert routes["onnx fp32"] == torch_fp32.identity + "|onnx-v1"
    assert routes["onnx int8"].startswith(routes["onnx fp32"] + "|int8")
    assert routes["static"].startswith("static|" + encoder.fingerprint)
    assert "runtime=onnx" in repr(HFTextEncoder(runtime="onnx")) and "runtime=torch" in repr(torch_fp32)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"runtime": "tensorrt"}, "runtime must be one of auto, torch, onnx, not 'tensorrt'"),
        ({"precision": "bf16"}, "precision must be one of fp32, int8, fp16, not 'bf16'"),
        ({"runtime": "onnx", "device": "cuda"}, "runtime onnx runs on the CPU only, not on 'cuda'"),
        ({"precision": "fp16", "device": "cpu"}, "fp16 runs on a CUDA device only, not on 'cpu'"),
        ({"precision": "fp16", "runtime": "onnx"}, "fp16 runs with runtime torch on a CUDA device"),
        ({"precision": "int8", "device": "cuda"}, "int8 runs on the CPU only, not on 'cuda'"),
    ],
)
def test_bad_route_options_are_refused_with_one_line(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HFTextEncoder(**options)  # type: ignore[arg-type]


def test_onnx_is_for_the_bundled_model_and_static_takes_no_route() -> None:
    from scenerec.llm import default_model_path

    with pytest.raises(ConfigError, match="runtime onnx runs the bundled all-MiniLM-L6-v2 only"):
        HFTextEncoder(default_model_path(), runtime="onnx")
    assert HFTextEncoder(default_model_path()).runtime == "torch"  # auto: another model (by path) stays on torch
    for bad in ({"precision": "int8"}, {"runtime": "onnx"}, {"device": "cuda"}):
        with pytest.raises(ConfigError, match="static text model takes no precision, runtime or device"):
            make_encoder(EmbedConfig(model="static", **bad))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="runtime must be one of"):
        EmbedConfig(runtime="fast")
    assert RUNTIMES == ("auto", "torch", "onnx") and PRECISIONS == ("fp32", "int8", "fp16")


def test_without_the_fast_extra_auto_falls_back_to_torch_and_onnx_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _block(monkeypatch, "onnxruntime", "model2vec")
    assert HFTextEncoder().runtime == "torch"
    with pytest.raises(MissingExtraError, match=r"ONNX text-model runtime needs 'onnxruntime'.*scenerec\[fast\]"):
        HFTextEncoder(runtime="onnx")
    static = StaticTextEncoder(cache_dir=tmp_path)  # constructing reads nothing; the first encode needs the extra
    with pytest.raises(MissingExtraError, match=r"static text model needs 'model2vec'.*scenerec\[fast\]"):
        static.encode(["a red kettle"])
    assert not any(tmp_path.iterdir())


def test_a_static_model_is_distilled_once_and_gives_unit_vectors(
    narrow_static: StaticTextEncoder, encoder: HFTextEncoder
) -> None:
    texts = ["blue gel pens", "gel ink pen, blue", "acrylic paint set for canvas", "a red kettle"]
    vectors = narrow_static.encode(texts)
    assert narrow_static.prepare_seconds > 0 and (narrow_static.path / "config.json").is_file()
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.8 > sims[0, 2]  # the two pen titles share their words, the paint set does not
    # its vectors live in the transformer's space: the static and transformer vectors of a text are close
    assert float((vectors[0] * encoder.encode(texts[:1])[0]).sum()) > 0.5
    again = StaticTextEncoder(cache_dir=narrow_static.cache_dir, token_filter=NARROW)
    np.testing.assert_allclose(again.encode(texts), vectors, atol=1e-6)
    assert again.prepare_seconds == 0.0 and again.identity == narrow_static.identity  # read from the cache
    assert StaticTextEncoder(cache_dir=narrow_static.cache_dir).identity != narrow_static.identity  # full vocabulary


def test_static_model_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"token_filter '\[unused' is not a regular expression"):
        StaticTextEncoder(cache_dir=tmp_path, token_filter="[unused")
    with pytest.raises(ConfigError, match="max_length must be positive"):
        StaticTextEncoder(max_length=0)


def test_a_store_reopens_its_texts_route() -> None:
    old = store_embed_config({"model": "all-MiniLM-L6-v2", "precision": "int8"})  # written before runtimes
    assert (old.model, old.runtime, old.precision, old.download) == (None, "torch", "int8", False)
    new = store_embed_config({"model": "all-MiniLM-L6-v2", "precision": "fp32", "runtime": "onnx"})
    assert (new.model, new.runtime) == (None, "onnx")
    other = store_embed_config({"model": "org/other", "precision": "fp32", "runtime": "onnx"})  # edited by hand
    assert (other.model, other.runtime, other.download) == ("org/other", "torch", False)
    static = store_embed_config({"model": "static", "precision": "fp32", "runtime": "model2vec"})
    assert (static.model, static.runtime) == ("static", "auto")
    assert isinstance(make_encoder(static), StaticTextEncoder)


def test_cli_runtime_flag_reaches_the_store_and_its_reopened_encoder(
    encoder: HFTextEncoder, torch_fp32: HFTextEncoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "items.csv").write_text("item_id,scene,title\ni1,movies,Toy Story\ni2,movies,GoldenEye\ni3,books,Dune\n")
    (data / "interactions.csv").write_text("user_id,item_id\nu1,i1\nu1,i2\nu2,i3\n")
    for flags, expected in (([], encoder), (["--runtime", "torch"], torch_fp32)):
        store = tmp_path / f"store{len(flags)}"
        assert main(["rebuild", str(data), "--store", str(store), "--quiet", *flags]) == 0
        info = read_manifest(store)["features"]
        assert info["runtime"] == expected.runtime and info["identity"] == expected.identity
        with Engine.open(store) as engine:  # the store's encoder is rebuilt on the same route
            assert engine.encoder.identity == expected.identity
            assert engine.search_items("a toy cowboy", k=1)["item_id"].tolist() == ["i1"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["rebuild", str(data), "--store", str(tmp_path / "other"), "--runtime", "tensorrt"])
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err
