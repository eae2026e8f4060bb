"""The synthetic generator of ``benchmarks/synthetic.py``: a grown dataset keeps the source's user and item degree
distributions, scene shares, split shares and texts."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def synthetic(benchmark_module: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_module("synthetic")


@pytest.fixture(scope="module")
def source() -> tuple[pd.DataFrame, pd.DataFrame]:
    """600 users with skewed history lengths over 200 items (Zipf popularity), 30 % of them in scene ``food``; the
    last item of 5 % of the users is ``valid``, of another 5 % ``test``."""
    rng = np.random.default_rng(7)
    n_items = 200
    scene = np.where(rng.random(n_items) < 0.3, "food", "kitchen")
    items = pd.DataFrame(
        {"item_id": [f"i{j}" for j in range(n_items)], "scene": scene, "title": [f"title {j}" for j in range(n_items)]}
    )
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    pop /= pop.sum()
    rows = []
    for u in range(600):
        n = min(1 + int(rng.geometric(0.12)), 60)
        role = "valid" if u % 20 == 0 else "test" if u % 20 == 1 else "train"
        history = rng.choice(n_items, size=n, replace=False, p=pop)
        for t, j in enumerate(history):
            rows.append((f"u{u}", f"i{j}", t, role if t == n - 1 else "train"))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "split"])
    return items, inter


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    grid = np.union1d(a, b)
    cdf = [np.searchsorted(np.sort(x), grid, side="right") / len(x) for x in (a, b)]
    return float(np.abs(cdf[0] - cdf[1]).max())


def _gini(degrees: np.ndarray) -> float:
    """Gini coefficient of the degrees (0: all equal; 1: one node has everything)."""
    d = np.sort(degrees.astype(float))
    n = len(d)
    return float((2 * np.arange(1, n + 1) - n - 1) @ d / (n * d.sum()))


def _scene_share(items: pd.DataFrame, inter: pd.DataFrame) -> float:
    scene = inter["item_id"].map(dict(zip(items["item_id"], items["scene"], strict=True)))
    assert scene.notna().all(), "every interaction's item is in the items table"
    return float((scene == "food").mean())


@pytest.mark.parametrize("factor", [4.5, 3.0])
def test_grown_keeps_degrees_scenes_and_splits(synthetic: ModuleType, source: tuple, factor: float) -> None:
    items, inter = source
    target = int(len(inter) * factor)
    grown_items, grown = synthetic.grow(items, inter, target, swap=0.1, seed=1)

    assert target <= len(grown) < target + 61  # overshoots by less than one history
    assert not grown.duplicated(["user_id", "timestamp"]).any()
    assert grown_items["item_id"].is_unique
    # user degrees: those of the source users, per copy
    src_user = inter["user_id"].value_counts()
    grown_user = grown["user_id"].value_counts()
    assert (grown_user.to_numpy() == src_user[synthetic.source_id(grown_user.index)].to_numpy()).all()
    assert _ks(src_user.to_numpy(), grown_user.to_numpy()) < 0.05
    # item degrees: equal in expectation; every copy of the catalogue is whole
    src_item = inter["item_id"].value_counts().reindex(items["item_id"], fill_value=0).to_numpy()
    grown_item = grown["item_id"].value_counts().reindex(grown_items["item_id"], fill_value=0).to_numpy()
    assert len(grown_items) == len(items) * int(factor)
    # a partial copy of the users shops in the full copies of the catalogue: degrees scale by up to 1 + 1/copies
    ratio = grown_item.mean() / src_item.mean()
    assert 1.0 <= ratio <= len(grown) / len(inter) / int(factor) + 1e-9
    assert _ks(src_item * ratio, grown_item) < 0.06
    assert abs(_gini(grown_item) - _gini(src_item)) < 0.02
    # scenes: item and interaction shares
    assert abs((grown_items["scene"] == "food").mean() - (items["scene"] == "food").mean()) < 1e-9
    assert abs(_scene_share(grown_items, grown) - _scene_share(items, inter)) < 0.01
    # splits: shares of valid and test rows
    for split in ("valid", "test"):
        assert abs((grown["split"] == split).mean() - (inter["split"] == split).mean()) < 0.003
    # texts: a clone's title is its source's (its embedding comes from the cache)
    title = dict(zip(items["item_id"], items["title"], strict=True))
    assert (grown_items["title"] == synthetic.source_id(grown_items["item_id"]).map(title)).all()
    # co-occurrence: most of a copied history stays in one copy of the catalogue (swap 0.1)
    user_copy = grown["user_id"].str.partition(synthetic.SEP)[2]
    item_copy = grown["item_id"].str.partition(synthetic.SEP)[2]
    assert 0.8 < float((user_copy == item_copy).mean()) < 0.95


def test_sampling_down_and_bad_arguments(synthetic: ModuleType, source: tuple) -> None:
    items, inter = source
    grown_items, grown = synthetic.grow(items, inter, len(inter) // 2, seed=3)
    pairs = set(zip(inter["user_id"], inter["item_id"], strict=True))
    assert set(zip(grown["user_id"], grown["item_id"], strict=True)) <= pairs  # a sample of the source rows
    assert set(grown_items["item_id"]) == set(grown["item_id"])
    again = synthetic.grow(items, inter, len(inter) // 2, seed=3)[1]
    assert again.equals(grown)  # seeded
    with pytest.raises(ValueError, match="target"):
        synthetic.grow(items, inter, 0)
    with pytest.raises(ValueError, match="swap"):
        synthetic.grow(items, inter, 10, swap=1.5)
