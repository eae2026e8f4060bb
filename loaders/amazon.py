"""The Amazon Arts–Office release of URLLM (two scenes, shared users, item titles with attribute strings).

The attribute string is the Amazon category path followed by the brand, lower-cased with no delimiter
(``"arts crafts sewing crafting picture framing fletcher terry"``). :func:`split_attributes` recovers both from the
whole catalogue: a prefix-tree of attribute tokens marks category boundaries where the tree branches (many brands
follow a complete category path), and the title confirms a shorter brand when it contains it.
Brands become ``brand:<name>`` entities and category levels ``category:<name>`` entities, shared by both scenes.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scenerec.errors import DataFormatError
from scenerec.loaders.base import Loader, LoadOptions, register
from scenerec.loaders.rejects import RejectLog
from scenerec.loaders.tables import read_table
from scenerec.records import Dataset

SCENES = {
    "arts": ("item_listA_F.csv", "Arts, Crafts & Sewing", "Amazon arts, crafts and sewing supplies"),
    "office": ("item_listO_AA_F.csv", "Office Products", "Amazon office products and school supplies"),
}
SPLIT_FILES = {"train": "train_F2.txt", "valid": "valid_F2.txt", "test": "test_F2.txt"}
#: A prefix whose continuations include at least this many distinct tokens ends a category level.
BRANCHING = 3
#: Inside the category path, a prefix ends a level when at least LEVEL_BRANCHING of its continuations are each
#: shared by LEVEL_MIN_ITEMS items (subcategories; a stray continuation does not split a category name).
LEVEL_BRANCHING = 2
LEVEL_MIN_ITEMS = 3
MAX_BRAND_TOKENS = 4


def _root(path: Path) -> Path:
    return path / "splits_llm" if (path / "splits_llm" / SCENES["arts"][0]).is_file() else path


def split_attributes(attributes: Sequence[str], titles: Sequence[str]) -> list[tuple[list[str], str]]:
    """For each attribute string: (category levels from root to leaf, brand). Deterministic; uses all rows."""
    tokens = [a.split() for a in attributes]
    children: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    for toks in tokens:
        for k in range(len(toks)):
            children[tuple(toks[:k])][toks[k]] += 1

    branches = {p: len(c) >= BRANCHING for p, c in children.items()}
    level_ends = {p: sum(1 for n in c.values() if n >= LEVEL_MIN_ITEMS) >= LEVEL_BRANCHING for p, c in children.items()}
    out: list[tuple[list[str], str]] = []
    for toks, title in zip(tokens, titles, strict=True):
        n = len(toks)
        prefixes = [tuple(toks[:k]) for k in range(n)]
        cuts = [k for k in range(1, n) if branches[prefixes[k]]]
        k_tree = cuts[-1] if cuts else n
        padded = f" {title} "
        k_title = None
        for length in range(1, min(MAX_BRAND_TOKENS, n - 1) + 1):
            if f" {' '.join(toks[-length:])} " in padded:
                k_title = n - length
        k = k_title if k_title is not None and k_title >= k_tree else k_tree
        levels_at = [c for c in range(1, k) if level_ends[prefixes[c]]]
        bounds = [0, *levels_at, k] if k > 0 else [0]
        levels = [" ".join(toks[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
        out.append((levels, " ".join(toks[k:])))
    return out


def _read_sequences(path: Path, split: str, users: list[str], rejects: RejectLog) -> pd.DataFrame:
    rows_user: list[str] = []
    rows_item: list[str] = []
    rows_pos: list[int] = []
    rows_split: list[str] = []
    rows_line: list[int] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = line.rstrip("\n").rstrip("\t").split("\t")
            if not fields or fields == [""]:
                continue
            try:
                uidx = int(fields[0])
                n = int(fields[1])
                seq = [f.split("|") for f in fields[2:]]
                entries = [(s[0], int(s[1])) for s in seq]
            except (ValueError, IndexError):
                rejects.add(str(path), lineno, "unparsable sequence line (expected user, n, item|pos|pos ...)")
                continue
            if not 0 <= uidx < len(users):
                rejects.add(str(path), lineno, f"user index {uidx} is not in Dualuser_dict.json", column="user_id")
                continue
            if len(entries) != n + 1:
                rejects.add(str(path), lineno, f"sequence has {len(entries)} items, header says {n + 1}")
                continue
            for j, (item, pos) in enumerate(entries):
                is_target = j == len(entries) - 1
                rows_user.append(users[uidx])
                rows_item.append(item)
                rows_pos.append(pos)
                rows_split.append(split if (is_target and split != "train") else "train")
                rows_line.append(lineno)
    df = pd.DataFrame(
        {
            "user": pd.array(rows_user, dtype="string"),
            "item": pd.array(rows_item, dtype="string"),
            "timestamp": pd.array(rows_pos, dtype="Int64"),
            "split": pd.array(rows_split, dtype="string"),
            "_line": pd.array(rows_line, dtype="Int64"),
        }
    )
    df["_file"] = pd.array([str(path)] * len(df), dtype="string")
    # Each user appears on two lines that share the history: the shared history is the same interaction.
    return df.drop_duplicates(["user", "item", "timestamp", "split"])


@register
class AmazonUrllmLoader(Loader):
    name = "amazon-urllm"
    description = "Amazon Arts-Office release of URLLM (item_list*_F.csv + *_F2.txt sequences)"

    @classmethod
    def detect(cls, path: Path) -> bool:
        root = _root(path) if path.is_dir() else path
        return all((root / f).is_file() for f, _, _ in SCENES.values())

    def read(self, path: Path, rejects: RejectLog, options: LoadOptions) -> Dataset:
        root = _root(path)
        item_frames = []
        for scene, (fname, _, _) in SCENES.items():
            raw = read_table(root / fname, rejects, required=["idAfter", "item_title", "item_attribute"])
            raw["scene"] = scene
            item_frames.append(raw)
        raw_items = pd.concat(item_frames, ignore_index=True)
        parsed = split_attributes(raw_items["item_attribute"].tolist(), raw_items["item_title"].tolist())
        levels = [p[0] for p in parsed]
        brands = [p[1] for p in parsed]
        descriptions = [
            ". ".join(x for x in (f"Category: {' > '.join(lv)}" if lv else "", f"Brand: {b}" if b else "") if x)
            for lv, b in zip(levels, brands, strict=True)
        ]
        attributes = [
            json.dumps({"brand": b, "category": " > ".join(lv), "source_id": s}, sort_keys=True)
            for lv, b, s in zip(
                levels, brands, raw_items.get("idBefore", pd.Series([""] * len(raw_items))), strict=True
            )
        ]
        items = pd.DataFrame(
            {
                "id": raw_items["idAfter"],
                "scene": raw_items["scene"],
                "title": raw_items["item_title"],
                "description": descriptions,
                "attributes": attributes,
                "_file": raw_items["_file"],
                "_line": raw_items["_line"],
            }
        )

        # Knowledge graph: item -brand-> brand:X ; item -category-> category:leaf ; level -subcategory_of-> parent
        heads, rels, tails = [], [], []
        cat_names: dict[str, str] = {}
        for item, lv, b in zip(items["id"].tolist(), levels, brands, strict=True):
            if b:
                heads.append(item)
                rels.append("brand")
                tails.append(f"brand:{b}")
            if lv:
                heads.append(item)
                rels.append("category")
                tails.append(f"category:{lv[-1]}")
                for child, parent in zip(lv[1:], lv[:-1], strict=True):
                    heads.append(f"category:{child}")
                    rels.append("subcategory_of")
                    tails.append(f"category:{parent}")
                for name in lv:
                    cat_names[f"category:{name}"] = name
        triples = pd.DataFrame({"head": heads, "relation": rels, "tail": tails}).drop_duplicates()
        brand_set = sorted({b for b in brands if b})
        entities = pd.concat(
            [
                pd.DataFrame({"id": [f"brand:{b}" for b in brand_set], "type": "brand", "name": brand_set}),
                pd.DataFrame({"id": list(cat_names), "type": "category", "name": list(cat_names.values())}),
            ],
            ignore_index=True,
        )

        users_file = root / "Dualuser_dict.json"
        if not users_file.is_file():
            raise DataFormatError("missing Dualuser_dict.json (the user id list)", file=users_file)
        try:
            user_ids = [str(u) for u in json.loads(users_file.read_text(encoding="utf-8"))]
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON: {exc.msg}", file=users_file, line=exc.lineno) from None
        inter = pd.concat(
            [
                _read_sequences(root / f, split, user_ids, rejects)
                for split, f in SPLIT_FILES.items()
                if (root / f).is_file()
            ],
            ignore_index=True,
        )
        if inter.empty:
            raise DataFormatError("no sequence files (train_F2.txt, valid_F2.txt, test_F2.txt) found", file=root)
        inter["weight"] = 1.0
        scenes = pd.DataFrame(
            {
                "id": list(SCENES),
                "name": [v[1] for v in SCENES.values()],
                "description": [v[2] for v in SCENES.values()],
            }
        )
        return Dataset(
            "amazon-arts-office",
            scenes=scenes,
            users=pd.DataFrame({"id": user_ids}),
            items=items,
            entities=entities,
            interactions=inter,
            triples=triples,
            meta={"format": self.name, "timestamp_unit": "position in the user's sequence"},
        )
