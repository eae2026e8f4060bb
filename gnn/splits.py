"""Split protocols: each returns a copy of a canonical interactions DataFrame with its ``split`` column set.

The input has the canonical columns of :data:`scenerec.records.TABLES` (``user, item, timestamp, rating, weight,
split``); the output has the same columns, rows and row order, only ``split`` changes (to ``train``/``valid``/
``test``). Every protocol is deterministic: the random one takes an explicit seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from scenerec.errors import DataFormatError

_LABELS = {2: ("train", "test"), 3: ("train", "valid", "test")}


def _labels(ratios: Sequence[float]) -> tuple[str, ...]:
    if len(ratios) not in _LABELS:
        raise ValueError(f"ratios must have 2 (train, test) or 3 (train, valid, test) parts, got {list(ratios)}")
    if any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"ratios must be non-negative with a positive sum, got {list(ratios)}")
    return _LABELS[len(ratios)]


def _with_split(df: pd.DataFrame, split: np.ndarray) -> pd.DataFrame:
    out = df.copy()
    out["split"] = pd.Series(split, index=df.index, dtype="string")
    return out


def _require(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"required column is missing (columns present: {', '.join(map(str, df.columns))})",
            file="interactions",
            column=missing[0],
        )


def ratio_counts(n: np.ndarray, ratios: Sequence[float]) -> np.ndarray:
    """Rows per part for groups of sizes ``n`` (shape (g,)) -> int array (g, len(ratios)), RecBole's rounding.

    As RecBole 1.2's ``Dataset._calcu_split_ids``: ratios are normalised by their sum; every part but the first
    gets ``int(ratio * n)`` (rounded down); the first part gets the rest; then, from the last part backwards,
    a part whose exact share is in (0, 1) takes one row from the first part, as long as the first keeps more than one.
    """
    tot = sum(ratios)
    norm = [r / tot for r in ratios]  # same float operations as RecBole, so the same truncations
    n = np.asarray(n, dtype=np.int64)
    nf = n.astype(np.float64)
    cnt = np.zeros((len(n), len(norm)), dtype=np.int64)
    for j in range(1, len(norm)):
        cnt[:, j] = np.floor(norm[j] * nf).astype(np.int64)
    cnt[:, 0] = n - cnt[:, 1:].sum(axis=1)
    active = np.ones(len(n), dtype=bool)
    for j in range(len(norm) - 1, 0, -1):
        active &= cnt[:, 0] > 1
        share = norm[j] * nf
        bump = active & (share > 0) & (share < 1)
        cnt[:, j] += bump
        cnt[:, 0] -= bump
    return cnt


def fixed(df: pd.DataFrame) -> pd.DataFrame:
    """Keep the dataset's own ``split`` column; raise :class:`DataFormatError` if a row has none or a bad value."""
    _require(df, ["user", "item", "split"])
    split = df["split"].astype("string").fillna("")
    empty = split == ""
    if empty.any():
        first = df.loc[empty].iloc[0]
        raise DataFormatError(
            f"{int(empty.sum())} of {len(df)} interactions have no split (first: user {first['user']!r}, "
            f"item {first['item']!r}); this dataset does not fix its split, so use random_per_user, "
            "leave_one_out or temporal instead of fixed",
            file="interactions",
            column="split",
        )
    bad = ~split.isin(["train", "valid", "test"])
    if bad.any():
        raise DataFormatError(
            f"split value {split[bad].iloc[0]!r} is not one of train/valid/test", file="interactions", column="split"
        )
    return _with_split(df, split.to_numpy(dtype=object))


def random_per_user(df: pd.DataFrame, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 2020) -> pd.DataFrame:
    """RecBole's ``RS`` split with ``group_by: user`` and ``order: RO``.

    All rows are shuffled once with ``torch.randperm(len(df))`` from a generator seeded with ``seed``; each user's
    rows, in shuffled order, are cut into consecutive parts of the sizes given by :func:`ratio_counts`
    (train, [valid,] test).

    This reproduces RecBole's exact assignment, not only its proportions, when ``df`` holds the rows in the order of
    RecBole's atomic ``.inter`` file and ``seed`` is RecBole's seed: on ML-100K (seed 2020) every one of the 100,000
    rows lands in the same split as RecBole 1.2.1's own export (80,808 / 9,596 / 9,596), on torch 2.13's CPU
    generator. Other row orders or torch versions with another ``randperm`` give the same counts, not the same rows.
    """
    _require(df, ["user"])
    labels = _labels(ratios)
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(len(df), generator=gen).numpy()
    users = df["user"].to_numpy(dtype=object)[perm]
    shuffled = pd.DataFrame({"user": users})
    pos = shuffled.groupby("user", sort=False).cumcount().to_numpy()
    size = shuffled.groupby("user", sort=False)["user"].transform("size").to_numpy()
    uniq, inverse = np.unique(size, return_inverse=True)
    bounds = np.cumsum(ratio_counts(uniq, ratios), axis=1)[inverse]  # (n_rows, parts): end of each part
    part = (pos[:, None] >= bounds).sum(axis=1)
    split = np.empty(len(df), dtype=object)
    split[perm] = np.asarray(labels, dtype=object)[part]
    return _with_split(df, split)


def _complete(df: pd.DataFrame, by: str, protocol: str) -> pd.Series:
    """Column ``by`` of ``df``; :class:`DataFormatError` when any row lacks a value."""
    key = df[by]
    if key.isna().any():
        raise DataFormatError(
            f"{int(key.isna().sum())} of {len(df)} interactions have no {by}; {protocol} needs it on every row",
            file="interactions",
            column=by,
        )
    return key


def leave_one_out(df: pd.DataFrame, by: str = "timestamp") -> pd.DataFrame:
    """Per user, ordered by ``by`` (ties keep row order): the last row is test, the second last valid, the rest train.

    Users with fewer than 3 interactions keep all of them in train. Raises :class:`DataFormatError` when ``by`` is
    missing or has empty values.
    """
    _require(df, ["user", by])
    key = _complete(df, by, "leave_one_out")
    order = pd.DataFrame({"user": df["user"].to_numpy(dtype=object), "key": key.to_numpy(), "row": np.arange(len(df))})
    order = order.sort_values(["key", "row"], kind="stable")
    grouped = order.groupby("user", sort=False)
    from_end = grouped.cumcount(ascending=False).to_numpy()
    size = grouped["user"].transform("size").to_numpy()
    labels = np.where(from_end == 0, "test", np.where(from_end == 1, "valid", "train")).astype(object)
    labels[size < 3] = "train"
    split = np.empty(len(df), dtype=object)
    split[order["row"].to_numpy()] = labels
    return _with_split(df, split)


def temporal(df: pd.DataFrame, ratios: Sequence[float] = (0.8, 0.1, 0.1), by: str = "timestamp") -> pd.DataFrame:
    """Global time split: one set of cut points in time shared by all users.

    The rows sorted by ``by`` are cut at the positions :func:`ratio_counts` gives for ``len(df)``; the cut points are
    the ``by`` values found there, and a row goes to the part whose time range holds it (``t < t1`` train,
    ``t1 <= t < t2`` valid, ``t >= t2`` test). Rows sharing a timestamp therefore never straddle a cut, and the counts
    can differ from the exact ratios by the number of rows tied at a cut point. Raises :class:`DataFormatError` when
    ``by`` is missing or has empty values.
    """
    _require(df, [by])
    labels = _labels(ratios)
    key = _complete(df, by, "temporal")
    values = key.to_numpy(dtype=np.float64) if pd.api.types.is_numeric_dtype(key) else key.to_numpy()
    if len(df) == 0:
        return _with_split(df, np.empty(0, dtype=object))
    ordered = np.sort(values, kind="stable")
    ends = np.cumsum(ratio_counts(np.array([len(df)]), ratios)[0])[:-1]
    cuts = [ordered[e] if e < len(df) else None for e in ends]
    part = np.zeros(len(df), dtype=np.int64)
    for c in cuts:
        if c is not None:
            part += values >= c
    split = np.asarray(labels, dtype=object)[part]
    return _with_split(df, split)
