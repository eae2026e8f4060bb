"""torch's int8 text-model precision: quality against fp32 on real titles, identity and cache separation, config,
CLI (the ONNX routes are tested in test_encoder_routes.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scenerec.cli import SAMPLE, main
from scenerec.config import PRECISIONS, EmbedConfig
from scenerec.engine import Engine
from scenerec.errors import ConfigError
from scenerec.kg import read_manifest
from scenerec.llm import HFTextEncoder, embed_dataset
from scenerec.pipeline import make_encoder
from scenerec.records import Dataset, Item


@pytest.fixture(scope="module")
def int8() -> HFTextEncoder:
    """The bundled all-MiniLM-L6-v2 on torch with int8 dynamically quantised Linear layers, loaded once per module."""
    return HFTextEncoder(precision="int8", runtime="torch", threads=2)


@pytest.fixture(scope="module")
def fp32() -> HFTextEncoder:
    """The bundled model as published, on torch."""
    return HFTextEncoder(runtime="torch", threads=2)


@pytest.fixture(scope="module")
def titles() -> list[str]:
    """300 real item titles of the bundled sample (every 7th row)."""
    frame = pd.read_csv(SAMPLE / "items.csv", dtype=str, keep_default_na=False)
    return [t for t in frame["title"].tolist()[::7] if t][:300]


def _tiny(root: Path) -> Path:
    root.mkdir()
    (root / "items.csv").write_text("item_id,scene,title\ni1,movies,Toy Story\ni2,movies,GoldenEye\ni3,books,Dune\n")
    (root / "interactions.csv").write_text("user_id,item_id\nu1,i1\nu1,i2\nu2,i3\n")
    return root


def test_int8_vectors_stay_close_to_fp32_on_real_titles(
    fp32: HFTextEncoder, int8: HFTextEncoder, titles: list[str]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the quantisation API's deprecation warnings are silenced, nothing else
        low = int8.encode(titles)
    full = fp32.encode(titles)
    assert low.shape == full.shape == (len(titles), 384) and low.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)
    cos = (low * full).sum(axis=1)
    # Measured (benchmarks/embed_precision.py): per-text cosine about 0.975 on average, never below 0.95; the
    # issue's 0.99 per text is NOT reached, which is why fp32 stays the default.
    assert cos.min() >= 0.93 and cos.mean() >= 0.96
    assert not np.allclose(low, full, atol=1e-4)  # the int8 model really ran
    # Nearest neighbours mostly survive (measured here: 0.80 of the titles keep their nearest other title, 0.96
    # find it among their int8 top 3).
    ranked = [np.argsort(-(v @ v.T - 2 * np.eye(len(v))), axis=1) for v in (full, low)]
    assert (ranked[0][:, 0] == ranked[1][:, 0]).mean() >= 0.7
    assert np.mean([ranked[0][i, 0] in ranked[1][i, :3] for i in range(len(titles))]) >= 0.9


def test_precision_is_part_of_the_identity_only_for_int8(fp32: HFTextEncoder, int8: HFTextEncoder) -> None:
    assert fp32.precision == "fp32" and int8.precision == "int8"
    assert int8.identity == fp32.identity + "|int8-dynamic"
    assert fp32.identity.endswith("|mean|l2|256")  # fp32's identity is the one caches were keyed by before
    assert HFTextEncoder(precision="fp32", runtime="torch").identity == fp32.identity
    assert int8.device == "cpu" and "precision=int8" in repr(int8)


def test_a_cache_filled_by_fp32_is_not_read_by_int8(fp32: HFTextEncoder, int8: HFTextEncoder, tmp_path: Path) -> None:
    ds = Dataset.from_records("t", items=[Item("i1", "s", "Blue Train"), Item("i2", "s", "Dune")])
    fp32_vectors, stats = embed_dataset(ds, fp32, cache_dir=tmp_path)
    assert stats.encoded == 2
    passes = int8.forward_passes
    int8_vectors, stats = embed_dataset(ds, int8, cache_dir=tmp_path)
    assert stats.encoded == 2 and stats.cached["Item"] == 0 and int8.forward_passes > passes
    assert not np.allclose(int8_vectors["Item"], fp32_vectors["Item"], atol=1e-4)
    _, stats = embed_dataset(ds, int8, cache_dir=tmp_path)  # int8 now reads its own entries
    assert stats.encoded == 0
    again, stats = embed_dataset(ds, fp32, cache_dir=tmp_path)  # and fp32 still its own
    assert stats.encoded == 0
    np.testing.assert_array_equal(again["Item"], fp32_vectors["Item"])


@pytest.mark.parametrize("bad", ["bf16", "INT8", ""])
def test_bad_precision_values_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="precision must be one of fp32, int8, fp16"):
        HFTextEncoder(precision=bad)
    with pytest.raises(ConfigError, match="precision must be one of fp32, int8, fp16"):
        EmbedConfig(precision=bad)


def test_int8_refuses_a_gpu_device() -> None:
    with pytest.raises(ConfigError, match="int8 runs on the CPU only, not on 'cuda'"):
        HFTextEncoder(precision="int8", device="cuda")
    with pytest.raises(ConfigError, match="int8 runs on the CPU only"):
        make_encoder(EmbedConfig(precision="int8", device="cuda:0"))


def test_embed_config_reaches_the_encoder() -> None:
    assert PRECISIONS == ("fp32", "int8", "fp16") and EmbedConfig().precision == "fp32"
    assert make_encoder(EmbedConfig(precision="int8", runtime="torch")).identity.endswith("|int8-dynamic")
    assert make_encoder(EmbedConfig()).precision == "fp32"  # type: ignore[attr-defined]


def test_cli_precision_flag_reaches_the_encoder_and_the_store(
    int8: HFTextEncoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, store = _tiny(tmp_path / "data"), tmp_path / "store"
    flags = ["--precision", "int8", "--runtime", "torch"]
    assert main(["rebuild", str(data), "--store", str(store), "--quiet", *flags]) == 0
    info = read_manifest(store)["features"]
    assert info["precision"] == "int8" and info["runtime"] == "torch" and info["identity"] == int8.identity
    # The store's own encoder is rebuilt at int8 from the manifest, so its search runs at the same precision.
    with Engine.open(store) as engine:
        assert engine.encoder.identity == int8.identity
        assert engine.search_items("a toy cowboy", k=1)["item_id"].tolist() == ["i1"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["rebuild", str(data), "--store", str(tmp_path / "other"), "--precision", "bf16"])
    assert "invalid choice: 'bf16'" in capsys.readouterr().err
