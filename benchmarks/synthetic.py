"""Grow a real dataset (generic format: ``items`` and ``interactions`` tables) to a given number of interactions
while keeping its user and item degree distributions, its scenes and its co-occurrence structure.

    .venv/bin/python benchmarks/synthetic.py SOURCE OUT --interactions 3000000 [--swap 0.1] [--seed 0]

How: the dataset is cloned ``copies = ceil(target / source interactions)`` times. Copy ``c`` of user ``u`` is
``u~c`` (copy 0 keeps the source ids) and has exactly ``u``'s history (same length, order, timestamps, split
label), with every item ``i`` mapped to its copy ``i~c``, except that each interaction, with probability ``swap``,
goes to the same item in a copy drawn uniformly from all copies (the perturbation: it links the copies into one
graph and keeps every item copy's expected degree equal to its source degree). The last copy is partial: a random
subset of the users, drawn until the target is reached (a target below the source size gives a user sample of the
source; its items are then the ones those rows use). The catalogue is one copy of the source items per full copy of
the users; the users of a partial copy each shop in one full copy drawn at random (so no item copy is thin).

So user degrees are those of the source exactly (per copied user), item degrees equal them in expectation, the
share of each scene among items and interactions is kept, and so is the share of validation and test users. A
cloned item keeps every column of its source row (title, scene, attributes): its text is the source's, so the
text embedding of a clone is the source item's (``scenerec.llm.embed_dataset`` encodes each distinct text once and
its cache is keyed by the text), which keeps embedding cost at that of the source catalogue.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Separator between a source id and its copy number.
SEP = "~"


def grow(
    items: pd.DataFrame, interactions: pd.DataFrame, target: int, *, swap: float = 0.1, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items, interactions) grown (or sampled down) to about ``target`` interactions (module docstring).

    ``items`` needs ``item_id``; ``interactions`` needs ``user_id`` and ``item_id``; other columns are copied. The
    result overshoots ``target`` by less than one user's history. ValueError for a target < 1 or a swap outside
    [0, 1].
    """
    if target < 1:
        raise ValueError(f"target must be a positive number of interactions, not {target}")
    if not 0.0 <= swap <= 1.0:
        raise ValueError(f"swap must be a probability in [0, 1], not {swap}")
    rng = np.random.default_rng(seed)
    n_src = len(interactions)
    user_code, user_ids = pd.factorize(interactions["user_id"].astype(str))
    degree = np.bincount(user_code)
    copies = max(1, math.ceil(target / n_src))
    remainder = target - (copies - 1) * n_src
    order = rng.permutation(len(user_ids))
    taken = order[: int(np.searchsorted(np.cumsum(degree[order]), remainder)) + 1]
    in_last = np.zeros(len(user_ids), dtype=bool)
    in_last[taken] = True

    rows = [np.arange(n_src)] * (copies - 1) + [np.flatnonzero(in_last[user_code])]
    src_row = np.concatenate(rows)
    user_copy = np.concatenate([np.full(len(r), c, dtype=np.int64) for c, r in enumerate(rows)])
    # The catalogue: one copy of every item per full copy of the users (one copy when sampling down). A partial last
    # copy of the users shops in the full copies: each of its users in one drawn at random (its whole history).
    partial = remainder < n_src
    n_item_copies = max(1, copies - 1) if partial else copies
    item_copy = user_copy.copy()
    if partial:
        host = rng.integers(n_item_copies, size=len(user_ids))
        last = user_copy == copies - 1
        item_copy[last] = host[user_code[src_row[last]]]
    if n_item_copies > 1 and swap > 0:
        moved = rng.random(len(src_row)) < swap
        item_copy[moved] = rng.integers(n_item_copies, size=int(moved.sum()))
    suffix = np.array([""] + [f"{SEP}{c}" for c in range(1, copies)], dtype=object)

    out = interactions.iloc[src_row].reset_index(drop=True)
    out["user_id"] = out["user_id"].astype(str).to_numpy(dtype=object) + suffix[user_copy]
    out["item_id"] = out["item_id"].astype(str).to_numpy(dtype=object) + suffix[item_copy]

    item_src = items["item_id"].astype(str)
    grown_items = pd.concat(
        [items.assign(item_id=item_src + suffix[c]) for c in range(n_item_copies)], ignore_index=True
    )
    if copies == 1:  # a sample of the source: the items its rows use
        grown_items = grown_items[grown_items["item_id"].isin(out["item_id"])].reset_index(drop=True)
    return grown_items, out


def source_id(ids: pd.Series) -> pd.Series:
    """The source id of each grown id (the part before :data:`SEP`)."""
    return ids.astype(str).str.split(SEP, n=1, regex=False).str[0]


def write_grown(source: Path, out: Path, target: int, *, swap: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """Read ``source/items.csv`` and ``source/interactions.csv``, grow them (:func:`grow`) and write both as CSV
    into ``out``; returns (and writes to ``out/SYNTHETIC.json``) what was made."""
    items = pd.read_csv(source / "items.csv", dtype=str, keep_default_na=False)
    inter = pd.read_csv(source / "interactions.csv", dtype=str, keep_default_na=False)
    grown_items, grown = grow(items, inter, target, swap=swap, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    grown_items.to_csv(out / "items.csv", index=False)
    grown.to_csv(out / "interactions.csv", index=False)
    info = {
        "source": str(source),
        "target": int(target),
        "swap": swap,
        "seed": seed,
        "interactions": len(grown),
        "users": int(grown["user_id"].nunique()),
        "items": len(grown_items),
        "source_interactions": len(inter),
    }
    (out / "SYNTHETIC.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="generic dataset folder with items.csv and interactions.csv")
    ap.add_argument("out", type=Path)
    ap.add_argument("--interactions", type=int, required=True, help="target number of interactions")
    ap.add_argument("--swap", type=float, default=0.1, help="probability that an interaction moves to another copy")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(json.dumps(write_grown(args.source, args.out, args.interactions, swap=args.swap, seed=args.seed)))


if __name__ == "__main__":
    main()
