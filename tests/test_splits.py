"""Split protocols on hand-made frames and on the real ML-100K (against RecBole 1.2.1's own split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scenerec.errors import DataFormatError
from scenerec.gnn.splits import fixed, leave_one_out, random_per_user, ratio_counts, temporal
from scenerec.records import conform


def frame(rows: list[tuple[str, str, int]], split: list[str] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    if split is not None:
        df["split"] = split
    return conform("interactions", df)


# u1: 10 rows, u2: 3 rows, u3: 2 rows (timestamps deliberately not in row order for u1).
ROWS = (
    [("u1", f"i{k}", 100 - k) for k in range(10)]
    + [("u2", "a", 5), ("u2", "b", 7), ("u2", "c", 6)]
    + [("u3", "x", 1), ("u3", "y", 2)]
)


def test_ratio_counts_follow_recbole_rounding() -> None:
    # valid/test = int(0.1 * n), train = the rest; a share in (0, 1) still gets one row while train keeps > 1.
    got = ratio_counts(np.array([10, 20, 25, 3, 2, 1]), (0.8, 0.1, 0.1))
    assert got.tolist() == [[8, 1, 1], [16, 2, 2], [21, 2, 2], [1, 1, 1], [1, 0, 1], [1, 0, 0]]
    # Unnormalised ratios are normalised first; two parts are train/test.
    assert ratio_counts(np.array([10]), (8, 2)).tolist() == [[8, 2]]


def test_fixed_keeps_the_given_split_and_names_missing_rows() -> None:
    df = frame([("u", "a", 1), ("u", "b", 2)], ["train", "test"])
    assert fixed(df)["split"].tolist() == ["train", "test"]
    with pytest.raises(DataFormatError, match=r"1 of 2 interactions have no split \(first: user 'u', item 'b'\)"):
        fixed(frame([("u", "a", 1), ("u", "b", 2)], ["train", ""]))
    with pytest.raises(DataFormatError, match="'dev' is not one of"):
        fixed(frame([("u", "a", 1)], ["dev"]))


def test_random_per_user_counts_and_determinism() -> None:
    df = frame(ROWS)
    out = random_per_user(df, seed=7)
    assert out["split"].tolist() == random_per_user(df, seed=7)["split"].tolist()
    assert out[["user", "item", "timestamp"]].equals(df[["user", "item", "timestamp"]])
    counts = out.groupby(["user", "split"]).size().to_dict()
    # u1 (10 rows): 8/1/1; u2 (3): 1/1/1; u3 (2): 1 train, 0 valid, 1 test.
    assert counts == {
        ("u1", "train"): 8,
        ("u1", "valid"): 1,
        ("u1", "test"): 1,
        ("u2", "train"): 1,
        ("u2", "valid"): 1,
        ("u2", "test"): 1,
        ("u3", "train"): 1,
        ("u3", "test"): 1,
    }
    seeds = {tuple(random_per_user(df, seed=s)["split"]) for s in range(6)}
    assert len(seeds) > 1  # the seed matters
    assert random_per_user(df, ratios=(0.5, 0.5), seed=1)["split"].isin(["train", "test"]).all()


def test_leave_one_out_by_time() -> None:
    out = leave_one_out(frame(ROWS))
    by_item = dict(zip(out["item"], out["split"], strict=True))
    # u1's latest is i0 (t=100), then i1 (t=99); u2's latest is b (7), then c (6); u3 has < 3 rows.
    assert by_item["i0"] == "test" and by_item["i1"] == "valid"
    assert all(by_item[f"i{k}"] == "train" for k in range(2, 10))
    assert (by_item["b"], by_item["c"], by_item["a"]) == ("test", "valid", "train")
    assert (by_item["x"], by_item["y"]) == ("train", "train")
    with pytest.raises(DataFormatError, match="no timestamp"):
        leave_one_out(conform("interactions", pd.DataFrame({"user": ["u"], "item": ["a"]})))


def test_temporal_global_cut_points() -> None:
    rows = [(f"u{k % 3}", f"i{k}", t) for k, t in enumerate([5, 1, 9, 3, 7, 2, 10, 4, 8, 6])]
    out = temporal(frame(rows))
    ts = dict(zip(out["timestamp"].astype(int), out["split"], strict=True))
    # 10 rows: 8/1/1 -> cut points t=9 (valid) and t=10 (test).
    assert [ts[t] for t in range(1, 11)] == ["train"] * 8 + ["valid", "test"]
    # Ties never straddle a cut: four rows at t=5 stay together.
    tied = frame([("u", f"i{k}", t) for k, t in enumerate([1, 2, 5, 5, 5, 5, 6, 7, 8, 9])])
    out = temporal(tied, ratios=(0.5, 0.5))
    assert out.loc[out["timestamp"] == 5, "split"].nunique() == 1


@pytest.fixture(scope="module")
def ml100k(movielens_100k: Path) -> pd.DataFrame:
    from scenerec.loaders import load_dataset

    return load_dataset(movielens_100k).dataset.interactions


@pytest.mark.slow
def test_ml100k_random_per_user_is_recboles_split(ml100k: pd.DataFrame, ml100k_split: Path) -> None:
    out = random_per_user(ml100k, (0.8, 0.1, 0.1), seed=2020)
    assert out["split"].value_counts().to_dict() == {"train": 80808, "valid": 9596, "test": 9596}
    ref = pd.concat(
        pd.read_csv(ml100k_split / f"{s}.tsv", sep="\t", dtype=str).assign(ref=s) for s in ("train", "valid", "test")
    )
    merged = out.merge(ref, left_on=["user", "item"], right_on=["user_id", "item_id"], how="inner")
    assert len(merged) == 100_000
    assert (merged["split"] == merged["ref"]).all()  # the same rows, not only the same counts


@pytest.mark.slow
def test_ml100k_leave_one_out_and_temporal(ml100k: pd.DataFrame) -> None:
    out = leave_one_out(ml100k)
    sizes = out.groupby("user").size()
    tests = out[out["split"] == "test"].groupby("user").size()
    eligible = sizes[sizes >= 3].index
    assert (tests.reindex(eligible, fill_value=0) == 1).all()
    assert out["split"].value_counts().to_dict() == {"train": 98114, "valid": 943, "test": 943}
    tmp = temporal(ml100k)
    rng = tmp.groupby("split")["timestamp"].agg(["min", "max"])
    assert rng.loc["train", "max"] < rng.loc["valid", "min"] and rng.loc["valid", "max"] < rng.loc["test", "min"]
    assert tmp["split"].value_counts().to_dict() == {"train": 79999, "valid": 10001, "test": 10000}
